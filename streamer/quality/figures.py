"""What the dependencies records and the shards say about the data, without any LM work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.topics import DependenciesRecord

QUANTILES = (5, 25, 50, 75, 90, 95)
DI_EDGES = [round(-1.0 + 0.1 * i, 1) for i in range(21)]  # dI histogram bins over [-1, 1]
TOKEN_EDGES = [0] + [2**i for i in range(4, 18)]  # token counts: 0, 16, 32, ..., 131072


def distribution(values: Sequence[float], edges: Sequence[float] | None = None) -> dict:
    """count, mean, quantiles, and (with edges) a histogram with what falls outside counted apart."""
    v = np.asarray(values, dtype=np.float64)
    out: dict = {"count": int(v.size), "mean": float(v.mean()) if v.size else None,
                 "quantiles": {str(q): float(np.percentile(v, q)) for q in QUANTILES} if v.size else {},
                 "max": float(v.max()) if v.size else None}
    if edges is not None:
        counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=list(edges))
        out["histogram"] = {"edges": list(edges), "counts": counts.tolist(),
                            "below": int((v < edges[0]).sum()), "above": int((v > edges[-1]).sum())}
    return out


def dependency_figures(records: Sequence[DependenciesRecord], criterion: Criterion | None = None) -> dict:
    """Anchors (positions with at least one measured candidate), candidates, acceptance, dI, and
    the dependencies of template anchors (lines many pool documents hold), kept apart."""
    tokens = sum(len(r.token_ids) for r in records)
    anchors = sum(len({p.anchor_index for p in r.pairs}) for r in records)
    pairs = [p for r in records for p in r.pairs]
    accepted = [p.d_i for p in pairs if p.accepted]
    rejected = [p.d_i for p in pairs if not p.accepted]
    kept_contexts = sum(len({p.context_id for p in r.pairs if p.accepted}) for r in records)
    template = [p for p in pairs if p.template]
    passing = [p for r in records if criterion is not None
               for p, ok in zip(r.pairs, criterion.decide([p.judged() for p in r.pairs]), strict=True)
               if ok and p.template]
    return {
        "documents": len(records),
        "document_tokens": tokens,
        "anchors": anchors,
        "anchors_per_1k_tokens": 1000 * anchors / tokens if tokens else 0.0,
        "contexts_measured": sum(len(r.contexts) for r in records),
        "contexts_accepted": kept_contexts,
        "pairs": len(pairs),
        "candidates_per_anchor": len(pairs) / anchors if anchors else 0.0,
        "accepted_pairs": len(accepted),
        "acceptance_rate": len(accepted) / len(pairs) if pairs else 0.0,
        "d_i": {"accepted": distribution(accepted, DI_EDGES), "rejected": distribution(rejected, DI_EDGES)},
        "template": {
            "anchors": sum(len({p.anchor_index for p in r.pairs if p.template}) for r in records),
            "pairs": len(template),
            # what the criterion would have accepted there, had the anchor not been a template
            "pairs_kept_apart": len(passing),
            "kept_apart_share": len(passing) / (len(passing) + len(accepted)) if passing or accepted else 0.0,
            "accepted_share": sum(p.accepted for p in template) / len(accepted) if accepted else 0.0,
        },
    }


def sample_figures(contexts_per_sample: Sequence[int], tokens_per_sample: Sequence[int],
                   manifest: Sequence[dict], distances: Sequence[tuple[int, ...]] = (),
                   per_sample: Sequence[dict] = ()) -> dict:
    """Sample lengths and contexts; `distances`: (from the context's end, from its start[, depth]) to the
    anchor, in tokens of the sample, for every verified edge the samples hold; `per_sample`: the report's
    line per sample (quality/report.sample_row), kept whole and summarised by depth."""
    fill = [e["fill_ratio"] for e in manifest if "fill_ratio" in e]
    depths = sorted({int(k) for row in per_sample for k in row["contexts_by_depth"]})
    return {
        "documents_per_sample": distribution([row["documents"] for row in per_sample]),
        "contexts_by_depth": {str(k): distribution([row["contexts_by_depth"].get(str(k), 0) for row in per_sample])
                              for k in depths},
        "edge_distance_by_depth": {str(k): distribution([d[0] for d in distances if (d[2:] or (1,))[0] == k],
                                                        TOKEN_EDGES) for k in depths},
        "per_sample": list(per_sample),
        "samples": len(tokens_per_sample),
        "contexts_per_sample": distribution(contexts_per_sample),
        "tokens_per_sample": distribution(tokens_per_sample, TOKEN_EDGES),
        "dependency_distance": {
            "from_context_end": distribution([d[0] for d in distances], TOKEN_EDGES),
            "from_context_start": distribution([d[1] for d in distances], TOKEN_EDGES),
        },
        "shards": len(manifest),
        "shard_tokens": sum(e.get("tokens", 0) for e in manifest),
        "shard_fill": distribution(fill),
    }


def distinct_tokens(samples: Iterable[tuple[int, Iterable[tuple[str, int]]]]) -> int:
    """Tokens of the samples (each given as its length and its contexts' ids and lengths) with each context
    window counted once however many samples hold it: what a cold run reads at least once (every document
    token is scored, every context verified; a window several samples share may be read once, its KV kept)."""
    seen: set[str] = set()
    total = 0
    for length, contexts in samples:
        total += length
        for context_id, n in contexts:
            total -= n if context_id in seen else 0
            seen.add(context_id)
    return total


def cost_figures(records: Sequence[DependenciesRecord], emitted_tokens: int, dependencies: int,
                 distinct: int | None = None) -> dict:
    """What the LM work on these documents cost (the records' costs, by stage) per emitted training
    token and per verified dependency their samples hold. The floor: each `distinct` token of the samples
    (distinct_tokens; default: every emitted token) read once by the target model. Measurements read from
    a cache cost nothing here (`reused`): then the figures are this run's work, not a cold run's cost."""
    stages: dict[str, dict[str, float]] = {}
    for rec in records:
        for stage, cost in rec.costs.items():
            into = stages.setdefault(stage, {"lm_tokens": 0.0, "flops": 0.0, "seconds": 0.0, "reused": 0})
            for key in into:
                into[key] += getattr(cost, key)
    total = {key: sum(s[key] for s in stages.values()) for key in ("lm_tokens", "flops", "seconds", "reused")}

    def per(n: int) -> dict[str, float | None]:
        return {key: (total[key] / n if n else None) for key in ("lm_tokens", "flops", "seconds")}

    per_token = per(emitted_tokens)
    return {
        "documents": len(records),
        "documents_without_costs": sum(not r.costs for r in records),
        "emitted_tokens": emitted_tokens,
        "dependencies": dependencies,
        "stages": stages,
        "total": total,
        "per_emitted_token": per_token,
        "per_dependency": per(dependencies),
        "distinct_tokens": emitted_tokens if distinct is None else distinct,
        "floor_lm_tokens_per_emitted_token": ((emitted_tokens if distinct is None else distinct) / emitted_tokens
                                              if emitted_tokens else None),
        "measurements_reused": total["reused"],
    }
