"""The door: exact and near duplicates over a persisted index, language, length and quality rules."""

import random

import pytest

from entropylong_streamer.config import Config
from entropylong_streamer.ingest import Door
from entropylong_streamer.method.near_dup import band_keys, candidate_probability, shingles, signature
from entropylong_streamer.method.text_quality import quality_problem
from entropylong_streamer.services.door_index import DoorIndex
from entropylong_streamer.sources import doc_id_for
from entropylong_streamer.topics import Doc, DroppedDoc

VOCAB = [w for w in ("time year people way day man thing woman life child world school state family student group "
                     "country problem hand part place case week company system program question work government "
                     "number night point home water room mother area money story fact month lot right study book "
                     "eye job word business issue side kind head house service friend father power hour game line "
                     "end member law car city community name president team minute idea kid body information back "
                     "parent face others level office door health person art war history party result change "
                     "morning reason research girl guy moment air teacher force education").split()]


def article(rng: random.Random, words: int = 300) -> str:
    sentences, n = [], 0
    while n < words:
        k = rng.randint(8, 16)
        sentences.append(" ".join(rng.choice(VOCAB) for _ in range(k)).capitalize() + ".")
        n += k
    return " ".join(sentences)


def edited(rng: random.Random, text: str, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        words[rng.randrange(len(words))] = rng.choice(VOCAB)
    return " ".join(words)


def doc(text: str, source: str = "") -> Doc:
    return Doc(doc_id=doc_id_for(text), text=text, source=source)


def door(**overrides) -> Door:
    return Door(Config().copy_with({f"door.{k}": v for k, v in overrides.items()}).door, DoorIndex(":memory:"))


def test_the_same_text_twice_is_an_exact_duplicate():
    d = door()
    text = article(random.Random(0))
    assert d.admit(doc(text, "a.jsonl:1")) == doc(text, "a.jsonl:1")
    again = d.admit(doc(text + "\n", "b.jsonl:7"))  # the doc_id hashes the stripped text
    assert isinstance(again, DroppedDoc) and again.rule == "exact_duplicate" and again.source == "b.jsonl:7"
    assert d.stats["dropped_exact_duplicate"] == 1 and d.stats["forwarded"] == 1


def test_near_duplicates_are_caught_and_distinct_articles_pass():
    """100 originals, each with a copy of 1-3 word edits (true shingle Jaccard >= 0.88): every copy
    is dropped naming its original; no original is dropped."""
    rng = random.Random(1)
    d = door()
    originals = [article(rng) for _ in range(100)]
    for text in originals:
        assert isinstance(d.admit(doc(text)), Doc)
    for text in originals:
        copy = edited(rng, text, rng.randint(1, 3))
        a, b = set(shingles(text, 5)), set(shingles(copy, 5))
        assert len(a & b) / len(a | b) >= 0.88
        out = d.admit(doc(copy))
        assert isinstance(out, DroppedDoc) and out.rule == "near_duplicate", out
        assert out.duplicate_of == doc_id_for(text)


def test_the_lsh_catches_what_it_should_at_the_configured_bands():
    cfg = Config().door
    rows = cfg.minhash_permutations // cfg.lsh_bands
    assert candidate_probability(0.9, cfg.lsh_bands, rows) > 0.999
    assert candidate_probability(0.3, cfg.lsh_bands, rows) < 0.002
    sig = signature("a b c d e f g", cfg.shingle_words, cfg.minhash_permutations)
    assert len(band_keys(sig, cfg.lsh_bands)) == cfg.lsh_bands and shingles("a b", 5) == ["a b"]


def test_the_index_persists_and_an_uncommitted_batch_is_forgotten(tmp_path):
    path = tmp_path / "door.sqlite"
    rng = random.Random(2)
    first, second = article(rng), article(rng)
    d = Door(Config().door, DoorIndex(path))
    assert isinstance(d.admit(doc(first)), Doc)
    d.index.commit()
    assert isinstance(d.admit(doc(second)), Doc)
    d.index.rollback()  # the batch never reached the broker: as if never seen
    d.index.close()
    again = Door(Config().door, DoorIndex(path))
    assert again.admit(doc(edited(rng, first, 2))).rule == "near_duplicate"
    assert isinstance(again.admit(doc(second)), Doc)


@pytest.mark.parametrize("text,rule", [
    ("too few words here", "too_short"),
    ("supercalifragilisticexpialidociousness " * 30, "mean_word_length"),
    ("# heading # more # tags # everywhere " * 10, "symbol_ratio"),
    ("12 345 6789 0.5 77 1e3 42 " * 10, "alpha_word_ratio"),
    ("\n".join(["Buy now and save big today."] * 8 + ["A single other line of text here."]), "duplicate_lines"),
])
def test_each_quality_rule_names_itself(text, rule):
    c = Config().door
    got = quality_problem(text, c.min_words, c.max_words, c.min_mean_word_length, c.max_mean_word_length,
                          c.max_symbol_ratio, c.min_alpha_word_ratio, c.max_duplicate_line_ratio)
    assert got is not None and got[0] == rule
    assert door().admit(doc(text)).rule == rule


def test_prose_passes_every_quality_rule():
    c = Config().door
    for seed in range(20):
        assert quality_problem(article(random.Random(seed)), c.min_words, c.max_words, c.min_mean_word_length,
                               c.max_mean_word_length, c.max_symbol_ratio, c.min_alpha_word_ratio,
                               c.max_duplicate_line_ratio) is None


def test_language_is_identified_offline():
    d = door(languages=["en"])
    english = ("The committee met on Tuesday to discuss the budget for the coming year, and most members agreed "
               "that the library should stay open longer in the evenings.")
    french = ("Le comité s'est réuni mardi pour discuter du budget de l'année prochaine, et la plupart des membres "
              "ont convenu que la bibliothèque devrait rester ouverte plus tard le soir.")
    assert isinstance(d.admit(doc(english)), Doc)
    out = d.admit(doc(french))
    assert out.rule == "language" and out.detail.startswith("fr")
