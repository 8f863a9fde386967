"""Which dependencies does the pipeline find? Fact-level recall and precision on a constructed
catalogue corpus, for each separator and each acceptance criterion, in one run.

The corpus (streamer/lookalike_corpus.catalogue_corpus): citing documents list the facts of two
entities, one fact per short line (names, years, ports, versions: random, so the model cannot know
them); each entity's facts are stated by exactly one catalogue entry in the pool, beside at least 3
same-template lookalike entries per source (other names and numbers), a near copy of every citing
document (the leakage guard must keep it out) and unrelated pages (the standard library's docs).

For each separator the real batch build runs once (SmolLM2, every anchor measured against every
retrieved context: verify.all_anchors, each pair's NLL also summed over its anchor's word:
verify.span_tokens, --span-tokens); every criterion, judged at the anchor alone or on the word ("word"
rows), and measuring only the pairs whose query retrieved the context, are replays of the same
measurements (no LM work).

- fact recall: (fact, its source) dependencies found, i.e. the source accepted at an anchor inside
  the fact's span (a token with a letter or digit: the dots of a version are format), over every
  fact of every citing document;
- fact precision: of the (fact, context) pairs accepted at an anchor inside a fact, the share whose
  context is the fact's source;
- sample precision: of the contexts a sample would hold (accepted at any anchor), the share that
  are a source of the document (what the trainer receives).

With --depth N > 1 (pack.depth) every pool page is built as a document too, as in live mode, so that
the citing documents' samples may hold their contexts' contexts; the table above is then the citing
documents' own (the same measurements as at depth 1), and a second table judges every edge the citing
documents' samples hold, by depth: at a citing document's anchor, true where the context is the source
of a fact there; at an entry's anchor (its values are random), true where the context is a document
citing that entry (it states the same value), false otherwise; an edge at a noise page's anchor (real
text) is not judged.

    .venv/bin/python bench/dependencies.py [--docs 16] [--alpha 1.0] [--separator 0 --separator '"\\n\\n"'] \
        [--span-tokens 8] [--depth 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from corpora.lookalike_corpus import Catalogue, CitingDoc, Fact, catalogue_corpus, write_catalogue_files

from entropylong_streamer.batch import build
from entropylong_streamer.config import load_config
from entropylong_streamer.demo_corpus import write_demo_corpus
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.quality.report import RECORDS_FILE, read_records
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.topics import DependenciesRecord

CRITERIA = {  # name -> (criterion, judged on the span's NLL (verify.span_tokens) or the anchor's alone)
    "paper (dI > 0.4)": (Criterion(0.4), False),
    "loss-aware 0.2": (Criterion(0.4, "entropy+loss", 0.2), False),
    "loss 0.5": (Criterion(0.4, "loss", 0.5), False),
    "loss 0.8": (Criterion(0.4, "loss", 0.8), False),
    "specific 0.2": (Criterion(0.4, "specific", 0.2), False),
    "specific 0.3": (Criterion(0.4, "specific", 0.3), False),
    "specific 0.3, 2 sources": (Criterion(0.4, "specific", 0.3, max_sources=2), False),
    **{f"shared 0.3, q {q}": (Criterion(0.4, "shared", 0.3, rival_quantile=q), False) for q in (0.5, 0.75)},
    "specific 0.3, word": (Criterion(0.4, "specific", 0.3), True),
    "loss 0.5, word": (Criterion(0.4, "loss", 0.5), True),
    **{f"shared 0.3, q 0.75, word{f', best {b}' if b else ''}": (
        Criterion(0.4, "shared", 0.3, rival_quantile=0.75, best_share=b), True) for b in (0.0, 0.75, 0.9, 0.95)},
    **{f"shared 0.2, q 0.75, word, best {b}{' (default)' if b == 0.85 else ''}": (
        Criterion(0.4, "shared", 0.2, rival_quantile=0.75, best_share=b), True) for b in (0.75, 0.85, 0.9)},
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
    false_by_kind: dict[str, int]  # (fact, context) pairs accepted with another context, by its kind


def evaluate(catalogue: Catalogue, records: list[DependenciesRecord], criterion: Criterion,
             retrieved_only: bool, spans: bool = True) -> Scores:
    docs = {doc_id_for(d.text): d for d in catalogue.docs}
    names = _names(catalogue)
    facts = found = 0
    fact_pairs: set[tuple[str, int, str]] = set()
    fact_true = 0
    false_by_kind: dict[str, int] = defaultdict(int)
    contexts = true_contexts = sources = 0
    accepted_pairs, d_is = 0, []
    for rec in records:
        doc = docs[rec.doc_id]
        ctx_name = {c.context_id: names.get(c.context_doc_id, c.context_doc_id) for c in rec.contexts}
        pairs = [p for p in rec.pairs if p.retrieved or not retrieved_only]
        hits: set[tuple[int, str]] = set()
        accepted_contexts = set()
        decided = criterion.decide([p.judged(spans) for p in pairs])
        for p, ok in zip(pairs, decided, strict=True):
            if not ok or p.template:  # the stage never accepts a template anchor's pairs
                continue
            accepted_pairs += 1
            d_is.append(p.d_i)
            accepted_contexts.add(ctx_name[p.context_id])
            for f in _facts_at(doc, p.char_start, p.char_end):
                i = doc.facts.index(f)
                fact_pairs.add((rec.doc_id, i, ctx_name[p.context_id]))
                hits.add((i, ctx_name[p.context_id]))
        doc_sources = {f.source_id for f in doc.facts}
        facts += len(doc.facts)
        found += sum((i, f.source_id) in hits for i, f in enumerate(doc.facts))
        fact_true += sum(doc.facts[i].source_id == c for i, c in hits)
        for i, c in hits:
            if doc.facts[i].source_id != c:
                false_by_kind[_kind_of(c, doc.facts[i].source_id)] += 1
        contexts += len(accepted_contexts)
        true_contexts += len(accepted_contexts & doc_sources)
        sources += len(doc_sources)
    return Scores(found / max(facts, 1), fact_true / max(len(fact_pairs), 1), true_contexts / max(contexts, 1),
                  true_contexts / max(sources, 1), contexts / max(len(records), 1), accepted_pairs,
                  sum(d_is) / max(len(d_is), 1), dict(false_by_kind))


def _facts_at(doc: CitingDoc, char_start: int, char_end: int) -> list[Fact]:
    """The facts an anchor token carries content of: a token of punctuation alone (the dots of a
    version number) is the format every same-template document shares, not the fact."""
    if not any(ch.isalnum() for ch in doc.text[char_start:char_end]):
        return []
    return doc.facts_at(char_start, char_end)


def _names(catalogue: Catalogue) -> dict[str, str]:
    """doc_id (a hash of the text) -> the corpus's own name of every document."""
    return {doc_id_for(text): name for name, text in [*catalogue.pool(), *((d.doc_id, d.text) for d in catalogue.docs)]}


def _kind_of(context: str, source: str) -> str:
    if context.startswith("entry-"):
        return "same-template entry" if context.split("-")[1] == source.split("-")[1] else "other entry"
    return context.split("-")[0]  # log (another citing document), copy (a near copy), noise


def forward_tokens(records: list[DependenciesRecord], sep_len: int) -> tuple[int, int]:
    """LM tokens of one forward per context, [sep C sep D[:last measured position + 1]] (an anchor's, or
    its span's last), and under span_tokens one over [sep D] per document: measuring every anchor against
    every context, and only the anchors whose query retrieved it."""
    every = retrieved = 0
    for rec in records:
        lengths = {c.context_id: len(c.token_ids) for c in rec.contexts}
        last: dict[str, int] = {}
        last_retrieved: dict[str, int] = {}
        for p in rec.pairs:
            end = p.anchor_index if p.span is None else max(p.anchor_index, p.span[1] - 1)
            last[p.context_id] = max(last.get(p.context_id, -1), end)
            if p.retrieved:
                last_retrieved[p.context_id] = max(last_retrieved.get(p.context_id, -1), end)
        baseline = sep_len + max(last.values()) + 1 if any(p.span_nll is not None for p in rec.pairs) else 0
        every += baseline + sum(2 * sep_len + lengths[c] + t + 1 for c, t in last.items())
        retrieved += baseline + sum(2 * sep_len + lengths[c] + t + 1 for c, t in last_retrieved.items())
    return every, retrieved


def why_missed(catalogue: Catalogue, records: list[DependenciesRecord]) -> dict[str, int]:
    """For each fact: no anchor inside it, its source never measured there, or measured and rejected."""
    docs = {doc_id_for(d.text): d for d in catalogue.docs}
    names = _names(catalogue)
    out: dict[str, int] = defaultdict(int)
    for rec in records:
        doc = docs[rec.doc_id]
        anchored = {doc.facts.index(f) for p in rec.pairs for f in _facts_at(doc, p.char_start, p.char_end)}
        ctx_name = {c.context_id: names.get(c.context_doc_id) for c in rec.contexts}
        measured = {(doc.facts.index(f), ctx_name[p.context_id]) for p in rec.pairs
                    for f in _facts_at(doc, p.char_start, p.char_end)}
        for i, f in enumerate(doc.facts):
            kind = "number" if doc.text[f.char_start].isdigit() else "name"
            if i not in anchored:
                out[f"{kind}s without an anchor"] += 1
            elif (i, f.source_id) not in measured:
                out[f"{kind}s whose source is not measured there"] += 1
            else:
                out[f"{kind}s with their source measured"] += 1
    return dict(out)


def edge_verdicts(catalogue: Catalogue, rows: list[dict]) -> dict[int, dict[str, int]]:
    """depth -> verdict -> edges, over the edges the citing documents' samples hold (dependencies.jsonl)."""
    docs = {doc_id_for(d.text): d for d in catalogue.docs}
    names = _names(catalogue)
    citing = {e.entry_id: {names[i] for i, d in docs.items() if any(f.source_id == e.entry_id for f in d.facts)}
              for e in catalogue.entries}
    copies = {name: name.removeprefix("copy-of-") for name, _ in catalogue.near_copies}
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if not r["in_sample"] or r["sample_doc_id"] not in docs:
            continue
        target, context = names.get(r["doc_id"], ""), names.get(r["context_doc_id"], "")
        context = copies.get(context, context)  # a near copy states what its document does
        if r["doc_id"] in docs:
            facts = _facts_at(docs[r["doc_id"]], *r["anchor_span"])
            verdict = ("true" if any(f.source_id == context for f in facts) else
                       f"false ({context.split('-')[0]} at a fact)" if facts else "no fact")
        elif target in citing:
            verdict = "true" if context in citing[target] else f"false ({context.split('-')[0]} at an entry)"
        else:
            verdict = "not judged"
        out[r["depth"]][verdict] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--separator", action="append", default=[], help="a token id or a TOML string")
    ap.add_argument("--noise", type=int, default=16, help="unrelated standard-library pages in the pool")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--span-tokens", type=int, default=8, help="verify.span_tokens of the build (the word rows)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--depth", type=int, default=1, help="pack.depth; > 1 builds every pool page as a document too")
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
            deeper = [f"pack.depth={args.depth}"] if args.depth > 1 else []
            cfg = load_config(None, [f"model.path={args.model!r}", f"data_dir={str(data_dir)!r}",
                                     f"entropy.alpha={args.alpha}", "verify.all_anchors=true",
                                     f"verify.span_tokens={args.span_tokens}",
                                     f"pack.separator={sep}", *deeper, *args.sets])
            out = data_dir / (f"out-sep{separators.index(sep)}" + (f"-depth{args.depth}" if args.depth > 1 else ""))
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            report = build(cfg, [docs, pool] if args.depth > 1 else [docs], [pool], out,
                           pipeline=Pipeline(cfg, milvus_uri=str(out / "pool.db")), show_progress=args.depth > 1)
            wall = time.perf_counter() - t0
            citing = {doc_id_for(d.text) for d in catalogue.docs}
            records = [r for r in read_records(out / RECORDS_FILE) if r.doc_id in citing]
            st = report.stats
            ent, ver = st["entropy"], st["verify"]
            anchors = ent.get("anchors", 0)
            print(f"\nseparator {cfg.pack.separator!r}: build {wall:.0f} s, {anchors} anchors "
                  f"({anchors / max(len(records), 1):.1f} per document, capped {ent.get('anchors_capped', 0)}), "
                  f"{st['retrieval'].get('queries', 0)} queries, {ver.get('pairs', 0)} pairs measured, "
                  f"LM tokens: entropy {ent.get('lm_tokens', 0):,}, verify {ver.get('lm_tokens', 0):,}, "
                  f"dead letters {len(report.dead_letters)}, dropped {len(report.dropped)}")
            print("  facts: " + ", ".join(f"{k} {v}" for k, v in why_missed(catalogue, records).items()))
            sep_len = len(Pipeline(cfg, milvus_uri=str(out / "pool.db")).separator)
            every, retrieved = forward_tokens(records, sep_len)
            print(f"  verify's exact token bound: every anchor {every:,} LM tokens, retrieved anchors only "
                  f"{retrieved:,} ({every / max(retrieved, 1):.2f}x)")
            print(f"  {'criterion':<46}{'pairs':<10}{'fact recall':>12}{'fact prec.':>11}{'sample prec.':>13}"
                  f"{'source recall':>14}{'ctx/doc':>8}{'accepted':>9}{'mean dI':>8}")
            for name, (crit, spans) in CRITERIA.items():
                for retrieved_only in (True, False):
                    s = evaluate(catalogue, records, crit, retrieved_only, spans)
                    print(f"  {name:<46}{'retrieved' if retrieved_only else 'all':<10}{s.fact_recall:>12.3f}"
                          f"{s.fact_precision:>11.3f}{s.sample_precision:>13.3f}{s.sample_recall:>14.3f}"
                          f"{s.contexts_per_doc:>8.1f}{s.accepted_pairs:>9}{s.mean_d_i:>8.2f}  "
                          + ", ".join(f"{k} {v}" for k, v in sorted(s.false_by_kind.items())))
            if args.depth > 1:
                rows = [json.loads(line) for line in (out / "dependencies.jsonl").read_text().splitlines()]
                print(f"  the edges the citing documents' samples hold (pack.depth {args.depth}; "
                      f"{report.documents - len(records)} pool pages built as documents too), by depth:")
                for depth, v in sorted(edge_verdicts(catalogue, rows).items()):
                    judged = sum(n for k, n in v.items() if k == "true" or k.startswith("false"))
                    print(f"    depth {depth}: {sum(v.values())} edges: " + ", ".join(f"{k} {n}" for k, n in
                                                                           sorted(v.items()))
                          + (f"; precision {v.get('true', 0) / judged:.3f}" if judged else ""))


if __name__ == "__main__":
    main()
