"""handle_batch (agents/workers.py), which every record stage and the packer run: bad records and stage
rejects become dead letters, never crashes."""

from entropylong_streamer.agents.worker_loop import Message
from entropylong_streamer.agents.workers import handle_batch
from entropylong_streamer.stages.base import StageError, StageResult, Stats, run_batch
from entropylong_streamer.topics import DEAD_LETTER, DOCS, SHARD_READY, Doc, ShardReady


class UpperStage:
    """A stage that refuses documents containing 'refuse' and otherwise upper-cases the text."""

    def __init__(self):
        self.stats = Stats()

    def process(self, docs):
        def one(d):
            if "refuse" in d.text:
                raise StageError("refused: test rule")
            return Doc(doc_id=d.doc_id, text=d.text.upper())

        return run_batch("upper", docs, one, self.stats)


def msg(offset, value):
    return Message("docs", 0, offset, b"k", value)


def test_bad_bytes_and_rejects_dead_letter_with_stage_and_reason():
    ok = DOCS.encode(Doc(doc_id="a", text="hello"))
    refused = DOCS.encode(Doc(doc_id="b", text="please refuse"))
    stage = UpperStage()
    outs, dead = handle_batch("upper", [msg(0, ok), msg(1, b"\xc1junk"), msg(2, refused), msg(3, None)],
                              DOCS, DOCS, stage.process)
    assert [DOCS.decode(o.value).text for o in outs] == ["HELLO"]
    letters = [DEAD_LETTER.decode(d.value) for d in dead]
    assert [(d.offset, d.reason.split(":")[0]) for d in letters] == [(1, "decode"), (3, "decode"), (2, "upper")]
    assert letters[0].payload == b"\xc1junk" and letters[2].doc_id == "b"
    assert dict(stage.stats) == {"total": 2, "forwarded": 1, "dropped": 1, "dropped_refused": 1}


class ExplodingStage(UpperStage):
    """Raises an unexpected (non-StageError) exception on any batch containing 'boom'."""

    def process(self, docs):
        if any("boom" in d.text for d in docs):
            raise RuntimeError("kaboom")
        return super().process(docs)


def test_an_unexpected_exception_costs_only_the_record_that_caused_it():
    values = [DOCS.encode(Doc(doc_id=i, text=t)) for i, t in (("a", "x"), ("b", "boom"), ("c", "y"))]
    outs, dead = handle_batch("upper", [msg(i, v) for i, v in enumerate(values)], DOCS, DOCS,
                              ExplodingStage().process)
    assert sorted(DOCS.decode(o.value).text for o in outs) == ["X", "Y"]
    (letter,) = [DEAD_LETTER.decode(d.value) for d in dead]
    assert (letter.offset, letter.reason, letter.doc_id) == (1, "error: RuntimeError: kaboom", "b")


def test_records_of_another_config_version_are_skipped_not_processed():
    def ready(version):
        return SHARD_READY.encode(ShardReady(shard_id="s", path="/p", config_version=version, sequences=1,
                                             samples=1, tokens=1))

    seen = []

    def process(recs):
        seen.extend(r.config_version for r in recs)
        return StageResult()

    outs, dead = handle_batch("t", [msg(0, ready("old")), msg(1, ready("new"))], SHARD_READY, None, process,
                              expected_version="new")
    assert seen == ["new"] and not dead


def test_an_output_larger_than_the_brokers_limit_dead_letters_its_input_and_spares_the_batch():
    values = [DOCS.encode(Doc(doc_id=i, text=t)) for i, t in (("a", "x"), ("big", "y" * 5000), ("c", "z"))]
    outs, dead = handle_batch("upper", [msg(i, v) for i, v in enumerate(values)], DOCS, DOCS, UpperStage().process,
                              max_bytes=1000)
    assert sorted(DOCS.decode(o.value).doc_id for o in outs) == ["a", "c"]
    (letter,) = [DEAD_LETTER.decode(d.value) for d in dead]
    assert (letter.offset, letter.doc_id) == (1, "big") and letter.reason.startswith("record_too_large: its docs")
