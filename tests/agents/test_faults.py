"""Records go to the dead letters, outages go to lag: the two kinds of failure told apart in one place."""

import errno
import sqlite3

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from pymilvus.exceptions import MilvusException, ParamError

from entropylong_streamer.agents.faults import Backoff, Blocked, EngineLost, Outage, outage_reason, retrying
from entropylong_streamer.agents.worker_loop import Message
from entropylong_streamer.agents.workers import handle_batch
from entropylong_streamer.services.lm import EngineStateLost
from entropylong_streamer.stages.base import StageResult
from entropylong_streamer.topics import DEAD_LETTER, DOCS, Doc


def milvus_down() -> MilvusException:  # what pymilvus 3.0.2 raises while milvus-lite is killed
    return MilvusException(2, "Fail connecting to server on 127.0.0.1:1, illegal connection params or server "
                              "unavailable")


@pytest.mark.parametrize(("exc", "reason"), [
    (milvus_down(), "vector_store"),
    (MilvusException(101, "Collection 'pool' is in state 'released'; call load() before search"), "vector_store"),
    (MilvusException(65535, "busy", retriable=True), "vector_store"),
    (MilvusException(1100, "invalid parameter", is_input_error=True), None),
    (ParamError(message="dim mismatch"), None),
    (MilvusException(1, "unexpected"), None),
    (KafkaTimeoutError("no ack"), "broker"),
    (KafkaConnectionError("refused"), "broker"),
    (MessageSizeTooLargeError("too big"), None),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "engine"),
    (OSError(errno.ENOSPC, "No space left on device"), "filesystem"),
    (FileNotFoundError(errno.ENOENT, "models/smollm2"), "filesystem"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "network"),
    (sqlite3.OperationalError("database or disk is full"), "filesystem"),
    (sqlite3.OperationalError("disk I/O error"), "filesystem"),
    (sqlite3.OperationalError('near "SELEC": syntax error'), None),
    (ValueError("text is not a string"), None),
    (KeyError("doc_id"), None),
])
def test_each_library_failure_is_an_outage_or_may_be_the_records(exc, reason):
    assert outage_reason(exc) == reason


def test_an_outage_wrapped_by_a_stage_is_still_one():
    try:
        try:
            raise milvus_down()
        except MilvusException as inner:
            raise RuntimeError("retrieval failed") from inner
    except RuntimeError as outer:
        assert outage_reason(outer) == "vector_store"


def test_an_engine_gone_for_good_ends_the_worker():
    with pytest.raises(EngineLost, match="EngineStateLost"):
        outage_reason(EngineStateLost("weights lost"))


def msg(offset, text):
    return Message("docs", 0, offset, b"k", DOCS.encode(Doc(doc_id=f"d{offset}", text=text)))


class Flaky:
    """Raises `exc` on the first `outages` calls, then on any batch holding a 'poison' record `poison` times
    in a row for that record, then passes everything."""

    def __init__(self, exc=None, outages=0, poison=0):
        self.exc, self.outages, self.poison, self.calls = exc, outages, poison, 0

    def process(self, docs):
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise self.exc
        if any("poison" in d.text for d in docs) and (len(docs) > 1 or self.poison):
            self.poison -= len(docs) == 1
            raise RuntimeError("bad record")
        return StageResult(outputs=list(docs))


def test_an_outage_dead_letters_nothing_and_the_same_batch_then_goes_through():
    stage = Flaky(milvus_down(), outages=2)
    batch = [msg(0, "a"), msg(1, "b")]
    for _ in range(2):
        with pytest.raises(Outage) as caught:
            handle_batch("retrieval", batch, DOCS, DOCS, stage.process)
        assert caught.value.reason == "vector_store"
    outs, dead = handle_batch("retrieval", batch, DOCS, DOCS, stage.process)
    assert len(outs) == 2 and not dead


def test_an_outage_met_while_isolating_a_record_is_an_outage_too():
    class DownAlone(Flaky):
        def process(self, docs):
            if len(docs) == 1:
                raise KafkaTimeoutError("no ack")
            raise RuntimeError("the batch failed")

    with pytest.raises(Outage, match="broker"):
        handle_batch("verify", [msg(0, "a"), msg(1, "b")], DOCS, DOCS, DownAlone().process)


@pytest.mark.parametrize(("fails_alone", "dead_lettered"), [(1, False), (2, False), (3, True), (9, True)])
def test_a_record_that_fails_alone_attempts_times_is_a_poison_pill(fails_alone, dead_lettered):
    stage = Flaky(poison=fails_alone)
    outs, dead = handle_batch("entropy", [msg(0, "a"), msg(1, "poison"), msg(2, "c")], DOCS, DOCS, stage.process,
                              attempts=3)
    letters = [DEAD_LETTER.decode(d.value) for d in dead]
    assert sorted(DOCS.decode(o.value).doc_id for o in outs) == (["d0", "d2"] if dead_lettered else ["d0", "d1", "d2"])
    assert [(x.doc_id, x.attempts, x.reason) for x in letters] == (
        [("d1", 3, "error: RuntimeError: bad record")] if dead_lettered else [])


class Waits:
    def __init__(self):
        self.delays = []

    def wait(self, delay):
        self.delays.append(delay)
        return False


@given(base=st.floats(0.01, 5), cap=st.floats(0.01, 60), tries=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_back_off_doubles_within_jitter_and_never_passes_its_cap(base, cap, tries, seed):
    import random

    waits, backoff = Waits(), Backoff(base, cap, rng=random.Random(seed))
    for _ in range(tries):
        assert backoff.wait(waits)
    for n, delay in enumerate(waits.delays):
        bound = min(cap, base * 2**n)
        assert bound / 2 <= delay <= bound
    backoff.reset()
    backoff.wait(waits)
    assert waits.delays[-1] <= min(cap, base)


def test_a_call_that_meets_outages_is_waited_out_and_its_state_file_says_so_meanwhile(tmp_path):
    import json
    import threading

    state = tmp_path / "run" / "retrieval-0.outage.json"
    seen = []

    def call():
        if len(seen) < 3:
            seen.append(json.loads(state.read_text()) if state.exists() else None)
            raise milvus_down()
        return "built"

    blocked = Blocked("retrieval", Backoff(0.001, 0.002), state)
    assert retrying(call, blocked, threading.Event()) == "built"
    assert seen[0] is None and [(s["stage"], s["reason"], s["tries"]) for s in seen[1:]] == [
        ("retrieval", "vector_store", 1), ("retrieval", "vector_store", 2)]
    assert not state.exists() and blocked.reason is None  # cleared once the call went through
    with pytest.raises(ValueError):
        retrying(lambda: int("x"), blocked, threading.Event())  # not an outage: raised at once
