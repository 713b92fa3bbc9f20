"""Message bytes <-> records: JSON always, Confluent-framed Avro when a schema registry is set."""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import fastavro
import orjson

from streams.ingest.schemas import topic_schema

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER = struct.Struct(">bI")


class DecodeError(ValueError):
    """The bytes are neither a JSON object nor a readable Confluent Avro message."""


class SchemaSource(Protocol):
    def writer_schema(self, schema_id: int) -> Any: ...


class RegistrySchemas:
    """Writer schemas fetched from a Confluent schema registry by id, each fetched once."""

    def __init__(self, url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})
        self._parsed: dict[int, Any] = {}

    def writer_schema(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            text = self._client.get_schema(schema_id).schema_str
            if text is None:
                raise LookupError(f"the registry has no text for schema id {schema_id}")
            parsed = fastavro.parse_schema(orjson.loads(text))
            self._parsed[schema_id] = parsed
        return parsed


class EventDecoder:
    def __init__(self, schemas: SchemaSource | None = None) -> None:
        self._schemas = schemas
        self._reader: dict[str, Any] = {}

    def decode(self, topic: str, raw: bytes) -> Any:
        if raw[0] == CONFLUENT_MAGIC:
            return self._decode_avro(topic, raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not valid JSON: {exc}") from None

    def _decode_avro(self, topic: str, raw: bytes) -> Any:
        if self._schemas is None:
            raise DecodeError("Avro message (magic byte 0) but SCHEMA_REGISTRY_URL is not set")
        if len(raw) < CONFLUENT_HEADER.size:
            raise DecodeError("Avro message shorter than the 5-byte Confluent header")
        _, schema_id = CONFLUENT_HEADER.unpack_from(raw)
        try:
            writer = self._schemas.writer_schema(schema_id)
        except Exception as exc:  # the registry client raises its own error types
            raise DecodeError(f"schema id {schema_id} not readable from the registry: {exc}") from None
        reader = self._reader.get(topic)
        if reader is None:
            reader = fastavro.parse_schema(topic_schema(topic).avro)
            self._reader[topic] = reader
        try:
            return fastavro.schemaless_reader(io.BytesIO(raw[CONFLUENT_HEADER.size :]), writer, reader)
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise DecodeError(f"Avro body does not decode with schema id {schema_id}: {exc}") from None


def encode_avro(topic: str, record: dict[str, Any], schema_id: int) -> bytes:
    """Confluent wire format for `record` under the topic's schema, as a producer would write it."""
    out = io.BytesIO()
    out.write(CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(topic_schema(topic).avro), record)
    return out.getvalue()


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value)
