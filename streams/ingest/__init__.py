"""What arrives: the Avro schemas of every topic, the codecs (JSON, Confluent-framed Avro), the
pure parser that turns a raw message into a valid event or a rejection reason, and the records
written to `system_events` (dead letters, late events).
"""
