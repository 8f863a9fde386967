from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.templates import line_hash, split_lines, template_spans


def test_lines_are_found_by_any_character_and_blank_lines_are_none():
    text = "Home | Docs | Search\n\n  The otter   eats fish.\r\nCreated using Sphinx"
    lines = split_lines(text)
    assert lines.hash_at(0) == lines.hash_at(19) == line_hash("Home | Docs | Search")
    assert lines.hash_at(20) is None and lines.hash_at(21) is None  # the newline, the blank line
    assert lines.hash_at(text.index("eats")) == line_hash("The otter eats fish.")  # whitespace normalised
    assert lines.hash_at(len(text) - 1) == line_hash("Created using Sphinx")
    assert lines.hash_at(len(text) + 5) is None


def test_a_line_is_a_template_once_min_docs_documents_hold_it():
    lines = split_lines("Report a Bug | Show Source\nThe tree is 40 m tall.")
    nav, fact = lines.hashes
    assert template_spans(lines, {nav: 10, fact: 1}, 10) == {nav}
    assert template_spans(lines, {nav: 9}, 10) == set()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab \t", max_size=6), max_size=8), st.data())
def test_every_character_belongs_to_its_own_line(parts, data):
    text = "\n".join(parts)
    lines = split_lines(text)
    assert len(lines.hashes) == sum(bool(p.strip()) for p in parts)
    if text:
        i = data.draw(st.integers(0, len(text) - 1))
        line_no = text.count("\n", 0, i)
        line = parts[line_no] if text[i] != "\n" else ""
        assert lines.hash_at(i) == (line_hash(line) if line.strip() else None)
