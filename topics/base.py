"""What every topic contract shares: a frozen spec, msgpack encoding and validated decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import msgpack
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

MAX_RECORD_BYTES = 64 * 1024 * 1024


class RecordError(ValueError):
    """A record that cannot be decoded or does not match its topic's schema."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    SCHEMA_VERSION: ClassVar[int] = 1
    # earlier schema versions of this record still read (a "before" validator upgrades them), so a
    # topic written by the previous release drains after an upgrade instead of dead-lettering
    UPGRADES_FROM: ClassVar[tuple[int, ...]] = ()

    schema_version: int = 1

    @model_validator(mode="before")
    @classmethod
    def _upgrade_schema(cls, data: Any) -> Any:
        """A record of an earlier schema this one still reads: the fields it lacks take their defaults."""
        if isinstance(data, dict) and data.get("schema_version") in cls.UPGRADES_FROM:
            data = data | {"schema_version": cls.SCHEMA_VERSION}
        return data


class FromSource(Record):
    """Where a record's document came from (Doc.url, .source, .source_id), carried to the samples."""

    url: str = ""
    source: str = ""  # where it was read: file and line, Parquet row, WARC record offset
    source_id: str = ""  # the source's own id: a JSONL or Parquet `id`, a WARC-Record-ID

    def origin(self) -> dict[str, str]:
        """The three fields, to carry into the next record."""
        return {"url": self.url, "source": self.source, "source_id": self.source_id}


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class TopicSpec(Generic[R]):
    """A topic's contract. The full name is the configured prefix plus `name`."""

    name: str
    record: type[R]
    key_field: str = "doc_id"
    partitions: int | None = None  # None: the configured default partition count
    compacted: bool = False  # a changelog: the broker keeps the latest record per key

    def full_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def encode(self, record: R) -> bytes:
        if not isinstance(record, self.record):
            raise TypeError(f"topic {self.name} takes {self.record.__name__}, got {type(record).__name__}")
        return msgpack.packb(record.model_dump(mode="python"), use_bin_type=True)

    def key(self, record: R) -> bytes:
        return str(getattr(record, self.key_field)).encode()

    def decode(self, raw: bytes | None) -> R:
        if raw is None or len(raw) == 0:
            raise RecordError("empty record")
        if len(raw) > MAX_RECORD_BYTES:
            raise RecordError(f"record of {len(raw)} bytes exceeds {MAX_RECORD_BYTES}")
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types for bad bytes
            raise RecordError(f"not msgpack: {type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise RecordError(f"expected a map, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != self.record.SCHEMA_VERSION and version not in self.record.UPGRADES_FROM:
            raise RecordError(
                f"unknown schema_version {version!r} for topic {self.name} "
                f"(expected {self.record.SCHEMA_VERSION})"
            )
        try:
            return self.record.model_validate(data)
        except ValidationError as exc:
            raise RecordError(f"schema mismatch for topic {self.name}: {exc.errors()[:3]}") from exc
