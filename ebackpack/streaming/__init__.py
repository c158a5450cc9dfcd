"""Kafka plumbing shared by the services: faust app factory, raw topics, the dead-letter policy."""
