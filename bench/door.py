"""The door's documents/s against bare reading of the same files, and against the entropy stage
on the default model (goal: the door is never the bottleneck, >= 20x the entropy stage).

Inputs, generated here: a WARC file of HTML pages (demo texts in page boilerplate) and a JSONL
file of the same texts, each with 10% exact and 10% near duplicates (a few words changed).
Bare reading: fastwarc records read / JSONL lines parsed, nothing else. The door: reading,
main-text extraction (WARC), exact and near duplicates against a file-backed index committed
every batch, language id (English; its models load at start-up, before the clock) and the quality rules.
Entropy: SmolLM2 on a sample of the admitted documents, as the entropy stage runs it.

    .venv/bin/python bench/door.py [--pages 600] [--entropy-docs 16] [--extractor resiliparse]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

from corpora.web_pages import pages_from_texts

from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.ingest import Door
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.services.door_index import DoorIndex
from entropylong_streamer.sources import BadRow, read_documents

DEMO = Path(__file__).resolve().parents[1] / "deploy" / "demo.toml"


def with_duplicates(texts: list[str], rng: random.Random) -> list[str]:
    out = list(texts)
    for t in rng.sample(texts, len(texts) // 10):
        out.append(t)  # exact
    for t in rng.sample(texts, len(texts) // 10):
        words = t.split()
        words[rng.randrange(len(words))] = "changed"
        out.append(" ".join(words))  # near
    rng.shuffle(out)
    return out


def write_warc(path: Path, pages) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for p in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(p.url, "response", payload=io.BytesIO(p.html.encode()),
                                                http_headers=http))


def bare_warc(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator

    n = 0
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            rec.reader.read()
            n += 1
    return n


def bare_jsonl(path: Path) -> int:
    with open(path) as fh:
        return sum(1 for line in fh if json.loads(line)["text"])


def through_door(cfg, path: Path, index_path: Path) -> tuple[int, int, list, float]:
    door = Door(cfg.door, DoorIndex(index_path))  # the language models load here
    admitted, seen = [], 0
    t0 = time.perf_counter()
    for item in read_documents([path], cfg.door.html_extractor):
        seen += 1
        if not isinstance(item, BadRow) and not hasattr(out := door.admit(item), "rule"):
            admitted.append(out)
        if seen % cfg.door.batch_records == 0:
            door.index.commit()
    door.index.commit()
    return seen, len(admitted), admitted, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=600)
    ap.add_argument("--entropy-docs", type=int, default=16)
    ap.add_argument("--extractor", default="trafilatura", choices=["trafilatura", "resiliparse"])
    args = ap.parse_args()
    cfg = load_config(DEMO, ["door.languages=['en']", "door.min_language_confidence=0.0",
                             f"door.html_extractor={args.extractor!r}"])
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        distinct = write_demo_corpus(tmp / "demo.jsonl", args.pages, min_chars=800, max_chars=4000)
        texts = with_duplicates([json.loads(x)["text"] for x in (tmp / "demo.jsonl").read_text().splitlines()], rng)
        jsonl = tmp / "docs.jsonl"
        jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        warc = tmp / "crawl.warc.gz"
        write_warc(warc, pages_from_texts([(f"page {i}", t) for i, t in enumerate(texts)]))
        rows = []
        for name, path, bare in ((f"WARC ({args.extractor})", warc, bare_warc), ("JSONL", jsonl, bare_jsonl)):
            t0 = time.perf_counter()
            n_bare = bare(path)
            t_bare = time.perf_counter() - t0
            seen, n_in, admitted, t_door = through_door(cfg, path, tmp / f"{name[:4]}.sqlite")
            rows.append((name, n_bare / t_bare, seen / t_door, n_in, seen))
        sample = admitted[: args.entropy_docs]
        entropy = Pipeline(cfg.copy_with({"data_dir": str(Path(".elong/demo").resolve())})).entropy()
        entropy.process(sample[:2])  # warm-up: the model loads
        t0 = time.perf_counter()
        entropy.process(sample)
        entropy_rate = len(sample) / (time.perf_counter() - t0)
    print(f"{len(texts)} documents per file ({distinct} distinct, 10% exact and 10% near copies added)")
    for name, bare_rate, door_rate, n_in, seen in rows:
        print(f"{name:20s} bare {bare_rate:9.1f} docs/s   door {door_rate:8.1f} docs/s "
              f"({door_rate / bare_rate:.3f} of bare, {door_rate / entropy_rate:.0f}x the entropy stage); "
              f"admitted {n_in} of {seen}")
    print(f"entropy stage (SmolLM2, {len(sample)} admitted documents): {entropy_rate:.2f} docs/s")


if __name__ == "__main__":
    main()
