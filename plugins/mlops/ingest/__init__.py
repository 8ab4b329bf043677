"""Ingestion: reading landed files strictly before they become partitions."""
