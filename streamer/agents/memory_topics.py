"""Batch mode's transport: topics as lists in one process. Stages run over it through the same
adapter (StageRunner, handle_batch) as over Kafka, so dead letters, stats, metrics and the
packer's flush rule are the same objects in both modes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from entropylong_streamer.topics import TopicSpec

from .adapter import Message, Produced


class MemoryTopics:
    """Every sent record kept, per topic, in order; one partition each."""

    def __init__(self) -> None:
        self._logs: dict[str, list[Message]] = defaultdict(list)

    def send(self, produced: Iterable[Produced]) -> None:
        for p in produced:
            log = self._logs[p.topic.name]
            log.append(Message(p.topic.name, 0, len(log), p.key, p.value))

    def close(self) -> None:
        pass

    def messages(self, spec: TopicSpec) -> list[Message]:
        return list(self._logs.get(spec.name, ()))

    def records(self, spec: TopicSpec) -> list:
        return [spec.decode(m.value) for m in self._logs.get(spec.name, ())]

    def counts(self) -> dict[str, int]:
        return {name: len(log) for name, log in self._logs.items()}
