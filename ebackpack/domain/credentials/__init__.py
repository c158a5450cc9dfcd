"""Portable credentials: Open Badges 2.0 hosted JSON, Open Badges 3.0 signed credentials, status lists.

Pure functions over plain data: the issuer signs with them, the backpack serves with them, the CLI
exports with them. Nothing here talks to Kafka, SQL or S3.
"""
