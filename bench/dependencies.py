"""Which dependencies does the pipeline find? Fact-level recall and precision on a constructed
catalogue corpus, for each separator and each acceptance criterion, in one run.

The corpus (streamer/lookalike_corpus.catalogue_corpus): citing documents list the facts of two
entities, one fact per short line (names, years, ports, versions: random, so the model cannot know
them); each entity's facts are stated by exactly one catalogue entry in the pool, beside at least 3
same-template lookalike entries per source (other names and numbers), a near copy of every citing
document (the leakage guard must keep it out) and unrelated pages (the standard library's docs).

For each separator the real batch build runs once (SmolLM2, every anchor measured against every
retrieved context: verify.all_anchors); every criterion, and measuring only the pairs whose query
retrieved the context, are replays of the same measurements (no LM work).

- fact recall: (fact, its source) dependencies found, i.e. the source accepted at an anchor inside
  the fact's span, over every fact of every citing document;
- fact precision: of the (fact, context) pairs accepted at an anchor inside a fact, the share whose
  context is the fact's source;
- sample precision: of the contexts a sample would hold (accepted at any anchor), the share that
  are a source of the document (what the trainer receives).

    .venv/bin/python bench/dependencies.py [--docs 16] [--alpha 1.0] [--separator 0 --separator '"\\n\\n"']
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from entropylong_streamer.batch import build
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.lookalike_corpus import Catalogue, catalogue_corpus, write_catalogue_files
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import RECORDS_FILE, read_records
from entropylong_streamer.stages.ingest import doc_id_for
from entropylong_streamer.topics import DependenciesRecord

CRITERIA = {
    "paper (dI > 0.4)": Criterion(0.4),
    "loss-aware 0.2": Criterion(0.4, "entropy+loss", 0.2),
    "loss-aware 0.4": Criterion(0.4, "entropy+loss", 0.4),
    "paper + veto 0.5": Criterion(0.4, "entropy", 0.2, veto_nll_rise=0.5),
    "loss 0.2 + veto 1.0": Criterion(0.4, "entropy+loss", 0.2, veto_nll_rise=1.0),
    "loss 0.2 + veto 0.5": Criterion(0.4, "entropy+loss", 0.2, veto_nll_rise=0.5),
    "loss 0.2 + veto 0.25": Criterion(0.4, "entropy+loss", 0.2, veto_nll_rise=0.25),
}


@dataclass
class Scores:
    fact_recall: float
    fact_precision: float
    sample_precision: float
    sample_recall: float
    contexts_per_doc: float
    accepted_pairs: int
    mean_d_i: float


def evaluate(catalogue: Catalogue, records: list[DependenciesRecord], criterion: Criterion,
             retrieved_only: bool) -> Scores:
    docs = {doc_id_for(d.text): d for d in catalogue.docs}
    names = {doc_id_for(text): name for name, text in catalogue.pool()}
    facts = found = 0
    fact_pairs: set[tuple[str, int, str]] = set()
    fact_true = 0
    contexts = true_contexts = sources = 0
    accepted_pairs, d_is = 0, []
    for rec in records:
        doc = docs[rec.doc_id]
        ctx_name = {c.context_id: names.get(c.context_doc_id, c.context_doc_id) for c in rec.contexts}
        by_context = defaultdict(list)
        for p in rec.pairs:
            if p.retrieved or not retrieved_only:
                by_context[p.context_id].append(p)
        hits: set[tuple[int, str]] = set()
        accepted_contexts = set()
        for cid, pairs in by_context.items():
            for p, ok in zip(pairs, criterion.decide([(p.h, p.h_ctx, p.nll, p.nll_ctx) for p in pairs]), strict=True):
                if not ok:
                    continue
                accepted_pairs += 1
                d_is.append(p.d_i)
                accepted_contexts.add(ctx_name[cid])
                for f in doc.facts_at(p.char_start, p.char_end):
                    i = doc.facts.index(f)
                    fact_pairs.add((rec.doc_id, i, ctx_name[cid]))
                    hits.add((i, ctx_name[cid]))
        doc_sources = {f.source_id for f in doc.facts}
        facts += len(doc.facts)
        found += sum((i, f.source_id) in hits for i, f in enumerate(doc.facts))
        fact_true += sum(doc.facts[i].source_id == c for i, c in hits)
        contexts += len(accepted_contexts)
        true_contexts += len(accepted_contexts & doc_sources)
        sources += len(doc_sources)
    return Scores(found / max(facts, 1), fact_true / max(len(fact_pairs), 1), true_contexts / max(contexts, 1),
                  true_contexts / max(sources, 1), contexts / max(len(records), 1), accepted_pairs,
                  sum(d_is) / max(len(d_is), 1))


def why_missed(catalogue: Catalogue, records: list[DependenciesRecord]) -> dict[str, int]:
    """For each fact: no anchor inside it, its source never measured there, or measured and rejected."""
    docs = {doc_id_for(d.text): d for d in catalogue.docs}
    names = {doc_id_for(text): name for name, text in catalogue.pool()}
    out: dict[str, int] = defaultdict(int)
    for rec in records:
        doc = docs[rec.doc_id]
        anchored = {doc.facts.index(f) for p in rec.pairs for f in doc.facts_at(p.char_start, p.char_end)}
        ctx_name = {c.context_id: names.get(c.context_doc_id) for c in rec.contexts}
        measured = {(doc.facts.index(f), ctx_name[p.context_id]) for p in rec.pairs
                    for f in doc.facts_at(p.char_start, p.char_end)}
        for i, f in enumerate(doc.facts):
            if i not in anchored:
                out["no anchor with a measured pair inside the fact"] += 1
            elif (i, f.source_id) not in measured:
                out["source not among the contexts measured there"] += 1
            else:
                out["source measured at the fact"] += 1
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--separator", action="append", default=[], help="a token id or a TOML string")
    ap.add_argument("--noise", type=int, default=16, help="unrelated standard-library pages in the pool")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    separators = args.separator or ["0", '"\\n\\n"']
    data_dir = Path(".elong/bench-dependencies").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_corpus(Path(tmp) / "noise.jsonl", args.noise)
        noise = [json.loads(line)["text"] for line in (Path(tmp) / "noise.jsonl").read_text().splitlines()]
        catalogue = catalogue_corpus(args.docs, noise=noise)
        n_facts = sum(len(d.facts) for d in catalogue.docs)
        print(f"{len(catalogue.docs)} citing documents, {n_facts} facts; pool: {len(catalogue.entries)} catalogue "
              f"entries (each source has >= 3 same-template lookalikes), {len(catalogue.near_copies)} near copies, "
              f"{len(catalogue.noise)} unrelated pages; alpha {args.alpha}")
        docs, pool = write_catalogue_files(Path(tmp), catalogue)
        for sep in separators:
            cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(data_dir)!r}",
                                     f"entropy.alpha={args.alpha}", "verify.all_anchors=true",
                                     f"pack.separator={sep}", *args.sets])
            out = Path(tmp) / f"out-{len(list(Path(tmp).glob('out-*')))}"
            t0 = time.perf_counter()
            report = build(cfg, [docs], [pool], out, pipeline=Pipeline(cfg, milvus_uri=str(out / "pool.db")),
                           show_progress=False)
            wall = time.perf_counter() - t0
            records = list(read_records(out / RECORDS_FILE))
            st = report.stats
            ent, ver = st["entropy"], st["verify"]
            anchors = ent.get("anchors", 0)
            print(f"\nseparator {cfg.pack.separator!r}: build {wall:.0f} s, {anchors} anchors "
                  f"({anchors / max(len(records), 1):.1f} per document, capped {ent.get('anchors_capped', 0)}), "
                  f"{st['retrieval'].get('queries', 0)} queries, {ver.get('pairs', 0)} pairs measured, "
                  f"LM tokens: entropy {ent.get('lm_tokens', 0):,}, verify {ver.get('lm_tokens', 0):,}, "
                  f"dead letters {len(report.dead_letters)}, dropped {len(report.dropped)}")
            print("  facts: " + ", ".join(f"{k} {v}" for k, v in why_missed(catalogue, records).items()))
            print(f"  {'criterion':<22}{'pairs':<10}{'fact recall':>12}{'fact prec.':>11}{'sample prec.':>13}"
                  f"{'source recall':>14}{'ctx/doc':>8}{'accepted':>9}{'mean dI':>8}")
            for name, crit in CRITERIA.items():
                for retrieved_only in (True, False):
                    s = evaluate(catalogue, records, crit, retrieved_only)
                    print(f"  {name:<22}{'retrieved' if retrieved_only else 'all':<10}{s.fact_recall:>12.3f}"
                          f"{s.fact_precision:>11.3f}{s.sample_precision:>13.3f}{s.sample_recall:>14.3f}"
                          f"{s.contexts_per_doc:>8.1f}{s.accepted_pairs:>9}{s.mean_d_i:>8.2f}")


if __name__ == "__main__":
    main()
