"""A stage in no release: a word count of every document. What it takes to add one is this file's
TOY entry in the registry and the stage's own code (issues 20 and 35); tests/integration/test_toy_stage.py
runs it in batch and streaming mode."""

from entropylong_streamer import registry
from entropylong_streamer.stages.base import StageError, Stats, run_batch
from entropylong_streamer.topics import DOCS, Doc
from entropylong_streamer.topics.base import Record, TopicSpec

MIN_WORDS = 5


class DocWords(Record):
    doc_id: str
    words: int
    config_version: str


WORDS = TopicSpec("doc_words", DocWords)


class WordCount:
    def __init__(self, version: str) -> None:
        self.version, self.stats = version, Stats()

    def process(self, docs: list[Doc]):
        def count(doc: Doc) -> DocWords:
            words = len(doc.text.split())
            if words < MIN_WORDS:
                raise StageError(f"too_short: {words} words")
            return DocWords(doc_id=doc.doc_id, words=words, config_version=self.version)

        return run_batch("wordcount", docs, count, self.stats)


# raw input (no upstream); its version is a digest of its one setting, its object built from the Pipeline
TOY = registry.StageSpec("wordcount", DOCS, WORDS, settings=lambda cfg: (MIN_WORDS,),
                         build=lambda pipe: WordCount(registry.stage("wordcount").version(pipe.cfg)))


def register() -> None:
    """The registry with the toy after the first stage (in a worker process: before the CLI runs)."""
    if TOY not in registry.STAGES:
        registry.STAGES = (*registry.STAGES[:1], TOY, *registry.STAGES[1:])
