"""The one consumer loop (agents/worker_loop.py) over an in-memory source and sink, as batch mode runs it:
every record's output is sent exactly once and committed only after it was acknowledged, whatever
outages of the stage or the sink come in between; the packer's shard is written once and announced
before the records inside it commit."""

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.agents import worker_loop
from entropylong_streamer.agents.faults import Backoff, Blocked
from entropylong_streamer.agents.worker_loop import MemorySource, MemoryTopics, Message, Produced
from entropylong_streamer.agents.workers import PackWorker, handle_batch
from entropylong_streamer.config import Config
from entropylong_streamer.services.shards import ShardSet
from entropylong_streamer.stages.base import Stats, run_batch
from entropylong_streamer.stages.pack import PackStage
from entropylong_streamer.topics import DEPENDENCIES, DOCS, SHARD_READY, Context, DependenciesRecord, Doc, Pair
from entropylong_streamer.topics.base import TopicSpec

UPPER = TopicSpec("upper", Doc)


def quick() -> Blocked:
    return Blocked("test", Backoff(0.001, 0.002))


class FlakySink:
    """MemoryTopics whose sends fail (a full disk) at the given calls, sending nothing then."""

    def __init__(self, topics: MemoryTopics, failing: set[int]) -> None:
        self.topics, self.failing, self.calls = topics, failing, 0

    def send(self, produced: list[Produced]) -> None:
        self.calls += 1
        if self.calls in self.failing:
            raise OSError(28, "No space left on device")
        self.topics.send(produced)

    def close(self) -> None:
        pass


class Upper(worker_loop.Worker):
    """A record stage: each document's text upper-cased; its runs fail (the disk) at the given calls."""

    name = "upper"

    def __init__(self, failing: set[int]) -> None:
        self.failing, self.calls, self.stats = failing, 0, Stats()

    def run(self, msgs: list[Message]):
        self.calls += 1
        if self.calls in self.failing:
            raise OSError(5, "Input/output error")

        def process(docs):
            return run_batch("upper", docs, lambda d: Doc(doc_id=d.doc_id, text=d.text.upper()), self.stats)

        return handle_batch("upper", msgs, DOCS, UPPER, process)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), batch=st.integers(1, 7), run_fails=st.sets(st.integers(1, 12), max_size=4),
       send_fails=st.sets(st.integers(1, 12), max_size=4))
def test_every_record_is_sent_once_and_committed_only_after_its_output(n, batch, run_fails, send_fails):
    topics = MemoryTopics()
    topics.send([Produced.of(DOCS, Doc(doc_id=f"d{i}", text=f"text {i}")) for i in range(n)])
    committed: list[str] = []

    def on_commit(msgs: list[Message]) -> None:  # each committed record's output is acknowledged already
        sent = {r.doc_id for r in topics.records(UPPER)}
        assert all(DOCS.decode(m.value).doc_id in sent for m in msgs)
        committed.extend(DOCS.decode(m.value).doc_id for m in msgs)

    source = MemorySource(topics, DOCS, batch, on_commit)
    worker_loop.run(Upper(run_fails), source, FlakySink(topics, send_fails), quick(), threading.Event())
    out = topics.records(UPPER)
    assert sorted(r.doc_id for r in out) == sorted(f"d{i}" for i in range(n))  # each once: none lost, none twice
    assert all(r.text == f"TEXT {r.doc_id[1:]}" for r in out)
    assert sorted(committed) == sorted(f"d{i}" for i in range(n))


def dependencies(doc_id: str, n_tokens: int) -> DependenciesRecord:
    ctx = Context(context_id=f"{doc_id}-c", context_doc_id="other", text="c", token_ids=[7, 8, 9])
    pair = Pair(context_id=ctx.context_id, anchor_index=1, char_start=0, char_end=1, h=2.0, h_ctx=0.5, nll=2.0,
                nll_ctx=0.5, d_i=0.75, accepted=True)
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=list(range(1, n_tokens + 1)), contexts=[ctx],
                              pairs=[pair], config_version=Config().version("verify"))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 12), send_fails=st.sets(st.integers(2, 8), max_size=3))
def test_a_shard_is_written_once_and_announced_before_its_records_commit(tmp_path_factory, n, send_fails):
    root = tmp_path_factory.mktemp("shards")
    stage = PackStage(ShardSet(root, "v1"), 64, (0,), seed=0, sequences_per_shard=2, max_wait_s=float("inf"),
                      domain="test")
    topics = MemoryTopics()
    topics.send([Produced.of(DEPENDENCIES, dependencies(f"d{i}", 20 + i)) for i in range(n)])
    committed: list[str] = []

    def on_commit(msgs: list[Message]) -> None:  # each committed record is in a shard, durable and announced
        docs = [DEPENDENCIES.decode(m.value).doc_id for m in msgs]
        assert set(docs) <= stage.shards.doc_ids
        assert len(topics.records(SHARD_READY)) == len(stage.shards.entries)
        committed.extend(docs)

    packer = PackWorker(Config(), stage, keep=True)
    worker_loop.run(packer, MemorySource(topics, DEPENDENCIES, 3, on_commit), FlakySink(topics, send_fails),
                    quick(), threading.Event())
    entries = stage.shards.entries
    assert [r.shard_id for r in topics.records(SHARD_READY)] == [e["shard_id"] for e in entries]  # once each
    assert sum(e["samples"] for e in entries) == n == len(packer.samples)
    assert sorted(committed) == sorted(f"d{i}" for i in range(n))


def test_a_streaming_packer_holds_no_shard_or_sample_after_announcing_it(tmp_path):
    """Only batch mode's report keeps what was packed (keep=True): a long-running packer writes thousands
    of shards and must not hold their samples."""
    stage = PackStage(ShardSet(tmp_path, "v1"), 64, (0,), seed=0, sequences_per_shard=1, max_wait_s=float("inf"),
                      domain="test")
    topics = MemoryTopics()
    topics.send([Produced.of(DEPENDENCIES, dependencies(f"d{i}", 30)) for i in range(6)])
    packer = PackWorker(Config(), stage)
    worker_loop.run(packer, MemorySource(topics, DEPENDENCIES, 2), topics, quick(), threading.Event())
    assert len(stage.shards.entries) > 1 and len(topics.records(SHARD_READY)) == len(stage.shards.entries)
    assert packer.shards == [] and packer.samples == {}
