"""MDS shard sets on disk: atomic shards, a manifest that says which are durable, and reading back.

Layout: <root>/<config version>/shard-000000/{index.json, shard.00000.mds}, plus manifest.jsonl
and index.json, the merged index over the durable shards (the set opens as one MDS dataset).
A shard is durable once its line is in the manifest; a shard directory without one (a crash between
rename and manifest) is an orphan, removed on open, and its records are replayed from Kafka because
their offsets were never committed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from entropylong_streamer.method.packing import Sequence
from entropylong_streamer.method.samples import sample_key

from .durable import fsync_dir, fsync_files
from .patches import import_streaming  # noqa: F401 (the shard set's readers import it from here)

log = logging.getLogger(__name__)

COLUMNS = {
    "input_ids": "ndarray:uint32",
    "indices": "ndarray:uint32",
    "length": "int",
    "domain": "str",
    "doc_ids": "json",
    "source_ids": "json",  # each sample's document as its source names it (JSONL/Parquet id, WARC-Record-ID)
    "urls": "json",
    "config_version": "str",
    # One [anchor, context start, context end] per verified (context, anchor) pair of the sequence's
    # samples, in sequence positions: the anchor token depends on tokens [start, end). JSON, since
    # MDS refuses an empty array and a sequence may hold none.
    "dependencies": "json",
    # The depth of each of those (1: a context of the sample's document; 2: a context of one of its
    # contexts, pack.depth), in the same order.
    "dependency_depths": "json",
    # One [context id, start, end, depth] per context of the sequence's samples, in sequence positions.
    "contexts": "json",
}


MANIFEST = "manifest.jsonl"
DOCUMENTS = "documents.jsonl"  # beside a shard's MDS files: its samples' documents


def read_manifest(shard_dir: Path) -> list[dict]:
    """The durable shards of a shard set, in order ([] where it has none yet). Every reader of a
    manifest uses this: a torn last line (a crash mid-append) ends it, for that shard is not durable."""
    path = Path(shard_dir) / MANIFEST
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return entries


class ShardSet:
    def __init__(self, root: Path, config_version: str) -> None:
        self.dir = Path(root) / config_version
        self.config_version = config_version
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.dir / MANIFEST
        self.entries = read_manifest(self.dir)
        self._indexed: list[dict] = []  # the root index's shard infos, of the first _indexed_shards entries
        self._indexed_shards = 0
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        durable = {e["shard_id"] for e in self.entries}
        for path in self.dir.iterdir():
            if path.is_dir() and path.name not in durable:
                shutil.rmtree(path)
        text = "".join(json.dumps(e) + "\n" for e in self.entries)
        if self.manifest_path.exists() and self.manifest_path.read_text() != text:
            _atomic_write(self.manifest_path, text)
        if self.entries:  # the root index names exactly the durable shards
            self._write_root_index(at_start=True)

    @property
    def doc_ids(self) -> set[str]:
        return {d for e in self.entries for d in e["doc_ids"]}

    @property
    def sample_keys(self) -> set[str]:
        """Every packed sample's Sample.key: its document, and the version that asked for it again."""
        return {sample_key(d, r) for e in self.entries
                for d, r in zip(e["doc_ids"], e.get("rescores") or [""] * len(e["doc_ids"]), strict=True)}

    def next_shard_id(self) -> str:
        return f"shard-{len(self.entries):06d}"

    def write(self, sequences: list[Sequence], domain: str, documents: list[dict] | None = None) -> dict:
        """Write one MDS directory atomically, then record it in the manifest (fsynced). documents: the
        samples' documents (doc_id, text, url, source, source_id), kept beside the MDS files in
        documents.jsonl for a later rescoring by a newer model version (policy.rescore_last_shards).
        A write the disk refuses (full, gone) raises with nothing of it visible and its space freed: the
        caller writes the same shard again later."""
        shard_id = self.next_shard_id()
        tmp = self.dir / f".tmp-{shard_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            final = self._write_files(tmp, shard_id, sequences, domain, documents)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry = {
            "shard_id": shard_id,
            "path": str(final),
            "sequences": len(sequences),
            "samples": sum(len(s.samples) for s in sequences),
            "tokens": sum(s.used for s in sequences),
            "contexts": sum(len(x.context_ids) for q in sequences for x in q.samples),
            **_doc_columns([s for q in sequences for s in q.samples]),
            **shard_report(sequences),
        }
        try:
            self._record(entry)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)  # not in the manifest: not a shard
            raise
        return entry

    def _write_files(self, tmp: Path, shard_id: str, sequences: list[Sequence], domain: str,
                     documents: list[dict] | None) -> Path:
        streaming = import_streaming()
        with streaming.MDSWriter(out=str(tmp), columns=COLUMNS, size_limit=1 << 30) as writer:
            for seq in sequences:
                ids = seq.token_ids()
                writer.write({
                    "input_ids": np.asarray(ids, dtype=np.uint32),
                    "indices": np.asarray(seq.spans(), dtype=np.uint32).reshape(-1, 2),
                    "length": len(ids),
                    "domain": domain,
                    "doc_ids": [s.doc_id for s in seq.samples],
                    "source_ids": [s.source_id for s in seq.samples],
                    "urls": [s.url for s in seq.samples],
                    "config_version": self.config_version,
                    "dependencies": sequence_dependencies(seq),
                    "dependency_depths": [d.depth for s in seq.samples for d in s.dependencies],
                    "contexts": sequence_contexts(seq),
                })
        if documents is not None:
            (tmp / DOCUMENTS).write_text("".join(json.dumps(d) + "\n" for d in documents))
        fsync_files(tmp)  # the data must be on disk before the manifest says it is
        final = self.dir / shard_id
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync_dir(self.dir)
        return final

    def _record(self, entry: dict) -> None:
        """Append the shard's manifest line, fsynced; a line the disk refused halfway is cut off again."""
        size = self.manifest_path.stat().st_size if self.manifest_path.exists() else 0
        try:
            with open(self.manifest_path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with open(self.manifest_path, "r+") as fh:
                fh.truncate(size)
            raise
        self.entries.append(entry)
        try:
            self._write_root_index()
        except OSError as exc:  # derived from the manifest: written again with the next shard or at start
            log.warning("the shard set's index.json was not rewritten (%s): it is at the next shard", exc)

    def _write_root_index(self, at_start: bool = False) -> None:
        """mosaicml-streaming's merged index over the durable shards (the layout of its merge_index:
        each shard's file names prefixed by its folder), so StreamingDataset(local=<this set>) and
        the EntropyLong/ProLong loader open the whole set. Replaced atomically: a reader sees the
        index before or after a shard, never half of one. Only the shards not yet in it are read (at
        start every one; then the new shard's own index.json): a set's thousandth shard costs what its
        first did, but for one JSON dump of the whole list."""
        for entry in self.entries[self._indexed_shards :]:
            infos = json.loads((self.dir / entry["shard_id"] / "index.json").read_text())["shards"]
            for info in infos:
                for key in ("raw_data", "zip_data", "raw_meta", "zip_meta"):
                    if info.get(key):
                        info[key]["basename"] = f"{entry['shard_id']}/{info[key]['basename']}"
            self._indexed += infos
            self._indexed_shards += 1
        text = json.dumps({"version": 2, "shards": self._indexed})
        root = self.dir / "index.json"
        if not (at_start and root.exists() and root.read_text() == text):  # a reopened set leaves it as it is
            _atomic_write(root, text)


def _doc_columns(samples: list) -> dict:
    """The manifest's doc_ids, sorted, and (only where one was sent again to be rescored) the version that asked."""
    ordered = sorted(samples, key=lambda s: (s.doc_id, s.rescore))
    out: dict = {"doc_ids": [s.doc_id for s in ordered]}
    if any(s.rescore for s in ordered):
        out["rescores"] = [s.rescore for s in ordered]
    return out


def read_documents(shard_path: Path) -> list[dict]:
    """The documents of a shard's samples (doc_id, text, url, source, source_id); [] for a shard
    written before they were kept."""
    path = Path(shard_path) / DOCUMENTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def sequence_dependencies(seq: Sequence) -> list[list[int]]:
    """[anchor, context start, context end] of every dependency in the sequence, in its positions."""
    return [[start + d.anchor, start + d.context_start, start + d.context_end]
            for (start, _), s in zip(seq.spans(), seq.samples, strict=True) for d in s.dependencies]


def sequence_contexts(seq: Sequence) -> list[list]:
    """[context id, start, end, depth] of every context in the sequence, in its positions."""
    return [[c, start + a, start + b, k] for (start, _), s in zip(seq.spans(), seq.samples, strict=True)
            for c, (a, b), k in zip(s.context_ids, s.context_spans, s.context_depths, strict=True)]


def spread(values: list[int]) -> dict:
    """Median, p90 and max of a list of token counts (None for an empty one)."""
    if not values:
        return {"median": None, "p90": None, "max": None}
    v = np.asarray(values)
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "max": int(v.max())}


def spread_text(s: dict, unit: str = "") -> str:
    """A spread as every summary prints it: "median 2,440, p90 19,679, max 27,065 tokens" ("none" when
    empty: the unit goes with the figures, never after "none")."""
    if s["max"] is None:
        return "none"
    return f"median {s['median']:,.0f}, p90 {s['p90']:,.0f}, max {s['max']:,.0f}" + (f" {unit}" if unit else "")


def shard_report(sequences: list[Sequence]) -> dict:
    """Fill ratio, samples and contexts per sequence, mean dI of the contexts packed, sample lengths
    and dependency distances (anchor to the end of its context, in tokens)."""
    scores = [d for q in sequences for x in q.samples for d in x.context_scores]
    n = max(len(sequences), 1)
    lengths = sorted(len(x) for q in sequences for x in q.samples)
    distances = sorted(d.from_end for q in sequences for x in q.samples for d in x.dependencies)
    return {
        "sample_tokens": spread(lengths),
        "dependency_distance": spread(distances),
        # the values themselves (a few KB a shard), so a summary over shards is exact
        "sample_lengths": lengths,
        "dependency_distances": distances,
        "seq_len": sequences[0].capacity if sequences else 0,
        "fill_ratio": sum(q.used for q in sequences) / max(sum(q.capacity for q in sequences), 1),
        "samples_per_sequence": sum(len(q.samples) for q in sequences) / n,
        "contexts_per_sequence": sum(len(x.context_ids) for q in sequences for x in q.samples) / n,
        "mean_context_di": sum(scores) / len(scores) if scores else None,
    }


def read_shard(path: Path) -> list[dict]:
    """Every sequence of one MDS directory, decoded by mosaicml-streaming's own MDS reader.

    Not through a StreamingDataset: each one holds ~66 file descriptors of shared memory that are
    never released in the process (measured), so a rolling trainer reading a shard at a time would
    run out of descriptors after a few hundred shards. tests/stages/test_pack.py checks that a
    StreamingDataset, as ProLong's trainer uses it, reads the same sequences.
    """
    import_streaming()
    from streaming.base.format import reader_from_json

    index = json.loads((Path(path) / "index.json").read_text())
    out = []
    for info in index["shards"]:
        reader = reader_from_json(str(path), None, info)
        out += [reader[i] for i in range(reader.samples)]
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
