"""Development only: the embedded stack, the demo and its sample data. Production code never imports it."""
