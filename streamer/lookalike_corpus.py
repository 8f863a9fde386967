"""A constructed corpus with known dependencies and lookalike distractors.

Every entity (a company, a software library, an expedition) has two documents: a profile that
states its facts (names, years, counts) and a report that uses those facts later in other
words. The profile is the report's one true source. The profiles of the other entities of the
same kind are lookalikes: the same template with other names and numbers, so they lower the
model's uncertainty at the report's facts just as well, but toward the wrong answer.

Names are made of random syllables and numbers are random, so the model cannot know them: only
the true source can make the report predictable.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

SYLLABLES = ("ka", "vel", "tra", "no", "mir", "quen", "by", "dor", "wick", "ha", "rro", "gate", "lu",
             "zan", "pe", "tor", "is", "fal", "grim", "sor", "ba", "len", "ti", "mo", "rak", "shu", "ve")


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


@dataclass(frozen=True)
class Template:
    kind: str
    profile: str
    report: str
    fields: dict[str, str]  # field -> "name2" (2 syllables), "name3", "year", "count", "version"


TEMPLATES = (
    Template(
        "company",
        "Company profile: {org} Systems. {org} Systems was founded in {year} by {founder} {family} in the "
        "city of {city}. Its flagship product is the {product} controller, sold in {count} countries. "
        "The chief engineer of {org} Systems is {engineer} {family2}, who joined the firm from {city2}.",
        "Quarterly review. Analysts spent most of the meeting on {org} Systems. The firm that "
        "{founder} {family} started back in {year} still keeps its headquarters in {city}, and its "
        "{product} controller now ships to {count} countries. Asked about the roadmap, "
        "{engineer} {family2} said the next design would come from the team in {city2}.",
        {"org": "name3", "founder": "name2", "family": "name3", "city": "name3", "product": "name2",
         "count": "count", "year": "year", "engineer": "name2", "family2": "name3", "city2": "name2"},
    ),
    Template(
        "library",
        "{lib} is an open-source library for {topic} written by {author} {family}. Version {version} "
        "was released in {year}. By default its server listens on port {port}, and its configuration "
        "file is called {lib_lower}rc. The project is maintained by the {team} group.",
        "Migration notes. We moved our services to {lib} last month. After installing release "
        "{version}, remember that the server expects port {port} unless you change {lib_lower}rc. "
        "Questions about {topic} go to {author} {family} and the rest of the {team} group, who have "
        "kept the library going since {year}.",
        {"lib": "name3", "topic": "name2", "author": "name2", "family": "name3", "version": "version",
         "year": "year", "port": "port", "team": "name3"},
    ),
    Template(
        "expedition",
        "The {ship} expedition left the port of {port_city} in {year} under captain {captain} {family}. "
        "It carried {count} sailors and reached the island of {island} after {days} days. The "
        "expedition's botanist, {botanist} {family2}, named the island's tallest tree the {tree} pine.",
        "Museum guide, room four. The logbook on display belonged to captain {captain} {family}, "
        "whose ship, the {ship}, sailed from {port_city} in {year}. Of the {count} sailors aboard, "
        "every one survived the {days} days to {island}, where {botanist} {family2} described the {tree} pine.",
        {"ship": "name3", "port_city": "name3", "year": "year", "captain": "name2", "family": "name3",
         "count": "count", "island": "name3", "days": "count", "botanist": "name2", "family2": "name3",
         "tree": "name2"},
    ),
)


def _value(rng: random.Random, kind: str) -> str:
    if kind.startswith("name"):
        return _name(rng, int(kind[-1]))
    if kind == "year":
        return str(rng.randint(1850, 2020))
    if kind == "count":
        return str(rng.randint(12, 980))
    if kind == "port":
        return str(rng.randint(1025, 65000))
    if kind == "version":
        return f"{rng.randint(1, 9)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}"
    raise ValueError(kind)


@dataclass(frozen=True)
class Entity:
    entity_id: str
    kind: str
    profile: str  # the true source
    report: str  # the document whose facts depend on the profile
    facts: list[tuple[int, int]]  # character spans of the report's facts (names, numbers)

    def is_fact(self, char_start: int, char_end: int) -> bool:
        return any(start < char_end and char_start < end for start, end in self.facts)


def _fill(template: str, values: dict[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """template.format(**values), with the character span of every substituted value."""
    text, spans = "", []
    for literal, field, _, _ in string.Formatter().parse(template):
        text += literal
        if field is not None:
            spans.append((len(text), len(text) + len(values[field])))
            text += values[field]
    return text, spans


def lookalike_corpus(entities_per_kind: int, seed: int = 0) -> list[Entity]:
    """entities_per_kind entities of each template; within a kind, every other profile is a lookalike."""
    rng = random.Random(seed)
    out = []
    for template in TEMPLATES:
        for i in range(entities_per_kind):
            values = {k: _value(rng, kind) for k, kind in template.fields.items()}
            if "lib" in values:
                values["lib_lower"] = values["lib"].lower()
            report, facts = _fill(template.report, values)
            out.append(Entity(f"{template.kind}-{i}", template.kind, template.profile.format(**values),
                              report, facts))
    return out


def write_corpus_files(directory: Path, entities_per_kind: int, seed: int = 0) -> tuple[Path, Path]:
    """reports.jsonl (the documents) and profiles.jsonl (the pool: each report's one true source)."""
    import json

    entities = lookalike_corpus(entities_per_kind, seed)
    directory.mkdir(parents=True, exist_ok=True)
    docs, pool = directory / "reports.jsonl", directory / "profiles.jsonl"
    docs.write_text("".join(json.dumps({"id": f"report-{e.entity_id}", "text": e.report}) + "\n" for e in entities))
    pool.write_text("".join(json.dumps({"id": f"profile-{e.entity_id}", "text": e.profile}) + "\n" for e in entities))
    return docs, pool
