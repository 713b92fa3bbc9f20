"""Avro schemas of every source and sink topic; installed as package data."""
