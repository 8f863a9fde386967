"""The screen before verification's exact measurement: the target model on a cheap view of a
candidate context, to skip measuring contexts that inform none of the anchors that retrieved them.

The view: `context_tokens` of the context, those sharing the most of its rare tokens with the
screened anchors' windows (aligned_view: the lines that state a name or a number the document is
unsure of; around its retrieved spans where none is shared), then only the
`window` document tokens before each screened anchor, [sep C_view sep D[t - window : t + 1]]; the
same window alone, [sep D[t - window : t + 1]], is its baseline. A context passes when, at some
screened anchor, the true token's loss on the view falls by more than `threshold` of the
baseline's beyond the gain of the rivals the exact criterion compares it with (the "specific"
criterion: the max_sources-th best other context screened there; no rival for the others).
The screen only ever removes candidates: what passes is measured exactly, as without it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from entropylong_streamer.method.dependency import others_at


@dataclass(frozen=True)
class ScreenParams:
    context_tokens: int = 128
    window: int = 16
    threshold: float = 0.3
    max_anchors: int = 4
    max_share: float = 0.5  # screen only where the view costs at most this share of the exact forward
    shadow: bool = False  # judge and record, but measure every context exactly


def aligned_view(context: Sequence[int], windows: Sequence[Sequence[int]], size: int) -> tuple[int, int] | None:
    """[start, end) of the `size` context tokens that share the most with the screened anchors'
    windows, counting only tokens rare in the context (at most twice there): the lines of a long
    page that state what the document's uncertain tokens need (a name, a number and its label),
    not its boilerplate. None where no such token is shared (the caller falls back to the spans)."""
    if len(context) <= size:
        return 0, len(context)
    wanted = {t for w in windows for t in w}
    counts: dict[int, int] = defaultdict(int)
    for t in context:
        counts[t] += 1
    hit = [1 if t in wanted and counts[t] <= 2 else 0 for t in context]
    start = 0
    best = run = sum(hit[:size])
    for i in range(1, len(context) - size + 1):
        run += hit[i + size - 1] - hit[i - 1]
        if run > best:
            best, start = run, i
    return (start, start + size) if best else None


def screened_anchors(nll: Mapping[int, float], max_anchors: int) -> list[int]:
    """The anchors a context is screened at: of those that retrieved it, the max_anchors whose
    true token the model finds least likely (the most a context could explain), in document order."""
    chosen = sorted(nll, key=lambda t: (-nll[t], t))[:max_anchors]
    return sorted(chosen)


def window(doc: Sequence[int], t: int, size: int) -> list[int]:
    """D[t - size : t + 1]: the tokens before anchor t that the view keeps, and t itself (the target)."""
    return list(doc[max(0, t - size) : t + 1])


def view_cost(separator_len: int, view_len: int, windows: Sequence[int]) -> int:
    """LM tokens of one context's screen: its [sep C_view] once (an engine shares it across the
    windows), then [sep window] for each window, run up to the anchor's prediction. The baselines
    are per document and anchor, not counted here."""
    return separator_len + view_len + sum(separator_len + len_ - 1 for len_ in windows)


def passes(base_nll: Sequence[float], view_nll: Sequence[float], threshold: float,
           rival_gain: Sequence[float] | None = None) -> bool:
    """Does the view lower the true token's loss by more than threshold (relative) beyond the rival's
    gain (if any, and if positive) at any anchor?"""
    rivals = rival_gain if rival_gain is not None else [0.0] * len(base_nll)
    return any(b > 0 and (b - v - max(r, 0.0)) / b > threshold
               for b, v, r in zip(base_nll, view_nll, rivals, strict=True))


View = tuple[Sequence[int], Sequence[float], Sequence[float]]  # (anchors, baseline NLL, view NLL) of a context


def rival_gains(views: Sequence[View], rival: Callable[[Sequence[float]], float]) -> list[list[float]]:
    """For each context's view (anchors, baseline NLL, view NLL) of one document: at each of its
    anchors, rival(the gains (baseline - view) of the OTHER contexts screened there, best first):
    the exact criterion's own rule (Criterion.rival), applied to the views."""
    others = iter(others_at([(t, b - v) for anchors, base, view in views
                             for t, b, v in zip(anchors, base, view, strict=True)]))
    return [[rival(next(others)) for _ in anchors] for anchors, _, _ in views]
