"""External attestations as a learner uploads them: what the bytes are (`sniff`) and why an upload is
refused (`ImportRejected`). Pure: shared by the backpack, which receives uploads, and the importer, which
reads them."""
