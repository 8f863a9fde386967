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
from collections import Counter
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


# --- Catalogues: one fact per short line, several facts per entity, facts a few tokens apart. ---

@dataclass(frozen=True)
class CatalogueKind:
    kind: str
    title: str  # the source entry's first line
    fields: tuple[tuple[str, str, str], ...]  # (source label, citing label, value kind)


CATALOGUE_KINDS = (
    CatalogueKind("library", "Registry of software libraries, entry {n}.", (
        ("Name", "Library in use", "name3"), ("Author", "Written by", "person"),
        ("Released", "First released", "year"),
        ("Default port", "Listens on port", "port"), ("Current version", "Pinned version", "version"),
        ("Maintainer group", "Questions go to group", "name2"))),
    CatalogueKind("vessel", "Harbour register, vessel {n}.", (
        ("Vessel", "Ship chartered", "name3"), ("Captain", "Under captain", "person"),
        ("Built", "Built in", "year"), ("Crew", "Crew aboard", "count"), ("Home port", "Sailing from", "name3"),
        ("Registry number", "Registry no.", "serial"))),
    CatalogueKind("station", "Weather station list, station {n}.", (
        ("Station", "Station visited", "name3"), ("Operator", "Run by", "person"),
        ("Established", "Open since", "year"),
        ("Elevation", "Height in metres", "count"), ("Nearest town", "Supplies from", "name2"),
        ("Call sign", "Radio call sign", "callsign"))),
    CatalogueKind("mineral", "Museum mineral catalogue, specimen {n}.", (
        ("Specimen", "Specimen on loan", "name3"), ("Collected by", "Found by", "person"),
        ("Collected", "Found in", "year"),
        ("Mass in grams", "Weighs (g)", "count"), ("Locality", "From the mine at", "name2"),
        ("Drawer", "Stored in drawer", "serial"))),
)


def _catalogue_value(rng: random.Random, kind: str) -> str:
    if kind == "person":
        return f"{_name(rng, 2)} {_name(rng, 3)}"
    if kind == "serial":
        return str(rng.randint(10000, 99999))
    if kind == "callsign":
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + str(rng.randint(100, 999))
    if kind == "count":
        return str(rng.randint(100, 4999))
    return _value(rng, kind)


@dataclass(frozen=True)
class CatalogueEntry:
    entry_id: str
    kind: str
    text: str  # the one source document of this entity's facts
    values: tuple[str, ...]  # in the kind's field order


@dataclass(frozen=True)
class Fact:
    char_start: int  # the value's span in the citing document
    char_end: int
    source_id: str  # the entry that states it
    field: str


@dataclass(frozen=True)
class CitingDoc:
    doc_id: str
    text: str
    facts: tuple[Fact, ...]

    def facts_at(self, char_start: int, char_end: int) -> list[Fact]:
        return [f for f in self.facts if f.char_start < char_end and char_start < f.char_end]


@dataclass(frozen=True)
class Catalogue:
    docs: list[CitingDoc]  # what the pipeline processes
    entries: list[CatalogueEntry]  # sources (cited) and lookalikes (same templates, never cited)
    near_copies: list[tuple[str, str]]  # (id, text): a citing document with a banner line added
    noise: list[tuple[str, str]]  # (id, text): unrelated documents

    def pool(self) -> list[tuple[str, str]]:
        return [(e.entry_id, e.text) for e in self.entries] + self.near_copies + self.noise


def catalogue_corpus(docs: int = 16, entities_per_doc: int = 2, lookalikes: int = 3, seed: int = 0,
                     noise: list[str] | None = None, filler: list[str] | None = None,
                     filler_chars: int = 0, doc_filler_chars: int = 0) -> Catalogue:
    """`docs` citing documents, each listing the facts of `entities_per_doc` entities of different
    kinds, each entity's facts stated by exactly one catalogue entry; at least `lookalikes` more
    entries of the same kind (same template, other values) per entry. Values are unique across the
    corpus, so no lookalike states a cited fact. A near copy of every citing document (a mirror's
    banner line added: the same document by the door's near-duplicate rule) is in the pool: the
    leakage guard must keep it out.

    filler_chars > 0 makes every catalogue entry a page of about that many characters: the entry among
    paragraphs of `filler` (real prose), each paragraph used by one document only, so the contexts
    are whole documents of which the facts are a small part; doc_filler_chars does the same to the
    citing documents (their facts among prose)."""
    rng = random.Random(seed)
    paragraphs = iter(_paragraphs(filler or []))

    def pad(chars: int) -> str:
        out = ""
        while len(out) < chars:
            p = next(paragraphs, None)
            if p is None:
                raise ValueError(f"filler text ran out: more than {sum(map(len, filler or []))} characters needed")
            out += p + "\n\n"
        return out
    used: set[str] = set()

    def fresh(kind: str) -> str:
        while True:
            v = _catalogue_value(rng, kind)
            if v not in used:
                used.add(v)
                return v

    cited: dict[str, list[CatalogueEntry]] = {k.kind: [] for k in CATALOGUE_KINDS}
    entries: list[CatalogueEntry] = []
    needed = Counter(k for d in range(docs) for k in _kinds_for(d, entities_per_doc))
    for ck in CATALOGUE_KINDS:
        per_kind = needed[ck.kind]
        for i in range(per_kind + lookalikes):
            values = tuple(fresh(kind) for _, _, kind in ck.fields)
            lines = [ck.title.format(n=rng.randint(1, 999))]
            lines += [f"{label}: {v}" for (label, _, _), v in zip(ck.fields, values, strict=True)]
            text = pad(filler_chars // 2) + "\n".join(lines) + "\n\n" + pad(filler_chars // 2)
            entry = CatalogueEntry(f"entry-{ck.kind}-{i}", ck.kind, text, values)
            entries.append(entry)
            if i < per_kind:
                cited[ck.kind].append(entry)
    kinds = {ck.kind: ck for ck in CATALOGUE_KINDS}
    out: list[CitingDoc] = []
    copies: list[tuple[str, str]] = []
    for d in range(docs):
        chosen = [cited[k].pop() for k in _kinds_for(d, entities_per_doc)]
        text, facts = f"Field log {d + 1}, filed by the survey office.\n", []
        for entry in chosen:
            text += pad(doc_filler_chars // (entities_per_doc + 1))
            for (_, label, _), value in zip(kinds[entry.kind].fields, entry.values, strict=True):
                text += f"{label}: "
                facts.append(Fact(len(text), len(text) + len(value), entry.entry_id, label))
                text += value + "\n"
        text += pad(doc_filler_chars // (entities_per_doc + 1))
        out.append(CitingDoc(f"log-{d}", text, tuple(facts)))
        copies.append((f"copy-of-log-{d}", text + "Mirrored from the survey archive.\n"))
    noise_docs = [(f"noise-{i}", t) for i, t in enumerate(noise or [])]
    return Catalogue(out, entries, copies, noise_docs)


def _paragraphs(texts: list[str]) -> list[str]:
    """Paragraphs of prose: blank-line separated, at least 200 characters, in the texts' order."""
    return [p.strip() for t in texts for p in t.split("\n\n") if len(p.strip()) >= 200]


def _kinds_for(d: int, n: int) -> list[str]:
    names = [ck.kind for ck in CATALOGUE_KINDS]
    return [names[(d + j) % len(names)] for j in range(n)]


def write_catalogue_files(directory: Path, catalogue: Catalogue) -> tuple[Path, Path]:
    """docs.jsonl (the citing documents) and pool.jsonl (entries, near copies, noise)."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    docs, pool = directory / "docs.jsonl", directory / "pool.jsonl"
    docs.write_text("".join(json.dumps({"id": d.doc_id, "text": d.text}) + "\n" for d in catalogue.docs))
    pool.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in catalogue.pool()))
    return docs, pool
