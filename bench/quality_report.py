"""The data-quality report on a constructed corpus whose dependencies are known: each report's facts
(random names and numbers) appear in one other document only, its entity's profile. Batch build,
then `elong report`, both with SmolLM2 on CPU; prints the report's summary.

    .venv/bin/python bench/quality_report.py [--entities 12] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from corpora.lookalike_corpus import write_corpus_files
from rich.console import Console

from entropylong_streamer.batch import build
from entropylong_streamer.config import load_config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.command import run_report

DEMO = Path(__file__).resolve().parents[1] / "deploy" / "demo.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=12, help="entities per kind (3 kinds)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    # The demo's settings; the reports are ~85 tokens, so anchors at alpha 1 and merge distance 4.
    cfg = load_config(DEMO, [f"data_dir={str(Path('.elong/demo').resolve())!r}", "entropy.alpha=1.0",
                             "entropy.merge_distance=4", *args.sets])
    with tempfile.TemporaryDirectory() as tmp:
        docs, pool = write_corpus_files(Path(tmp), args.entities)
        out = Path(tmp) / "out"
        pipe = Pipeline(cfg, milvus_uri=str(out / "pool.db"))
        t0 = time.perf_counter()
        build(cfg, [docs], [pool], out, pipeline=pipe)
        t1 = time.perf_counter()
        run_report(cfg, Console(), batch_dir=out, pipeline=pipe, out=Path(".elong/bench/quality-report"))
        t2 = time.perf_counter()
    print(f"build {t1 - t0:.1f} s, report {t2 - t1:.1f} s (the models load during the build)")


if __name__ == "__main__":
    main()
