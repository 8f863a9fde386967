"""The rolling trainer: trains on each new shard as it is announced, mixed with earlier shards.

Each packed sequence is trained whole, with document-masked attention built from its indices
(streamer/method/doc_masks.py): a token sees only earlier tokens of its own sample [sep C... sep D],
positions restart at every sample, and the first token of a sample is never a target. On CPU the
mask is a block-diagonal causal boolean mask through SDPA; on a GPU with flash-attn installed,
variable-length flash attention does the same from the restarting position ids alone.

After every shard the model, the optimizer, the scheduler and the set of consumed shards are saved
as one atomic checkpoint (services/checkpoint.py), before the caller commits the announcement's
offset: a restart resumes exactly there, training no shard twice and skipping none.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from entropylong_streamer.method import doc_masks

from . import checkpoint
from .model_versions import Published, publish, published

log = logging.getLogger(__name__)


class ShardUnreadable(ValueError):
    """An announced shard that cannot be read (missing, corrupt): dead-lettered, never retried."""


@dataclass
class ShardTraining:
    """What training on one shard did."""

    shard_id: str
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    tokens: int = 0  # target tokens
    seconds: float = 0.0
    earlier_sequences: int = 0  # sequences mixed in from earlier shards
    # Loss summed and counted per position bucket (offset of the target inside its sample).
    bucket_loss: dict[int, float] = field(default_factory=dict)
    bucket_tokens: dict[int, int] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def loss_by_bucket(self) -> dict[int, float]:
        return {b: self.bucket_loss[b] / n for b, n in self.bucket_tokens.items() if n}


class RollingTrainer:
    def __init__(self, cfg, cache_dir: Path, state_dir: Path, versions_dir: Path | None = None) -> None:
        """cfg: the TrainerConfig section; versions_dir: where it publishes model versions
        (every cfg.publish_every shards)."""
        import torch

        from .models import resolve_device

        self.torch, self.cfg = torch, cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device, dtype = resolve_device(cfg.device, cfg.dtype)
        self.model = _build_model(cfg, cache_dir, self.device, getattr(torch, dtype))
        self.varlen = self.model.config._attn_implementation == "flash_attention_2"
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = cfg.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / (warmup + 1)))
        self.state_dir = Path(state_dir)
        state = checkpoint.load(self.state_dir, self.model, self.opt, self.scheduler) or {}
        self.step = state.get("step", 0)
        self.consumed: dict[str, str] = state.get("consumed", {})  # shard id -> path, in order
        self.model.train()
        self.cache_dir, self.versions_dir = Path(cache_dir), versions_dir

    def publish_if_due(self) -> Published | None:
        """Publish the model as a version when its consumed shards reach a multiple of publish_every
        and no version of exactly those shards exists: after a shard, and at start, where it finishes
        what a crash between the checkpoint and the publication left undone. None: nothing was due."""
        every = self.cfg.publish_every
        if self.versions_dir is None or not every or not self.consumed or len(self.consumed) % every:
            return None
        seen = list(self.consumed)
        if any(v.shards == seen for v in published(self.versions_dir)):
            return None
        from .models import model_dir

        return publish(self.versions_dir, self.model, model_dir(self.cfg.model, self.cache_dir), self.cfg.model,
                       self.step, seen, self.cfg.keep_versions)

    def train_shard(self, shard_id: str, path: Path) -> ShardTraining | None:
        """Train on a new shard (mixed with earlier ones), then checkpoint. None if already consumed."""
        from .shards import read_shard

        if shard_id in self.consumed:
            return None
        report = ShardTraining(shard_id)
        t0 = time.perf_counter()
        try:
            if not (Path(path) / "index.json").is_file():
                raise FileNotFoundError(f"no MDS index.json in {path}")
            sequences = read_shard(path)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # streaming raises RuntimeError too
            raise ShardUnreadable(f"{shard_id} at {path}: {exc}") from exc
        earlier = self._earlier_sequences(shard_id, len(sequences))
        report.earlier_sequences = len(earlier)
        work = [*sequences, *earlier]
        random.Random(f"{self.cfg.seed}:{shard_id}").shuffle(work)
        for _ in range(self.cfg.passes_per_shard):
            for i in range(0, len(work), self.cfg.batch_sequences):
                self._step(work[i : i + self.cfg.batch_sequences], report)
        report.seconds = time.perf_counter() - t0
        self.consumed[shard_id] = str(path)
        checkpoint.save(self.state_dir, self.step, self.model, self.opt, self.scheduler,
                        {"consumed": self.consumed})
        return report

    def _earlier_sequences(self, shard_id: str, new: int) -> list[dict]:
        """round(mix_earlier x new) sequences drawn from earlier shards (those still on disk)."""
        from .shards import read_shard

        want = round(self.cfg.mix_earlier * new)
        paths = [Path(p) for p in self.consumed.values() if Path(p).exists()]
        if not want or not paths:
            return []
        rng = random.Random(f"{self.cfg.seed}:earlier:{shard_id}")
        loaded: dict[Path, list[dict]] = {}  # each earlier shard read once, however often it is drawn
        out = []
        for p in rng.choices(paths, k=want):
            if p not in loaded:
                loaded[p] = read_shard(p)
            seqs = loaded[p]
            out.append(seqs[rng.randrange(len(seqs))])
        return out

    def token_losses(self, sequences: list[dict]):
        """(loss of every target token, its offset inside its sample) over a batch of packed
        sequences, document-masked. The loss tensor carries gradients."""
        torch = self.torch
        batch = _batch(sequences, self.varlen)
        ids, pos, labels = (torch.as_tensor(batch[k], device=self.device) for k in ("ids", "pos", "labels"))
        mask = None if self.varlen else torch.as_tensor(batch["mask"], device=self.device)[:, None]
        hidden = self.model.base_model(input_ids=ids, position_ids=pos, attention_mask=mask).last_hidden_state
        # Token t predicts labels[t + 1]; the loss is taken only where there is a target.
        targets = labels[:, 1:].reshape(-1)
        keep = targets != doc_masks.IGNORE
        rows = hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep]
        losses = _chunked_cross_entropy(rows, self.model.get_output_embeddings(), targets[keep], self.cfg.loss_chunk)
        return losses, pos[:, 1:].reshape(-1)[keep].cpu().numpy()

    def _step(self, sequences: list[dict], report: ShardTraining) -> None:
        token_loss, where = self.token_losses(sequences)
        loss = token_loss.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.scheduler.step()
        self.step += 1
        report.losses.append(float(loss.detach()))
        report.tokens += len(where)
        buckets = np.searchsorted(np.asarray(self.cfg.loss_buckets), where, side="right") - 1
        per_token = token_loss.detach().float().cpu().numpy()
        for b in np.unique(buckets):
            edge = self.cfg.loss_buckets[b]
            report.bucket_loss[edge] = report.bucket_loss.get(edge, 0.0) + float(per_token[buckets == b].sum())
            report.bucket_tokens[edge] = report.bucket_tokens.get(edge, 0) + int((buckets == b).sum())


def _batch(sequences: list[dict], varlen: bool) -> dict[str, np.ndarray]:
    """Right-pad to the longest sequence; spans from each sequence's indices."""
    width = max(int(s["length"]) for s in sequences)
    n = len(sequences)
    out = {"ids": np.zeros((n, width), np.int64), "pos": np.zeros((n, width), np.int64),
           "labels": np.full((n, width), doc_masks.IGNORE, np.int64)}
    if not varlen:
        out["mask"] = np.zeros((n, width, width), bool)
    for i, s in enumerate(sequences):
        length = int(s["length"])
        ids = np.asarray(s["input_ids"][:length], np.int64)
        spans = [(int(a), int(b)) for a, b in np.asarray(s["indices"]).reshape(-1, 2)]
        out["ids"][i, :length] = ids
        out["pos"][i] = doc_masks.position_ids(spans, width)
        out["labels"][i, :length] = doc_masks.labels(ids, spans)
        if not varlen:
            out["mask"][i] = doc_masks.block_causal_mask(spans, width)
    return out


def _chunked_cross_entropy(hidden, head, targets, chunk: int):
    """Per-token cross-entropy, the vocabulary projection a chunk at a time and recomputed in the
    backward pass, so [tokens, vocab] logits never exist at once (131,072 x 49,152 would be 25 GiB)."""
    import torch
    from torch.utils.checkpoint import checkpoint as recompute

    def piece(h, t):
        return torch.nn.functional.cross_entropy(head(h).float(), t, reduction="none")

    return torch.cat([recompute(piece, hidden[i : i + chunk], targets[i : i + chunk], use_reentrant=False)
                      for i in range(0, hidden.shape[0], chunk)])


def _build_model(cfg, cache_dir: Path, device: str, dtype):
    from transformers import AutoConfig, AutoModelForCausalLM

    from .model_versions import set_rope_theta
    from .models import model_dir, quiet_loading

    attn = "sdpa"
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401

            attn = "flash_attention_2"  # variable-length attention from the restarting positions
        except ImportError:
            log.warning("flash-attn is not installed: block-diagonal masks through SDPA (O(T^2) memory)")
    quiet_loading()
    config = AutoConfig.from_pretrained(model_dir(cfg.model, cache_dir))
    if cfg.rope_theta:  # before the model is built: its rotary embedding reads the base at construction
        log.info("trainer: RoPE base %s for %s (its own: %s)", cfg.rope_theta, cfg.model,
                 getattr(config, "rope_parameters", None) or getattr(config, "rope_theta", None))
        set_rope_theta(config, cfg.rope_theta)
    if cfg.from_scratch:  # the spec's architecture, freshly initialised with the usual small init
        config.initializer_range = 0.02
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    else:  # continued pretraining of the model's own weights
        model = AutoModelForCausalLM.from_pretrained(model_dir(cfg.model, cache_dir), config=config, dtype=dtype,
                                                     attn_implementation=attn)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model.to(device)
