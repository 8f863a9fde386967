"""The door: what a document must pass before any LM work, each decision counted, each drop kept.

Order (cheapest first): the exact text seen before (its doc_id; admitted or dropped), length
and quality rules, language, then near-duplicates of any document ever admitted (MinHash LSH).
The index's writes form one transaction per batch; the caller commits it after the broker has
acknowledged the batch's documents and drop records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from entropylong_streamer.config import DoorConfig
from entropylong_streamer.method.near_dup import NearDuplicateRule, band_keys
from entropylong_streamer.method.text_quality import quality_problem
from entropylong_streamer.services.door_index import DoorIndex
from entropylong_streamer.topics import Doc, DroppedDoc

from .stages.base import Stats


class LanguageId:
    """lingua, offline (its models ship in the wheel), over every language it knows, so that a text
    in an unconfigured language is recognised as such rather than forced into a configured one."""

    def __init__(self, languages: list[str], min_confidence: float, max_chars: int = 2000) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        self.wanted = {Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in languages}
        self.min_confidence = min_confidence
        self.max_chars = max_chars
        # All models at start-up (~4 s): loaded lazily, each language's first text pays for it.
        self.detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def problem(self, text: str) -> str | None:
        values = self.detector.compute_language_confidence_values(text[: self.max_chars])
        if not values:
            return "no language recognised"
        top = values[0]
        code = top.language.iso_code_639_1.name.lower()
        if top.language not in self.wanted:
            return f"{code} ({top.value:.2f})"
        if top.value < self.min_confidence:
            return f"{code} with confidence {top.value:.2f} < {self.min_confidence}"
        return None


@dataclass(eq=False)
class Door:
    name: ClassVar[str] = "door"
    cfg: DoorConfig
    index: DoorIndex
    stats: Stats = field(default_factory=Stats, init=False)

    def __post_init__(self) -> None:
        self.language = LanguageId(self.cfg.languages, self.cfg.min_language_confidence) if self.cfg.languages else None
        self.rule = NearDuplicateRule(*self.cfg.near_duplicate_rule())  # retrieval's leakage guard shares it

    def admit(self, doc: Doc) -> Doc | DroppedDoc:
        if self.index.seen(doc.doc_id):  # doc_id is a hash of the text
            return self._drop(doc, "exact_duplicate", "the same text was seen before", doc.doc_id)
        self.index.add_seen([doc.doc_id])
        c = self.cfg
        broken = quality_problem(doc.text, c.min_words, c.max_words, c.min_mean_word_length, c.max_mean_word_length,
                                 c.max_symbol_ratio, c.min_alpha_word_ratio, c.max_duplicate_line_ratio)
        if broken is not None:
            return self._drop(doc, *broken)
        if self.language is not None and (problem := self.language.problem(doc.text)) is not None:
            return self._drop(doc, "language", problem)
        if c.near_dedup:
            sig = self.rule.signature(doc.text)
            keys = band_keys(sig, c.lsh_bands)
            near = self.index.nearest(sig, keys, self.rule.threshold)
            if near is not None:
                return self._drop(doc, "near_duplicate", f"estimated Jaccard {near[1]:.2f}", near[0])
            self.index.add_signature(doc.doc_id, sig, keys)
        self.stats.forwarded()
        return doc

    def _drop(self, doc: Doc, rule: str, detail: str, duplicate_of: str = "") -> DroppedDoc:
        self.stats.dropped(rule)
        return DroppedDoc(doc_id=doc.doc_id, **doc.origin(), rule=rule,
                          detail=detail, duplicate_of=duplicate_of)
