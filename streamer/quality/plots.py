"""PNG plots of a report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from .contexts import CONDITIONS

STYLE = {"verified": ("tab:green", "o"), "unverified": ("tab:orange", "s"), "random": ("tab:gray", "^")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(points: list[dict], where: str, path: Path, title: str) -> None:
    """CE against mean context tokens seen, one line per condition (x on a symlog scale: 0 included)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p["mean_context_tokens"] for p in points]
    for cond in CONDITIONS:
        ys = [p[where]["ce"][cond] for p in points]
        color, marker = STYLE[cond]
        ax.plot(xs, ys, marker=marker, color=color, label=cond)
    ax.set_xscale("symlog", linthresh=16)
    ax.set_xlabel("context tokens before the document (mean over documents)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_d_i(d_i: dict, path: Path) -> None:
    """Histogram of dI for accepted and rejected pairs (values beyond [-1, 1] in the end bins)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, color in (("rejected", "tab:gray"), ("accepted", "tab:green")):
        hist = d_i[kind].get("histogram")
        if not hist:
            continue
        edges, counts = hist["edges"], hist["counts"]
        ax.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges, edges[1:], strict=False)], align="edge",
               alpha=0.6, color=color, label=f"{kind} ({d_i[kind]['count']})")
    ax.set_xlabel("dI = (H - H') / H at the anchor")
    ax.set_ylabel("pairs")
    ax.set_title("entropy reduction of measured (context, anchor) pairs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lengths(samples: dict, path: Path) -> None:
    """Histograms, on power-of-two token bins, of sample lengths and of dependency distances (from
    the context's end to its anchor): how long the data is, and how long-range its dependencies."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    shown = (("tokens_per_sample", samples["tokens_per_sample"], "tokens per sample", "samples"),
             ("from_context_end", samples["dependency_distance"]["from_context_end"],
              "tokens from the context's end to its anchor", "verified pairs"))
    for ax, (_, dist, xlabel, ylabel) in zip(axes, shown, strict=True):
        hist = dist.get("histogram")
        if hist and dist["count"]:
            edges, counts = hist["edges"], hist["counts"]
            ax.bar(range(len(counts)), counts, width=0.9, color="tab:blue")
            ax.set_xticks(range(len(counts)), [_k(e) for e in edges[1:]], rotation=60, fontsize=8)
            q = dist["quantiles"]
            ax.set_title(f"median {q['50']:,.0f}, p90 {q['90']:,.0f}, max {dist['max']:,.0f}", fontsize=10)
        ax.set_xlabel(f"{xlabel} (bin upper edge)")
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _k(tokens: float) -> str:
    return f"{tokens / 1024:g}K" if tokens >= 1024 else f"{tokens:g}"
