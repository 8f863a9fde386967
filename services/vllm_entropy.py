"""vLLM pooling-model plugin that returns exact per-token entropy and NLL.

vLLM's prompt_logprobs gives top-k only, and full-vocabulary logprobs are about 100x slower than
prefill. Instead the causal LM is run as a pooling model whose token_classify pooler turns every
final hidden state into [H, NLL] through the model's own compute_logits, a chunk of positions at
a time (never [T, vocab] logits at once). Row p of the output is the entropy of the distribution
over token p + 1 and the NLL of the actual token p + 1 (0 for the last row, which has no next token);
with PoolingParams(extra_kwargs={"positions": [...]}) only those rows, in that order, and the
vocabulary projection runs at those positions alone. With prefix caching and
skip_reading_prefix_cache=False the cached leading tokens are not run and their hidden states never
reach the pooler: positions after them are scored as usual, and a request with a position inside
them gets NaN rows (the engine then runs it again without reading the cache).

Registered through the vllm.general_plugins entry point (pyproject.toml), so every vLLM process,
the engine core included, knows the architectures below; select one with
hf_overrides={"architectures": [entropy_architecture(original)]} and runner="pooling".
This module imports vllm only inside functions: importing it costs nothing where vllm is absent.
"""

from __future__ import annotations

import importlib
from typing import Any

PREFIX = "ElongEntropy"
POSITIONS = "positions"  # PoolingParams.extra_kwargs key: the rows to compute
GEMM_ENV = "ENTROPYLONG_VLLM_CPU_GEMM"  # "torch" (default) or "onednn": see patches.install_vllm_torch_gemm
# Causal LMs this plugin wraps: architecture name -> vLLM module that defines it.
SUPPORTED = {
    "LlamaForCausalLM": "vllm.model_executor.models.llama",
    "MistralForCausalLM": "vllm.model_executor.models.mistral",
    "Qwen2ForCausalLM": "vllm.model_executor.models.qwen2",
    "Qwen3ForCausalLM": "vllm.model_executor.models.qwen3",
}


def entropy_architecture(architecture: str) -> str:
    if architecture not in SUPPORTED:
        raise ValueError(
            f"the vLLM entropy engine supports {sorted(SUPPORTED)}, not {architecture!r}; "
            "use the transformers engine for this model"
        )
    return PREFIX + architecture


def register() -> None:
    """The vllm.general_plugins entry point: register every wrapped architecture lazily."""
    from vllm import ModelRegistry

    for architecture in SUPPORTED:
        ModelRegistry.register_model(PREFIX + architecture, f"{__name__}:{PREFIX}{architecture}")
    from .patches import install_vllm_torch_gemm

    install_vllm_torch_gemm(PREFIX, GEMM_ENV)


def __getattr__(name: str) -> Any:
    # ModelRegistry imports "module:Class" lazily; build the wrapper class on first access.
    if name.startswith(PREFIX) and name[len(PREFIX):] in SUPPORTED:
        cls = _wrap(name[len(PREFIX):])
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _wrap(architecture: str) -> type:
    base = getattr(importlib.import_module(SUPPORTED[architecture]), architecture)
    pooler_cls = _entropy_pooler_cls()

    class EntropyModel(base):  # type: ignore[misc, valid-type]
        is_pooling_model = True
        default_tok_pooling_type = "ALL"

        def __init__(self, *, vllm_config: Any, prefix: str = "", **kwargs: Any) -> None:
            super().__init__(vllm_config=vllm_config, prefix=prefix, **kwargs)
            self.pooler = pooler_cls(self.compute_logits)

    EntropyModel.__name__ = EntropyModel.__qualname__ = PREFIX + architecture
    return EntropyModel


def _entropy_pooler_cls() -> type:
    import torch
    from vllm.model_executor.layers.pooler import Pooler, PoolingParamsUpdate
    from vllm.model_executor.layers.pooler.tokwise import AllPool

    from entropylong_streamer.method.entropy import entropy_and_nll

    class EntropyPooler(Pooler):
        """Per sequence: [T, 2] float32 rows of (H, NLL of the next token)."""

        CHUNK = 256

        def __init__(self, compute_logits) -> None:
            super().__init__()
            self.compute_logits = compute_logits
            # AllPool keeps a sequence's hidden states across chunked-prefill steps until it is done.
            self.gather = AllPool()

        def get_supported_tasks(self):
            return {"token_classify"}

        def get_pooling_updates(self, task):
            return PoolingParamsUpdate(requires_token_ids=True)

        def forward(self, hidden_states, pooling_metadata):
            per_sequence = self.gather(hidden_states, pooling_metadata)
            token_ids = pooling_metadata.get_prompt_token_ids_cpu()
            out: list[torch.Tensor | None] = []
            for hidden, ids, params in zip(per_sequence, token_ids, pooling_metadata.pooling_params, strict=True):
                if hidden is None:  # prefill not finished yet
                    out.append(None)
                    continue
                targets = torch.zeros_like(ids)
                targets[:-1] = ids[1:]
                positions = (params.extra_kwargs or {}).get(POSITIONS)
                # With prefix caching the cached leading tokens were not run: hidden starts after them.
                cached = len(ids) - hidden.shape[0]
                if cached and (positions is None or positions[0] < cached):
                    # A position inside the cached part has no hidden state: NaN asks the engine to
                    # run this request again without reading the cache.
                    n = len(ids) if positions is None else len(positions)
                    out.append(torch.full((n, 2), float("nan"), dtype=torch.float32))
                    continue
                if positions is not None:  # the vocabulary projection only where it is asked for
                    wanted = torch.as_tensor(positions, dtype=torch.long)
                    hidden, targets = hidden[(wanted - cached).to(hidden.device)], targets[wanted]
                h, nll = entropy_and_nll(hidden, self.compute_logits, targets.to(hidden.device),
                                         self.CHUNK)
                if positions is None:
                    nll[-1] = 0.0
                out.append(torch.stack([h, nll], dim=1))
            return out

    return EntropyPooler
