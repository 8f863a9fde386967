"""Main-text extraction from HTML: resiliparse against trafilatura on generated pages whose article
text is known (navigation, sidebar, cookie banner, comments, scripts and footer around it).

Speed: pages/s of each, timed side by side in alternating rounds. Quality: word-level precision
and recall of the extracted text against the article (micro-averaged over pages), and how many
pages came back empty.

    .venv/bin/python bench/extraction.py [--pages 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from corpora.web_pages import pages_from_texts

from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.sources.web import EXTRACTORS


def words(text: str) -> Counter:
    return Counter(w.strip(".,;:!?()[]'\"").lower() for w in text.split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.jsonl"
        write_demo_corpus(path, args.pages, min_chars=800, max_chars=4000)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    pages = pages_from_texts([(r["id"], r["text"]) for r in rows])
    mb = sum(len(p.html.encode()) for p in pages) / 1e6
    print(f"{len(pages)} pages, {mb:.1f} MB of HTML, {sum(len(p.main_text) for p in pages) / len(pages):.0f} "
          f"characters of article per page")
    extractors = EXTRACTORS  # the functions ingest uses (door.html_extractor)
    seconds = dict.fromkeys(extractors, 0.0)
    outputs: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, fn in extractors.items():
            t0 = time.perf_counter()
            outputs[name] = [fn(p.html) for p in pages]
            seconds[name] += time.perf_counter() - t0
    for name in extractors:
        tp = fp = fn_ = empty = 0
        for page, got in zip(pages, outputs[name], strict=True):
            want, have = words(page.main_text), words(got)
            overlap = sum((want & have).values())
            tp += overlap
            fp += sum(have.values()) - overlap
            fn_ += sum(want.values()) - overlap
            empty += not got.strip()
        rate = len(pages) * args.rounds / seconds[name]
        print(f"{name:12s} {rate:8.1f} pages/s {mb * args.rounds / seconds[name]:6.2f} MB/s  "
              f"precision {tp / (tp + fp):.4f} recall {tp / (tp + fn_):.4f}  empty {empty}")
    ratio = seconds["trafilatura"] / seconds["resiliparse"]
    print(f"resiliparse / trafilatura speed: {ratio:.1f}x")


if __name__ == "__main__":
    main()
