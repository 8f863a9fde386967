"""Which threshold makes a line's opening words a label? The label rule replayed on both benches.

A label ("Library in use:", a table's "Name" column head) is format that same-template documents
share; a context that shares it lowers the loss at the label without informing the document. The rule
(retrieval.template_prefix_words N): an anchor among its line's first N words is a template anchor
when at least `min_docs` documents of the pool open a line with the same words up to it. The two
benches' builds apply it at retrieval.template_min_docs (10, the "built" row); this bench replays
stricter thresholds on the records they left (run them first), the documents counted as the pipeline
counts them: every pool document and every target.

- the constructed catalogue (bench/dependencies.py --alpha=-1.0 --separator '"\\n\\n"'): fact recall and
  precision, sample precision (the share of a sample's contexts that are a source of the document),
  every context measured at every anchor ("all") and the pairs whose query retrieved the context;
- the PostgreSQL manual (bench/long_samples.py, 400 pages, 6 targets): accepted pairs, contexts per
  target (median), linked pages accepted, LM tokens per emitted token, and the words removed.

    .venv/bin/python bench/label_rule.py [--words 3] [--min-docs 3 4 5 6 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from corpora.lookalike_corpus import catalogue_corpus
from dependencies import CRITERIA as CATALOGUE_CRITERIA
from dependencies import evaluate
from long_samples import CRITERIA, DEFAULT, WORK, TruthSet, linked_pages, measuring_tokens, replayed

from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.method.templates import line_prefixes
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import RECORDS_FILE, read_records
from entropylong_streamer.stages.pack import sample_from
from entropylong_streamer.topics import DependenciesRecord

CATALOGUE_OUT = Path(".elong/bench-dependencies/out-sep0").resolve()  # the build of --separator '"\n\n"' alone


def prefix_counts(texts: list[str], words: int) -> Counter[int]:
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(line_prefixes(text, words).distinct())
    return counts


def labelled(rec: DependenciesRecord, counts: Counter[int], words: int, min_docs: int) -> DependenciesRecord:
    """The record as the rule leaves it: pairs at label anchors are template pairs, never accepted."""
    opening = line_prefixes(rec.text, words)
    def label(p) -> bool:
        h = opening.of(p.char_start, p.char_end)
        return h is not None and counts[h] >= min_docs
    pairs = [p.model_copy(update={"accepted": False, "template": True}) if label(p) else p for p in rec.pairs]
    return rec.model_copy(update={"pairs": pairs})


def catalogue(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_corpus(Path(tmp) / "noise.jsonl", 16)
        noise = [json.loads(line)["text"] for line in (Path(tmp) / "noise.jsonl").read_text().splitlines()]
    cat = catalogue_corpus(16, noise=noise)
    records = list(read_records(CATALOGUE_OUT / RECORDS_FILE))
    counts = prefix_counts([t for _, t in cat.pool()] + [d.text for d in cat.docs], args.words)
    crit, spans = CATALOGUE_CRITERIA[DEFAULT]
    print(f"catalogue ({len(records)} documents), {DEFAULT}")
    print(f"  {'min_docs':<10}{'pairs':<11}{'fact recall':>12}{'fact prec.':>11}{'sample prec.':>13}{'ctx/doc':>8}"
          f"{'accepted':>9}")
    for min_docs in [None, *args.min_docs]:
        recs = records if min_docs is None else [labelled(r, counts, args.words, min_docs) for r in records]
        for retrieved_only in (False, True):
            s = evaluate(cat, recs, crit, retrieved_only, spans)
            print(f"  {min_docs or 'built':<10}{'retrieved' if retrieved_only else 'all':<11}{s.fact_recall:>12.3f}"
                  f"{s.fact_precision:>11.3f}{s.sample_precision:>13.3f}{s.contexts_per_doc:>8.1f}{s.accepted_pairs:>9}")


def manual(args) -> None:
    pool_pages, target_pages = linked_pages(SimpleNamespace(pool=400, targets=6, min_chars=1000,
                                                            target_min_chars=4000, target_max_chars=9000))
    cfg = load_config(None, ["model.path='smollm2'", f"data_dir={str(WORK)!r}", "pack.sample_tokens=32768"])
    pipe = Pipeline(cfg, milvus_uri=str(WORK / "pool.db"))
    records = [replayed(r, *CRITERIA[DEFAULT]) for r in read_records(WORK / "long-samples.msgpack")]
    counts = prefix_counts([p.text for p in pool_pages + target_pages], args.words)
    truth = TruthSet(target_pages, pool_pages)
    k = len(pipe.separator)
    entropy_lm = sum(len(r.token_ids) + k for r in records)
    print(f"\nPostgreSQL manual ({len(records)} targets, {len(pool_pages)} pool pages), {DEFAULT}")
    print(f"  {'min_docs':<10}{'accepted':>9}{'contexts (median)':>19}{'linked accepted':>16}{'LM/emitted':>11}"
          "  label words removed")
    for min_docs in [None, *args.min_docs]:
        recs = records if min_docs is None else [labelled(r, counts, args.words, min_docs) for r in records]
        removed = Counter(r.text[p.char_start : p.char_end].strip() for r, o in zip(recs, records, strict=True)
                          for p, q in zip(r.pairs, o.pairs, strict=True) if q.accepted and not p.accepted)
        samples = [sample_from(r, pipe.separator, cfg.pack.seed, cfg.pack.sample_length) for r in recs]
        contexts = [len(s.context_ids) for s in samples]
        lm = entropy_lm + sum(measuring_tokens(r, k, True) for r in recs)
        t = truth.of(recs)
        print(f"  {min_docs or 'built':<10}{sum(p.accepted for r in recs for p in r.pairs):>9}"
              f"{statistics.mean(contexts):>12.1f} ({statistics.median(contexts):g})"
              f"{f'{t.accepted} of {t.retrieved}':>16}{lm / max(sum(len(s) for s in samples), 1):>11.1f}  "
              + ", ".join(f"{w!r} {n}" for w, n in removed.most_common(8)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=3, help="retrieval.template_prefix_words")
    ap.add_argument("--min-docs", type=int, nargs="+", default=[3, 4, 5, 6, 8])
    args = ap.parse_args()
    catalogue(args)
    manual(args)


if __name__ == "__main__":
    main()
