"""The parts every stage is built from (its LM, embedder, pool and stores, tokenizer, separator), each loaded
once from the one Config when a stage first needs it. Streaming workers and batch mode both start here;
registry.py says which parts each stage takes."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from entropylong_streamer.config import Config
from entropylong_streamer.measurements import MeasurementCache
from entropylong_streamer.method.near_dup import NearDuplicateRule
from entropylong_streamer.method.samples import separator_ids
from entropylong_streamer.topics import ModelVersion


class Pipeline:
    """Lazily builds the heavy parts (LM, embedder, pool) so each worker loads only what it needs.

    model_version: a version the rolling trainer published (policy.follow); the scoring LM is loaded
    from it instead of model.path, and it enters the measurement keys and the records. engine: an
    engine that holds it already (vLLM's, its weights replaced in place)."""

    def __init__(self, cfg: Config, milvus_uri: str | None = None, model_version: ModelVersion | None = None,
                 engine=None) -> None:
        self.cfg = cfg
        self.milvus_uri = milvus_uri or cfg.milvus.uri
        self.model_version = model_version
        if engine is not None:
            self.__dict__["engine"] = engine  # what the cached property would otherwise build

    @property
    def model_path(self) -> str:
        return self.model_version.path if self.model_version is not None else self.cfg.model.path

    @property
    def version_name(self) -> str:
        return self.model_version.version if self.model_version is not None else ""

    @property
    def cache_dir(self) -> Path:
        return self.cfg.paths.models

    @cached_property
    def engine(self):
        m = self.cfg.model
        if m.engine == "null":
            from entropylong_streamer.services.models import load_tokenizer
            from entropylong_streamer.services.null_models import NullEngine

            return NullEngine(load_tokenizer(self.model_path, self.cache_dir), m.max_tokens, m.overlap)
        if m.engine == "vllm":
            from entropylong_streamer.services.vllm_engine import VLLMEngine

            return VLLMEngine(self.model_path, self.cache_dir, m.max_tokens, overlap=m.overlap,
                              batch_tokens=m.batch_tokens, device=m.device, dtype=m.dtype,
                              kv_cache_gib=m.vllm_kv_cache_gib,
                              gpu_memory_utilization=m.vllm_gpu_memory_utilization,
                              cpu_gemm=m.vllm_cpu_gemm, prefix_caching=m.vllm_prefix_caching)
        from entropylong_streamer.services.transformers_engine import TransformersEngine

        return TransformersEngine(self.model_path, self.cache_dir, m.max_tokens, m.chunk_positions, m.threads,
                                  overlap=m.overlap, batch_tokens=m.batch_tokens, device=m.device,
                                  dtype=m.dtype, prefix_cache_bytes=m.prefix_cache_mib << 20)

    @cached_property
    def embedder(self):
        if self.cfg.retrieval.embedder == "null":
            from entropylong_streamer.services.null_models import NullEmbedder

            return NullEmbedder()
        from entropylong_streamer.services.embedder import STATIC, SentenceEmbedder, StaticEmbedder

        if self.cfg.retrieval.embedder == STATIC:
            return StaticEmbedder(self.cache_dir)
        return SentenceEmbedder(self.cfg.retrieval.embedder)

    @cached_property
    def pool(self):
        from entropylong_streamer.services.pool import MilvusPool

        r = self.cfg.retrieval
        embedder = None if r.mode == "lexical" else self.embedder  # BM25 needs no model
        return MilvusPool(self.milvus_uri, self.cfg.milvus.collection, embedder, embedder.dim if embedder else 0,
                          token=self.cfg.milvus.token, index_type=r.index_type,
                          index_params=r.index_params, search_params=r.search_params,
                          signature_length=self.cfg.door.minhash_permutations, mode=r.mode, rrf_k=r.rrf_k)

    @cached_property
    def line_store(self):
        """How many pool documents hold each line (template detection), beside the pool's chunks: in
        SQLite where the pool is milvus-lite (beside its file, or in data_dir for its server; milvus-lite
        filters in Python, and those counts were most of the indexer's time), else in a collection on
        the Milvus server, which workers on any machine share."""
        from entropylong_streamer.services.line_store import MilvusLineStore, SqliteLineStore

        collection = f"{self.cfg.milvus.collection}_lines"
        # a pool whose counts an earlier version kept in Milvus keeps them there
        if self._milvus_lite and not self.pool.client.has_collection(collection):
            return SqliteLineStore(self._beside_pool("lines"))
        return MilvusLineStore(self.pool.client, collection)

    @property
    def _local_pool(self) -> bool:
        return not self.milvus_uri.startswith(("http://", "https://", "tcp://", "unix:"))

    @cached_property
    def _milvus_lite(self) -> bool:
        return self._local_pool or str(self.pool.client.get_server_version()).startswith("milvus_lite")

    def _beside_pool(self, what: str) -> Path:
        """A file of the pool's counts: beside a local pool file, else in data_dir, which the index and
        retrieval workers of one machine share."""
        if self._local_pool:
            return Path(f"{self.milvus_uri}.{what}.sqlite")
        return Path(self.cfg.data_dir) / f"pool-{what}" / f"{self.cfg.milvus.collection}.sqlite"

    @cached_property
    def ngram_store(self):
        """How many pool documents hold each word n-gram: a sketch beside a milvus-lite file, else in data_dir."""
        from entropylong_streamer.services.ngram_sketch import SqliteNgramStore

        return SqliteNgramStore(self._beside_pool("ngrams"))

    @cached_property
    def doc_store(self):
        """The pool's documents whole (retrieval.context = "document"), beside its chunks."""
        from entropylong_streamer.services.doc_store import MilvusDocStore

        return MilvusDocStore(self.pool.client, f"{self.cfg.milvus.collection}_docs")

    @property
    def near_duplicate_rule(self) -> NearDuplicateRule:
        return NearDuplicateRule(*self.cfg.door.near_duplicate_rule())

    @cached_property
    def separator(self) -> tuple[int, ...]:
        """pack.separator as token ids (a text is tokenised by the model's tokenizer)."""
        return separator_ids(self.cfg.pack.separator, lambda text: self.engine_tokenizer().tokenize(text).ids)

    @property
    def model_key(self) -> str:
        """What an LM measurement depends on besides the tokens: model (and its published version), dtype,
        separator."""
        sep = ",".join(map(str, self.separator))
        version = f"@{self.version_name}" if self.version_name else ""
        return f"{self.cfg.model.path}{version}:{self.engine.dtype}:sep{sep}"

    @property
    def scores_model_key(self) -> str:
        """The entropy stage's model_key: a document's scores also depend on the windows it is cut in."""
        m = self.cfg.model
        return f"{self.model_key}:window{m.max_tokens}/{m.overlap}"

    def stage(self, name: str, cache: MeasurementCache | None = None, **kwargs):
        """The registered stage's object, built from this Pipeline's parts (registry.py says how), with the
        measurement cache it keeps where given (a worker's changelog topic, batch mode's file)."""
        from entropylong_streamer import registry

        built = registry.stage(name).build(self, **kwargs)
        if cache is not None:
            built.cache = cache
        return built

    def engine_tokenizer(self):
        """The indexer and retrieval need only the LM's tokenizer (chunks and context windows are
        LM tokens), not its weights."""
        return self._tokenizer

    @cached_property
    def _tokenizer(self):
        from entropylong_streamer.services.lm import HFTokenizer
        from entropylong_streamer.services.models import load_tokenizer

        return HFTokenizer(load_tokenizer(self.cfg.model.path, self.cache_dir))  # a version keeps its base's
