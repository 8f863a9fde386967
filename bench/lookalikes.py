"""Precision and recall of the two acceptance criteria on a corpus with lookalike distractors.

Each report's candidates are its true source (the entity's profile) and lookalikes (profiles of
other entities of the same kind: same template, other names and numbers), every candidate linked
to every anchor the entropy stage found in the report. A context is accepted when at least one of
its pairs is (that is what the packer puts in a sample). Precision = true sources among accepted
contexts; recall = true sources accepted among all true sources. Both criteria read the same
measurements: one verify pass, the second criterion is a replay with no LM work.

    .venv/bin/python bench/lookalikes.py [--entities 12] [--lookalikes 4] [--model smollm2]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from corpora.lookalike_corpus import lookalike_corpus

from entropylong_streamer.config import load_config
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.topics import Candidate, CandidatesRecord, Doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=12, help="entities per kind (3 kinds)")
    ap.add_argument("--lookalikes", type=int, default=4, help="lookalike candidates per report")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(Path('.elong/demo').resolve())!r}",
                             *args.sets])
    entities = lookalike_corpus(args.entities, seed=0)
    pipe = Pipeline(cfg)
    docs = [Doc(doc_id=f"report-{e.entity_id}", text=e.report) for e in entities]
    t0 = time.perf_counter()
    anchors = pipe.stage("entropy").process(docs).outputs
    assert len(anchors) == len(docs), "a report was dead-lettered"
    rng = random.Random(0)
    records = []
    for e, arec in zip(entities, anchors, strict=True):
        others = rng.sample([o for o in entities if o.kind == e.kind and o is not e], args.lookalikes)
        # Half the lookalikes are other entities' profiles, half their reports (D's own template).
        texts = [(f"profile-{e.entity_id}", e.profile)] + [
            (f"report-{o.entity_id}", o.report) if i % 2 else (f"profile-{o.entity_id}", o.profile)
            for i, o in enumerate(others)]
        every = [a.index for a in arec.anchors]
        records.append(CandidatesRecord(anchors=arec, config_version="bench", candidates=[
            Candidate(context_id=cid, context_doc_id=cid, text=text, score=1.0, anchor_indices=every)
            for cid, text in texts]))
    deps = pipe.stage("verify").process(records).outputs
    wall = time.perf_counter() - t0

    v = cfg.verify
    criteria = {"entropy": Criterion(v.epsilon), "entropy+loss": Criterion(v.epsilon, "entropy+loss", v.nll_threshold)}
    fact_pairs = [(p, p.context_id == f"profile-{e.entity_id}")
                  for e, dep in zip(entities, deps, strict=True) for p in dep.pairs
                  if e.is_fact(p.char_start, p.char_end)]
    n_true = sum(truth for _, truth in fact_pairs)
    print(f"{len(deps)} reports, {sum(len(a.anchors) for a in anchors)} anchors, "
          f"{sum(len(d.pairs) for d in deps)} pairs, {len(fact_pairs)} of them at facts "
          f"({n_true} with the true source); 1 true source + {args.lookalikes} lookalikes per report; "
          f"{wall:.0f} s")
    print("At the report's facts (names, numbers): a lookalike pair accepted there is confidently wrong.")
    print(f"{'criterion':<14}{'precision':>10}{'recall':>8}{'true accepted':>15}{'lookalikes accepted':>21}")
    for name, crit in criteria.items():
        accepted = [truth for p, truth in fact_pairs if crit.accepts(p.h, p.h_ctx, p.nll, p.nll_ctx)]
        tp, fp = sum(accepted), len(accepted) - sum(accepted)
        print(f"{name:<14}{tp / max(tp + fp, 1):>10.2f}{tp / max(n_true, 1):>8.2f}{tp:>9}/{n_true:<5}"
              f"{fp:>12}/{len(fact_pairs) - n_true}")
    print("By kind of context, at the facts: mean dI, share with dI > epsilon, share whose true-token NLL rose")
    for kind in ("true source", "lookalike profile", "lookalike report"):
        rows = [p for p, truth in fact_pairs if _kind(p.context_id, truth) == kind]
        if rows:
            print(f"  {kind:<18} {len(rows):>4} pairs  mean dI {sum(p.d_i for p in rows) / len(rows):+.2f}  "
                  f"dI > eps {sum(p.d_i > v.epsilon for p in rows) / len(rows):.2f}  "
                  f"NLL rose {sum(p.nll_ctx > p.nll for p in rows) / len(rows):.2f}")


def _kind(context_id: str, truth: bool) -> str:
    return "true source" if truth else f"lookalike {context_id.split('-', 1)[0]}"


if __name__ == "__main__":
    main()
