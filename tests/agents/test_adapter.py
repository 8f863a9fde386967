"""The adapter every agent uses: bad records and stage rejects become dead letters, never crashes."""

from entropylong_streamer.agents.adapter import Message, handle_batch
from entropylong_streamer.stages.base import StageError, Stats, run_batch
from entropylong_streamer.topics import DEAD_LETTER, DOCS, Doc


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
