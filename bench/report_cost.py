"""What `elong report` costs, before and after its plan (issue 24), side by side on the same build:
"before" measures every curve (no LM budget, the no-context forwards run again), "after" is the
default (`--max-lm-tokens` 250,000, the no-context point read from the entropy stage's scores).
Prints LM tokens, wall time and when the first figures were on disk.

Builds the demo's quick-reference sheets over their stdlib reference pages with SmolLM2
(`deploy/demo.toml`), once with the demo's 6 sheets and once with 16.

    .venv/bin/python bench/report_cost.py [--sheets 6 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console

from entropylong_streamer.batch import build
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_reference_demo
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.command import run_report

DEMO = Path(__file__).resolve().parents[1] / "deploy" / "demo.toml"


def one_report(cfg, out: Path, pipe, **kw) -> tuple[dict, float, float]:
    """-> (report, wall seconds, seconds until report.json first existed)."""
    target = Path(tempfile.mkdtemp(prefix="elong-report-"))
    t0 = time.perf_counter()
    first = []

    class Watch(Console):  # the summary is printed right after the figures are written
        def print(self, *a, **k):
            if not first and (target / "report.json").exists():
                first.append(time.perf_counter() - t0)
            super().print(*a, **k)

    report, _ = run_report(cfg, Watch(quiet=True), batch_dir=out, pipeline=pipe, out=target, show_progress=False,
                           **kw)
    return report, time.perf_counter() - t0, first[0] if first else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sheets", type=int, nargs="+", default=[6, 16])
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    for sheets in args.sheets:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "data").mkdir()
            (work / "data" / "models").symlink_to(Path(".elong/demo/models").resolve(), target_is_directory=True)
            cfg = load_config(DEMO, [f"data_dir={str(work / 'data')!r}", *args.sets])
            docs, pool, n_docs, n_pool = write_reference_demo(work / "corpus", sheets)
            out = work / "out"
            pipe = Pipeline(cfg, milvus_uri=str(out / "pool.db"))
            t0 = time.perf_counter()
            build(cfg, [docs], [pool], out, pipeline=pipe, show_progress=False)
            print(f"{n_docs} sheets over {n_pool} reference pages, SmolLM2: build {time.perf_counter() - t0:.0f} s")
            for label, kw in (("before (every curve, no budget)", {"max_lm_tokens": None, "reuse_scores": False}),
                              ("after (default plan)", {})):
                report, wall, first = one_report(cfg, out, pipe, **kw)
                c, s = report["curves"], report["samples"]["tokens_per_sample"]
                print(f"  {label:<34} {c.get('lm_tokens', 0):9,} LM tokens ({c['lm_tokens_reused']:,} read), "
                      f"{wall:6.1f} s, figures on disk after {first:5.1f} s; {c['documents']} documents, grid "
                      f"{c['grid']}, left out {c['left_out_documents']} documents {c['left_out_lengths']}; "
                      f"samples mean {s['mean'] or 0:,.0f} tokens")


if __name__ == "__main__":
    main()
