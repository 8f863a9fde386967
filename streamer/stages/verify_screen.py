"""The screen's round inside verification (method/screen.py holds the method): one engine call over
the views of the contexts entering this round and each document's baselines; a context that fails is
not measured exactly (unless verify.screen is "shadow")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from entropylong_streamer.measurements import pair_key, token_digest
from entropylong_streamer.method.context_window import context_window
from entropylong_streamer.method.screen import aligned_view, passes, rival_gains, screened_anchors, view_cost, window
from entropylong_streamer.services.lm import ScoreRequest
from entropylong_streamer.topics import Screened

from .base import score_counted
from .verify_plan import MeasuredContext, Plan

if TYPE_CHECKING:
    from .verify import VerifyStage


def screen_round(stage: VerifyStage, live: list[Plan], round_: int) -> None:
    """Screen the contexts entering at this round (method/screen.py) in one engine call: the views
    and each document's baselines. A context whose pairs the cache holds is not screened (its
    exact measurement is free), nor one whose view would cost more than max_share of its forward."""
    sp, sep, layout = stage.screen, stage.separator, stage.layout
    k = len(sep)
    # per document: (context, [(anchor, its view's request, its baseline's request)])
    views: list[tuple[Plan, list[tuple[MeasuredContext, list[tuple[int, int, int]]]]]] = []
    baselines: dict[tuple[int, int], int] = {}  # (plan, anchor) -> request
    requests: list[ScoreRequest] = []
    owners: list[Plan] = []

    def add(plan: Plan, ids: list[int], prefix: int = 0) -> int:
        requests.append(ScoreRequest(ids, [len(ids) - 2], prefix=prefix))
        owners.append(plan)
        return len(requests) - 1

    for p, plan in enumerate(live):
        doc = plan.record.anchors
        nll = {a.index: a.nll for a in doc.anchors}
        views.append((plan, []))
        for c in plan.candidates:
            if c.first_round != round_:
                continue
            anchors = screened_anchors({t: nll[t] for t, r in c.rounds.items() if r == round_}, sp.max_anchors)
            key = pair_key(stage.model_key, doc.doc_id, plan.doc_digest, token_digest(c.token_ids), anchors[0])
            if stage.cache is not None and stage.cache.get(key) is not None:
                continue
            windows = [window(doc.token_ids, t, sp.window) for t in anchors]
            size = min(sp.context_tokens, len(c.token_ids))
            lo, hi = (aligned_view(c.token_ids, windows, size)
                      or context_window(len(c.token_ids), c.spans, size))
            view = c.token_ids[lo:hi]
            exact = 2 * k + len(c.token_ids) + (max(nll) if stage.all_anchors else max(c.rounds))
            if view_cost(k, len(view), [len(w) for w in windows]) > sp.max_share * exact:
                stage.stats["contexts_not_worth_screening"] += 1
                continue
            at = []
            for t, w in zip(anchors, windows, strict=True):
                # the view is measured in the exact forward's geometry, [sep C' sep window]
                at.append((t, add(plan, layout.forward(view, w, len(w) - 1), prefix=layout.prefix(len(view)))))
                if (p, t) not in baselines:
                    baselines[(p, t)] = add(plan, [*sep, *w])
            views[-1][1].append((c, [(t, i, baselines[(p, t)]) for t, i in at]))
    if not requests:
        return
    before = stage.engine.lm_tokens
    scores, charges = score_counted(stage.engine, requests, stage.stats)
    stage.stats["screen_lm_tokens"] += stage.engine.lm_tokens - before
    for plan, charge in zip(owners, charges, strict=True):
        plan.screen_charges.append(charge)
    nll_at = [float(n[0]) for _, n in scores]
    specific = stage.criterion.kind == "specific"
    for plan, contexts in views:
        judged = [(c, [t for t, _, _ in at], [nll_at[b] for _, _, b in at], [nll_at[i] for _, i, _ in at])
                  for c, at in contexts]
        rivals = rival_gains([j[1:] for j in judged], stage.criterion.rival) if specific else None
        for n, (c, anchors, base, view) in enumerate(judged):
            ok = passes(base, view, sp.threshold, rivals[n] if rivals else None)
            plan.screened.append(Screened(context_id=c.context_id, context_doc_id=c.context_doc_id,
                                          anchors=anchors, nll=base, nll_view=view, passed=ok))
            c.screened_out = not ok and not sp.shadow
            stage.stats["contexts_screened"] += 1
            stage.stats["contexts_screened_out"] += not ok
