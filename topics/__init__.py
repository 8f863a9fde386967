"""Topic contracts: name, partitions, key, record schema and schema version for every topic."""

from .anchors import ANCHORS, Anchor, AnchorsRecord
from .base import Record, RecordError, TopicSpec
from .candidates import CANDIDATES, Candidate, CandidatesRecord
from .cost import LMCost
from .dead_letter import DEAD_LETTER, DeadLetter
from .dependencies import DEPENDENCIES, Context, DependenciesRecord, Pair, Screened
from .docs import DOCS, Doc
from .dropped import DROPPED, DroppedDoc
from .measurements import MEASUREMENTS, SCORES, Measured, Scored
from .model_versions import MODEL_VERSIONS, ModelVersion
from .shard_ready import SHARD_READY, ShardReady
from .verified import VERIFIED, VerifiedContext, VerifiedRecord

ALL_TOPICS: tuple[TopicSpec, ...] = (DOCS, ANCHORS, CANDIDATES, DEPENDENCIES, SHARD_READY, DEAD_LETTER,
                                     MEASUREMENTS, SCORES, DROPPED, MODEL_VERSIONS, VERIFIED)

__all__ = [
    "ALL_TOPICS", "ANCHORS", "CANDIDATES", "DEAD_LETTER", "DEPENDENCIES", "DOCS", "DROPPED", "MEASUREMENTS",
    "MODEL_VERSIONS", "SCORES", "SHARD_READY", "VERIFIED", "DroppedDoc",
    "Anchor", "AnchorsRecord", "Candidate", "CandidatesRecord", "Context", "DeadLetter",
    "DependenciesRecord", "Doc", "LMCost", "Measured", "ModelVersion", "Pair", "Scored", "Record", "RecordError",
    "Screened", "ShardReady", "TopicSpec", "VerifiedContext", "VerifiedRecord",
]
