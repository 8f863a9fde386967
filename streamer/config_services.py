"""Settings of the services around the method: Kafka, Milvus, the workers, the door, metrics (one section
each of the one Config, streamer/config.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    # each setting's docstring is its description: docs/configuration.md is generated from them
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    """Brokers, host:port, comma-separated. The default is the embedded broker `up` starts."""
    topic_prefix: str = "elong."
    """Prefix of every topic and consumer group: several pipelines can share one cluster."""
    partitions: int = Field(4, ge=1)
    """Partitions of each topic `up` and `elong topics` create: the most workers a stage can use at once."""
    idle_fetch_backoff_ms: int = Field(0, ge=0)
    """>0 only for brokers without a fetch long poll (the embedded noida-db): see services/patches.py"""
    max_message_bytes: int = Field(16 << 20, ge=1 << 20, le=256 << 20)
    """The largest record a stage may produce (a document with its contexts, whole pool documents cut to the
    verifier's room, reaches megabytes): producers' max request size and the topics' max.message.bytes when
    `up` creates them. Topics created elsewhere need it too."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers (Kafka's security.protocol)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism for SASL_PLAINTEXT or SASL_SSL."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: str | None = Field(None, repr=False)
    """SASL password (never printed; better from ELONG_KAFKA__SASL_PASSWORD than from a file)."""
    ssl_cafile: str | None = None
    """The CA bundle (PEM) that signs the brokers' certificates, for security_protocol SSL or SASL_SSL."""
    ssl_certfile: str | None = None
    """Client certificate (PEM), where the brokers ask for one."""
    ssl_keyfile: str | None = None
    """The client certificate's private key (PEM)."""

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL_") and not (self.sasl_mechanism and self.sasl_username):
            raise ValueError(f"kafka.security_protocol {self.security_protocol} needs sasl_mechanism and "
                             "sasl_username (and sasl_password)")
        return self


class MilvusConfig(_Section):
    uri: str = "http://127.0.0.1:19530"
    """The Milvus server of the retrieval pool (`up` starts milvus-lite here), or a local .db file."""
    token: str | None = Field(None, repr=False)
    """Milvus credentials, user:password or an API key (never printed)."""
    collection: str = "elong_pool"
    """The pool's collection; {collection}_docs and {collection}_lines sit beside it."""

class AgentsConfig(_Section):
    """How stage workers take work; no part of any output, so not of any version."""

    batch_wait_s: float = Field(1.0, gt=0)
    """A worker takes up to max_batch records, or what arrived within batch_wait_s, per batch."""
    max_batch: dict[str, int] = {"entropy": 32, "index": 32, "retrieval": 16, "verify": 4}
    """Records a stage's worker (and batch mode) takes at once, per stage; a stage not named takes 8."""

    def batch_size(self, stage: str) -> int:
        """Records a stage takes at once, in its worker and in batch mode alike."""
        return self.max_batch.get(stage, 8)
    session_timeout_s: float = Field(10.0, ge=6.0, le=300.0)
    """A worker that stops heartbeating (killed, frozen) loses its partitions after this long; a restarted one
    gets them back no later. Lower means faster recovery and more false alarms."""
    instance_id: str | None = None
    """Static group membership (Kafka's group.instance.id): a worker restarted under the same id takes its
    partitions back at once, without a rebalance. Each concurrently running worker of a stage needs its own
    (`up` uses the worker's name; in Kubernetes, a StatefulSet pod name). None: a dynamic member. The
    embedded broker never expires a dead dynamic member: use static ids there."""
    poison_attempts: int = Field(3, ge=1, le=100)
    """A record on which its stage raises, run alone, this many times (and not because of an outage) goes to the
    dead letters with the count."""
    outage_backoff_s: float = Field(0.5, gt=0)
    """The first wait before a batch that met an outage (the vector store, the broker, the engine, the file system)
    runs again; each further try doubles it, jittered, up to outage_backoff_max_s. Nothing is committed meanwhile:
    lag shows the outage, the dead letters do not."""
    outage_backoff_max_s: float = Field(30.0, gt=0)
    """The longest wait between tries of a batch during an outage."""
    measurement_cache: bool = True
    """Keep the LM's measurements (scores, pair measurements) in their changelog topics so that a replay reruns
    no measurement; costs each LM worker memory for its partitions' measurements."""

    @model_validator(mode="after")
    def _positive(self) -> AgentsConfig:
        if any(n < 1 for n in self.max_batch.values()):
            raise ValueError("agents.max_batch values must be at least 1")
        return self


class DoorConfig(_Section):
    """The entrance, before any LM work: extraction, duplicates, language, length and quality.
    Part of no version (it decides which documents enter, not what any stage makes of one), but
    for the near-duplicate rule, which retrieval's leakage guard shares."""

    html_extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    """bench/extraction.py"""
    batch_records: int = Field(256, ge=1)
    """records ingest sends, and the door commits, at a time"""
    near_dedup: bool = True
    """MinHash LSH over every document ever admitted (data_dir/door.sqlite)"""
    near_dup_threshold: float = Field(0.8, gt=0, le=1)
    """estimated Jaccard of word shingles"""
    shingle_words: int = Field(5, ge=1)
    """Words per shingle of the MinHash signatures (enters the pool's version: retrieval's leakage guard uses them)."""
    minhash_permutations: int = Field(128, ge=8)
    """MinHash permutations per signature (a multiple of lsh_bands)."""
    lsh_bands: int = Field(16, ge=1)
    """bands x rows = permutations; more bands: more candidates"""
    languages: list[str] = []
    """ISO 639-1 codes (lingua, offline); empty: every language passes"""
    min_language_confidence: float = Field(0.5, ge=0, le=1)
    """A document whose detected language is less certain than this is dropped, when languages are set."""
    min_words: int = Field(10, ge=0)
    """Documents with fewer words are dropped."""
    max_words: int = Field(200_000, ge=1)
    """Documents with more words are dropped."""
    min_mean_word_length: float = Field(2.0, ge=0)
    """Gopher-style quality rules"""
    max_mean_word_length: float = Field(12.0, gt=0)
    """Documents whose mean word length is above this are dropped."""
    max_symbol_ratio: float = Field(0.1, ge=0)
    """'#' and '...' per word"""
    min_alpha_word_ratio: float = Field(0.5, ge=0, le=1)
    """words with at least one letter"""
    max_duplicate_line_ratio: float = Field(0.3, ge=0, le=1)
    """lines that repeat an earlier line"""

    @model_validator(mode="after")
    def _bands(self) -> DoorConfig:
        if self.minhash_permutations % self.lsh_bands:
            raise ValueError("door.minhash_permutations must be a multiple of door.lsh_bands")
        return self

    def near_duplicate_rule(self) -> tuple[int, int, float]:
        """What "the same document" means, for the door and for retrieval's leakage guard: the
        one part of this section that enters versions (the pool stores document signatures)."""
        return self.shingle_words, self.minhash_permutations, self.near_dup_threshold


class MetricsConfig(_Section):
    host: str = "127.0.0.1"
    """Interface the workers' Prometheus endpoints bind to."""
    port: int = Field(0, ge=0, le=65535)
    """Prometheus endpoint of a worker; 0 = none. `up` gives its workers port, port + 1, ..."""
    lag_interval_s: float = Field(5.0, gt=0)
    """how often a worker reads its group's consumer lag"""
