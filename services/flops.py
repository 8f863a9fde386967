"""Forward FLOPs of a decoder-only LM, read off its config.json (no weights needed).

2 x the body's multiplying parameters per token run (the embedding lookup is not a matmul), causal
attention (QK^T and AV over the tokens before each one), and the vocabulary projection only where
logits are taken: the engines project the positions they score, not every token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlopModel:
    body: int  # parameters of the layers that multiply: attention, MLP, norms
    layers: int
    hidden: int  # query heads x head dim: what QK^T and AV multiply by
    vocab: int
    width: int  # hidden size: what the vocabulary projection multiplies by

    @classmethod
    def of_config(cls, config: dict[str, Any]) -> FlopModel:
        """A Llama-style config (SmolLM2, the tiny model, most decoders): q, k, v, o projections,
        a gated MLP (three matrices) and two norms per layer, a final norm."""
        d = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or d // heads)
        kv = int(config.get("num_key_value_heads") or heads) * head_dim
        ffn = int(config["intermediate_size"])
        layers = int(config["num_hidden_layers"])
        per_layer = d * heads * head_dim * 2 + d * kv * 2 + 3 * d * ffn + 2 * d
        if config.get("attention_bias"):
            per_layer += heads * head_dim + 2 * kv + d
        return cls(body=layers * per_layer + d, layers=layers, hidden=heads * head_dim,
                   vocab=int(config["vocab_size"]), width=d)

    def forward(self, tokens: int, logits_at: int, past: int = 0) -> float:
        return sum(self.parts(tokens, logits_at, past))

    def parts(self, tokens: int, logits_at: int, past: int = 0) -> tuple[float, float, float]:
        """(body, attention, vocabulary projection) FLOPs of running `tokens` after `past` cached
        ones and taking logits at `logits_at` positions."""
        attention = 2 * self.layers * self.hidden * tokens * (2 * past + tokens)  # causal half of 4·T²·d
        return 2.0 * self.body * tokens, float(attention), 2.0 * self.width * self.vocab * logits_at
