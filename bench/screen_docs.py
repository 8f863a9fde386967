"""The screen before exact verification on real documentation: the same candidates verified twice,
every context measured exactly, and screened first (verify.screen on), side by side in one run.

The PostgreSQL manual from Debian (bench/debian_docs.py), set up as bench/long_samples.py sets it up
(a pool of pages indexed whole, a few target pages through entropy and retrieval with SmolLM2; the
index and the entropy scores are shared with it). Both verifications start cold (no measurement
cache) and take the documents one at a time, as a worker would.

Printed for each: LM tokens per emitted token (entropy, screen, verify; emitted: the samples the
packer builds from the records), accepted dependencies, and for the screened build the share of
the exact build's accepted dependencies it also accepts (its recall against the exact build),
whether every pair both measured has the same measurement and verdict, and the rivals it measured
(under "specific", the removed contexts measured at each accepted anchor). The floor: every
emitted token read once.

    .venv/bin/python bench/screen_docs.py [--pool 400] [--targets 3] [--max-contexts 24] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import time

from debian_docs import PACKAGE, index_once
from long_samples import WORK, corpus_arguments, pool_and_targets
from rich.progress import Progress
from screen import pairs_by_key, same_measurements

from entropylong_streamer.config import load_config
from entropylong_streamer.measurements import MemoryCache
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import CandidatesRecord, DependenciesRecord, Doc


def verify_all(pipe: Pipeline, candidates: list[CandidatesRecord], name: str):
    stage = pipe.stage("verify", None)
    out: list[DependenciesRecord] = []
    t0 = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task(name, total=len(candidates))
        for c in candidates:
            out += stage.process([c]).outputs
            progress.advance(task)
    return out, stage.stats, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    corpus_arguments(ap)
    ap.add_argument("--max-contexts", type=int, default=24, help="retrieval.max_contexts")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="a setting of both verifications")
    ap.add_argument("--screen-set", dest="screen_sets", action="append", default=[],
                    help="a setting of the screened verification only")
    args = ap.parse_args()
    # the screen keeps every verdict exact under "specific" (the criterion it was built and measured for)
    base = [f"model.path={args.model!r}", f"data_dir={str(WORK)!r}", f"retrieval.max_contexts={args.max_contexts}",
            "verify.criterion='specific'", "verify.nll_threshold=0.3", "verify.span_tokens=1", *args.sets]
    cfg = load_config(None, base)
    pool, targets = pool_and_targets(args)
    pipe = Pipeline(cfg, milvus_uri=str(WORK / "pool.db"))
    docs = [Doc(doc_id=doc_id_for(t), text=t) for t in targets]
    index_once(pipe, [Doc(doc_id=doc_id_for(t), text=t) for t in pool] + docs, WORK)
    scores = MemoryCache.load(WORK / "scores.msgpack")
    entropy = pipe.stage("entropy", scores)
    anchors = entropy.process(docs).outputs
    scores.save(WORK / "scores.msgpack")
    k = len(pipe.separator)
    entropy_lm = sum(len(a.token_ids) + k for a in anchors)  # a cold run's entropy pass
    candidates = pipe.stage("retrieval").process(anchors).outputs
    print(f"{PACKAGE}: pool {len(pool)} pages, {len(targets)} targets, "
          f"{sum(len(c.candidates) for c in candidates)} context documents, "
          f"{sum(len(a.anchors) for a in anchors)} anchors; criterion {cfg.verify.criterion}")
    screened_pipe = Pipeline(load_config(None, [*base, "verify.screen='on'", *args.screen_sets]),
                             milvus_uri=str(WORK / "pool.db"))
    screened_pipe.engine = pipe.engine  # one model in memory
    builds = {"exact": verify_all(pipe, candidates, "exact"), "screened": verify_all(screened_pipe, candidates,
                                                                                     "screened")}
    print(f"\n{'':<10}{'LM tok/emitted':>15}{'entropy':>9}{'screen':>9}{'verify':>9}{'emitted':>9}{'accepted':>9}"
          f"{'recall vs exact':>16}{'verify s':>9}")
    per = {}
    exact_accepted = {key for key, p in pairs_by_key(builds["exact"][0]).items() if p.accepted}
    for name, (recs, stats, wall) in builds.items():
        emitted = sum(len(sample_from(r, pipe.separator, cfg.pack.seed, cfg.pack.sample_length)) for r in recs)
        screen = stats.get("screen_lm_tokens", 0)
        verify = stats.get("lm_tokens", 0) - screen
        per[name] = (entropy_lm + screen + verify) / max(emitted, 1)
        accepted = {key for key, p in pairs_by_key(recs).items() if p.accepted}
        recall = len(accepted & exact_accepted) / max(len(exact_accepted), 1)
        print(f"{name:<10}{per[name]:>15.2f}{entropy_lm / emitted:>9.2f}{screen / emitted:>9.2f}"
              f"{verify / emitted:>9.2f}{emitted:>9,}{len(accepted):>9}{recall:>16.3f}{wall:>9.0f}")
    stats = builds["screened"][1]
    print(f"floor: 1.00 LM token per emitted token; exact / screened {per['exact'] / per['screened']:.2f}x (goal >= 3)")
    print(f"screen: {stats.get('contexts_screened', 0)} contexts screened, {stats.get('contexts_screened_out', 0)} "
          f"not measured, {stats.get('contexts_not_worth_screening', 0)} measured at once; "
          f"{stats.get('rival_pairs_measured', 0):,} pairs of removed contexts measured as rivals of accepted ones")
    n, diff, verdicts = same_measurements(builds["exact"][0], builds["screened"][0])
    print(f"pairs both measured: {n:,}; largest |H' or NLL' difference| {diff:.1e}; verdicts differing {verdicts}")


if __name__ == "__main__":
    main()
