"""The platform's edges: SQL, S3-compatible storage, the broker, keys on disk, HTTP serving, metrics."""
