"""The credential domain: award rules, credential facts and the builders of every credential form. Pure."""
