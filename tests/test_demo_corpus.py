"""The demo's corpus: quick-reference sheets whose signatures only their module's reference page states."""

import json
import re

from entropylong_streamer.demo_corpus import write_reference_demo


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_sheet_cites_its_modules_and_only_their_reference_pages_state_the_signatures(tmp_path):
    docs, pool, n, pages = write_reference_demo(tmp_path, sheets=3, per_sheet=4)
    sheets, pool_rows = rows(docs), rows(pool)
    assert (n, pages) == (len(sheets), len(pool_rows)) and n == 3
    cited_modules = []
    for sheet in sheets:
        head, *entries = sheet["text"].split("\n\n")
        modules = re.search(r"make into (.+)\.$", head).group(1).replace(" and ", ", ").split(", ")
        assert len(entries) == len(modules) == 4
        cited_modules += modules
        for module, entry in zip(modules, entries, strict=True):
            signature = entry.splitlines()[0]
            assert signature.startswith(f"{module}.") and "(" in signature
            stating = [p["id"] for p in pool_rows if signature in p["text"]]
            assert stating == [f"{module}#api"], signature  # the one page a sheet's sample must be built from
    assert len(set(cited_modules)) == len(cited_modules)  # a module is cited by one sheet
    assert {p["id"].split("#")[0] for p in pool_rows} == set(cited_modules)
    assert all(len(p["text"]) <= 3000 for p in pool_rows)


def test_the_corpus_is_the_same_every_time(tmp_path):
    a = write_reference_demo(tmp_path / "a", sheets=2)
    b = write_reference_demo(tmp_path / "b", sheets=2)
    assert [p.read_text() for p in a[:2]] == [p.read_text() for p in b[:2]]
