"""The stages, in pipeline order: each entry is a stage's one declaration. What it reads and writes,
the stage it reads from, the settings what it writes depends on, how its object is built and how its
worker runs. Versions (a digest of a stage's settings and its upstream's version), lineage, consumer
groups, worker dispatch, `status` rows, replay plans and the workers in deploy/ are all read from
STAGES: adding a stage is its own file plus one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from entropylong_streamer.agents.changelog_cache import ChangelogCache, measurement_log, scores_log
from entropylong_streamer.config import Config, digest
from entropylong_streamer.config_method import SCREEN_SETTINGS
from entropylong_streamer.method.anchors import AnchorParams
from entropylong_streamer.method.context_window import PairLayout
from entropylong_streamer.method.dependency import Criterion
from entropylong_streamer.method.screen import ScreenParams
from entropylong_streamer.method.templates import NGRAM_WORDS
from entropylong_streamer.stages.entropy import EntropyStage
from entropylong_streamer.stages.index import IndexStage
from entropylong_streamer.stages.pack import PackStage
from entropylong_streamer.stages.retrieve import DocumentContexts, RetrievalStage
from entropylong_streamer.stages.verify import VerifyStage
from entropylong_streamer.topics import ANCHORS, CANDIDATES, DEPENDENCIES, DOCS, SHARD_READY, TopicSpec

if TYPE_CHECKING:
    from entropylong_streamer.pipeline import Pipeline


def _always(cfg: Config) -> bool:
    return True


def _no_settings(cfg: Config) -> tuple:
    return ()


@dataclass(frozen=True)
class Workload:
    """How a stage's worker is deployed (deploy/compose.yaml and deploy/k8s/workers.yaml are rendered from it)."""

    about: str = ""  # what the worker does, one line
    gpu: bool = False  # the GPU image and one GPU: the LM stages (vLLM) and the trainer
    cpu: str = "2"
    memory: str = "4Gi"
    memory_limit: str = "8Gi"
    # what of the shared data volume it uses: None nothing, "" all of it as /data, else that sub-folder of it
    shared: str | None = None
    shared_readonly: bool = False
    shared_why: str = ""


@dataclass(frozen=True)
class StageSpec:
    name: str
    source: TopicSpec
    sink: TopicSpec | None
    upstream: str | None = None  # the stage whose output it reads, at that stage's version (None: raw input)
    # what its output depends on besides its upstream's version: a threshold changed there is a new version
    settings: Callable[[Config], tuple] = _no_settings
    build: Callable[[Pipeline], Any] | None = None  # the object its worker and batch mode run
    # which Worker the one loop runs (agents/worker.py): a record stage around `build`'s object, the packer, the trainer
    runner: Literal["stage", "pack", "trainer"] = "stage"
    scalable: bool = True  # False: exactly one worker (it orders or owns what it writes)
    cache: Callable[[Config], ChangelogCache] | None = None  # the LM measurements its worker keeps
    cache_name: str | None = None  # batch mode's file of them, data_dir/<name>.msgpack
    # False: one consumer group for every version (the trainer trains its own config's shard set,
    # and a new version restarts it rather than re-reading the topic)
    versioned_group: bool = True
    active: Callable[[Config], bool] = _always  # whether this configuration runs it at all
    follows_model: bool = False  # scores with the trainer's newest published version under policy.follow
    workload: Workload = Workload()

    def version(self, cfg: Config) -> str:
        """Of what it writes: its name, its upstream's version and its settings, hashed."""
        upstream = () if self.upstream is None else (stage(self.upstream).version(cfg),)
        return digest(self.name, *upstream, *self.settings(cfg))

    def consumes(self, cfg: Config) -> str | None:
        """The version of the records it reads; None for raw input."""
        return None if self.upstream is None else stage(self.upstream).version(cfg)

    def group(self, cfg: Config) -> str:
        prefix = cfg.kafka.topic_prefix
        return f"{prefix}{self.name}-{self.version(cfg)}" if self.versioned_group else f"{prefix}{self.name}"


def _entropy_settings(cfg: Config) -> tuple:
    m = cfg.model  # the engine is not part of it (both engines compute the same entropy), unless null
    null = ("null-engine",) if m.engine == "null" else ()
    # Following the trainer, records are measured by a succession of versions: another data set. The
    # versions themselves are no part of it (each record names its own), or every publication would
    # start new consumer groups over the whole topic.
    follow = ("follow", cfg.trainer.rope_theta, cfg.trainer.publish_every) if cfg.policy.follow else ()
    return (m.path, m.dtype, m.max_tokens, m.overlap, cfg.entropy, cfg.pack.separator, *null, *follow,
            "no-layout-anchors")


def _index_settings(cfg: Config) -> tuple:
    """The pool's chunks: what the indexer writes depends on none of the thresholds."""
    r, d = cfg.retrieval, cfg.door  # each chunk carries its document's MinHash signature
    # a dense pool's version is what it was before the modes existed; lexical has no embedder
    mode = () if r.mode == "dense" else (f"mode-{r.mode}",)
    embedder = "" if r.mode == "lexical" else r.embedder
    return (cfg.model.path, embedder, r.chunk_tokens, r.chunk_overlap, cfg.milvus.collection,
            d.shingle_words, d.minhash_permutations, "line-counts", "documents",
            *((f"ngram-counts-{r.template_ngram_words}",) if r.template_ngram_words else ()),
            *((f"prefix-counts-{r.template_prefix_words}",) if r.template_prefix_words else ()), *mode)


def _retrieval_settings(cfg: Config) -> tuple:
    # a document context is cut to the tokens verification holds: its cap is retrieval's too
    cap = (cfg.verify.max_context_tokens,) if cfg.retrieval.context == "document" else ()
    # a label rule switched off, and dense mode, leave the version what it was before they existed;
    # what a mode does not use is no part of it
    mode = cfg.retrieval.mode
    skip = {name for name, unused in (("mode", mode == "dense"), ("rrf_k", mode != "hybrid"),
                                      ("embedder", mode == "lexical"),
                                      ("template_prefix_words", not cfg.retrieval.template_prefix_words))
            if unused}
    r = cfg.retrieval.model_dump(mode="json", exclude=skip or None)
    return (r, cfg.milvus.collection, cfg.door.near_duplicate_rule(), *cap)


def _verify_settings(cfg: Config) -> tuple:
    # The screen's settings are part of the version only while it is on: off, the version is what it was.
    # rival_quantile and best_share only while "shared" decides, span_tokens only beyond the anchor alone:
    # other settings keep the versions they had.
    v = cfg.verify
    unused = (set() if v.screen != "off" else SCREEN_SETTINGS) | (
        set() if v.criterion == "shared" else {"rival_quantile", "best_share"}) | (
        {"span_tokens"} if v.span_tokens == 1 else set())
    return (v.model_dump(mode="json", exclude=unused or None), cfg.pack.separator)


def _pack_settings(cfg: Config) -> tuple:
    p = cfg.pack
    return (p.seq_len, p.separator, p.seed, p.domain, *(() if p.sample_tokens is None else (p.sample_tokens,)),
            *(() if p.depth == 1 else (f"depth-{p.depth}",)))


def criterion(cfg: Config) -> Criterion:
    v = cfg.verify
    return Criterion(v.epsilon, v.criterion, v.nll_threshold, v.max_sources, v.rival_quantile, v.best_share)


def screen_params(cfg: Config) -> ScreenParams | None:
    v = cfg.verify
    if v.screen == "off":
        return None
    return ScreenParams(v.screen_context_tokens, v.screen_window, v.screen_threshold, v.screen_max_anchors,
                        v.screen_max_share, shadow=v.screen == "shadow")


# How each stage's object is built from the Pipeline's shared parts (its LM, pool, stores, tokenizer).
def _entropy(pipe: Pipeline) -> EntropyStage:
    cfg, e = pipe.cfg, pipe.cfg.entropy
    params = AnchorParams(e.alpha, e.min_position, e.max_anchors, e.merge_distance)
    return EntropyStage(pipe.engine, params, e.window, pipe.separator, stage("entropy").version(cfg),
                        e.max_doc_tokens, model_key=pipe.scores_model_key, model_version=pipe.version_name)


def _index(pipe: Pipeline) -> IndexStage:
    r = pipe.cfg.retrieval
    return IndexStage(pipe.engine_tokenizer(), pipe.pool, r.chunk_tokens, r.chunk_overlap, pipe.near_duplicate_rule,
                      pipe.line_store, pipe.doc_store, ngrams=pipe.ngram_store if r.template_ngram_words else None,
                      ngram_words=r.template_ngram_words or NGRAM_WORDS, prefix_words=r.template_prefix_words)


def _retrieval(pipe: Pipeline) -> RetrievalStage:
    cfg, r = pipe.cfg, pipe.cfg.retrieval
    documents = None if r.context != "document" else DocumentContexts(
        pipe.doc_store, pipe.engine_tokenizer(), PairLayout(pipe.separator, cfg.model.max_tokens),
        cfg.verify.max_context_tokens, r.max_contexts)
    return RetrievalStage(pipe.pool.embedder, pipe.pool, r.top_k, pipe.near_duplicate_rule,
                          stage("retrieval").version(cfg), max_anchors=cfg.entropy.max_anchors,
                          lines=pipe.line_store if r.template_min_docs else None,
                          template_min_docs=r.template_min_docs, documents=documents,
                          ngrams=pipe.ngram_store if r.template_min_docs and r.template_ngram_words else None,
                          ngram_words=r.template_ngram_words or NGRAM_WORDS,
                          prefix_words=r.template_prefix_words, rounds=r.rounds)


def _verify(pipe: Pipeline) -> VerifyStage:
    cfg, v = pipe.cfg, pipe.cfg.verify
    return VerifyStage(pipe.engine, criterion(cfg), v.max_context_tokens, pipe.separator,
                       stage("verify").version(cfg), v.all_anchors, model_key=pipe.model_key,
                       max_anchors=cfg.entropy.max_anchors,
                       max_candidates=cfg.entropy.max_anchors * cfg.retrieval.top_k * cfg.retrieval.rounds,
                       screen=screen_params(cfg), model_version=pipe.version_name, span_tokens=v.span_tokens)


def _pack(pipe: Pipeline, shard_root: Path | None = None, max_wait_s: float | None = None) -> PackStage:
    """shard_root: data_dir's shards unless given; max_wait_s: pack.max_wait_s unless given (batch mode has
    all its input at once: inf)."""
    from entropylong_streamer.services.shards import ShardSet

    cfg, p = pipe.cfg, pipe.cfg.pack
    shards = ShardSet(cfg.paths.shards if shard_root is None else shard_root, stage("pack").version(cfg))
    return PackStage(shards, p.seq_len, pipe.separator, p.seed, p.sequences_per_shard,
                     p.max_wait_s if max_wait_s is None else max_wait_s, p.domain, p.sample_length, p.depth)


_LM = Workload(gpu=True, cpu="4", memory="16Gi", memory_limit="32Gi", shared="model-versions", shared_readonly=True,
               shared_why="the versions the trainer publishes (policy.follow)")
_NGRAMS = "the pool's n-gram counts (retrieval.template_ngram_words), one file for every index and retrieval pod"

STAGES: tuple[StageSpec, ...] = (
    StageSpec("entropy", DOCS, ANCHORS, settings=_entropy_settings, build=_entropy, cache=scores_log,
              cache_name="scores", follows_model=True,
              workload=replace(_LM, about="LM stage: exact per-token entropy of every document with vLLM on one GPU.")),
    StageSpec("index", DOCS, None, settings=_index_settings, build=_index,
              active=lambda cfg: cfg.retrieval.index_live_docs,
              workload=Workload("Embeds live documents into the Milvus pool (CPU embedder).", shared="pool-ngrams",
                                shared_why=_NGRAMS)),
    StageSpec("retrieval", ANCHORS, CANDIDATES, "entropy", _retrieval_settings, _retrieval,
              workload=Workload("Retrieves candidate contexts for each anchor (CPU embedder).", shared="pool-ngrams",
                                shared_why=_NGRAMS)),
    StageSpec("verify", CANDIDATES, DEPENDENCIES, "retrieval", _verify_settings, _verify,
              cache=measurement_log, cache_name="measurements", follows_model=True,
              workload=replace(_LM, about="LM stage: measures every candidate context's entropy drop with vLLM on one "
                                          "GPU.")),
    StageSpec("pack", DEPENDENCIES, SHARD_READY, "verify", _pack_settings, _pack, runner="pack", scalable=False,
              workload=Workload("Packs verified samples into shards.", cpu="1", shared="",
                                shared_why="shards, read by the trainer")),
    # the trainer writes no versioned records: its version changes with the shard set it trains
    StageSpec("trainer", SHARD_READY, None, "pack", runner="trainer", scalable=False, versioned_group=False,
              workload=Workload("The rolling trainer on one GPU.", gpu=True, cpu="4", memory="32Gi",
                                memory_limit="64Gi", shared="",
                                shared_why="pack's shards; its checkpoints and loss log")),
)
NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> StageSpec:
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}: one of {', '.join(NAMES)}")


def active(cfg: Config) -> list[StageSpec]:
    """The stages this configuration runs, in pipeline order."""
    return [s for s in STAGES if s.active(cfg)]


def versions(cfg: Config) -> dict[str, str]:
    """The version of what each stage that writes records writes."""
    return {s.name: s.version(cfg) for s in STAGES if s.sink is not None}
