"""Multi-hop samples (pack.depth): the verified contexts of a sample's contexts, placed before them."""

from hypothesis import given, settings
from hypothesis import strategies as st

from entropylong_streamer.method.hops import Verified, locate
from entropylong_streamer.method.samples import Piece, build_sample

SEP = 0


def doc_tokens(j: int, n: int) -> tuple[int, ...]:
    return tuple(1000 * (j + 1) + t for t in range(n))  # every token names its document and place


def window(j: int, n: int, start: int, end: int, score: float, anchors: tuple[int, ...]) -> Piece:
    return Piece(f"d{j}", doc_tokens(j, n)[start:end], score, anchors)


def test_a_context_of_a_context_stands_before_it_when_it_resolves_an_anchor_inside_its_window():
    # D's context is tokens 5..15 of x; x's own contexts: y at x's token 7 (inside), z at 30 (outside)
    x = window(1, 40, 5, 15, 0.9, (2,))
    known = {"d1": Verified("d1", doc_tokens(1, 40), (window(2, 20, 0, 6, 0.5, (7,)), window(3, 20, 0, 6, 0.8, (30,))))}
    flat = build_sample("d0", doc_tokens(0, 4), [x], (SEP,), 0, 100)
    deep = build_sample("d0", doc_tokens(0, 4), [x], (SEP,), 0, 100, known.get, depth=2)
    assert build_sample("d0", doc_tokens(0, 4), [x], (SEP,), 0, 100, known.get, depth=1) == flat
    assert deep.context_ids == ("d2", "d1") and deep.context_depths == (2, 1) and deep.direct == 1
    edge = next(d for d in deep.dependencies if d.depth == 2)
    assert (edge.context_id, edge.target_id, edge.anchor_index) == ("d2", "d1", 7)
    assert deep.token_ids[edge.anchor] == doc_tokens(1, 40)[7]  # the anchor is x's token 7, in the sample
    assert deep.token_ids[edge.context_start:edge.context_end] == doc_tokens(2, 20)[:6]
    assert len(deep) == len(flat) + 7


def test_no_document_twice_and_the_documents_own_contexts_come_first():
    # y is D's own context and x's: it stays at depth 1; the room is spent on depth 1 before depth 2
    x, y = window(1, 40, 0, 10, 0.9, (1,)), window(2, 20, 0, 6, 0.5, (2,))
    z = window(3, 20, 0, 12, 0.99, (3,))
    known = {"d1": Verified("d1", doc_tokens(1, 40), (window(2, 20, 0, 6, 0.7, (4,)), z))}
    s = build_sample("d0", doc_tokens(0, 4), [x, y], (SEP,), 0, 5 + 11 + 7 + 13, known.get, depth=3)
    assert sorted(s.context_ids) == ["d1", "d2", "d3"] and s.context_depths.count(1) == 2
    tight = build_sample("d0", doc_tokens(0, 4), [x, y], (SEP,), 0, 5 + 11 + 7 + 12, known.get, depth=3)
    assert sorted(tight.context_ids) == ["d1", "d2"]


def test_a_window_is_found_only_where_its_tokens_lie_on_token_boundaries():
    assert locate((3, 4), (1, 2, 3, 4, 5)) == 2
    assert locate((3, 5), (1, 2, 3, 4, 5)) is None
    assert locate((256,), (1, 0, 0, 0)) is None and locate((256,), (1, 256)) == 1  # bytes, not tokens, align
    assert locate((), (1,)) is None


@st.composite
def graphs(draw):
    """Documents whose tokens name them, each with verified contexts cut from the others."""
    n = draw(st.integers(2, 7))
    lengths = [draw(st.integers(4, 30)) for _ in range(n)]
    verified = {}
    for i in range(n):
        pieces = []
        for j in draw(st.lists(st.sampled_from([j for j in range(n) if j != i]), max_size=4, unique=True)):
            start = draw(st.integers(0, lengths[j] - 1))
            end = draw(st.integers(start + 1, lengths[j]))
            anchors = tuple(draw(st.lists(st.integers(0, lengths[i] - 1), min_size=1, max_size=4)))
            pieces.append(window(j, lengths[j], start, end, draw(st.floats(0, 1)), anchors))
        verified[f"d{i}"] = Verified(f"d{i}", doc_tokens(i, lengths[i]), tuple(pieces))
    known_ids = draw(st.sets(st.sampled_from(sorted(verified))))
    return verified, {d: verified[d] for d in known_ids}


@settings(max_examples=150, deadline=None)
@given(graphs(), st.integers(1, 4), st.integers(0, 200), st.integers(0, 3))
def test_every_piece_is_joined_to_the_document_by_edges_that_lie_inside_the_sample(graph, depth, room, seed):
    verified, known = graph
    d = verified["d0"]
    max_len = len(d.token_ids) + 1 + room
    s = build_sample("d0", d.token_ids, list(d.contexts), (SEP,), seed, max_len, known.get, depth)
    flat = build_sample("d0", d.token_ids, list(d.contexts), (SEP,), seed, max_len)
    assert len(s) <= max_len and s.token_ids[-len(d.token_ids):] == d.token_ids
    # depth 1 is the sample without hops; deeper ones keep it and add pieces
    assert build_sample("d0", d.token_ids, list(d.contexts), (SEP,), seed, max_len, known.get, 1) == flat
    assert {c for c, k in zip(s.context_ids, s.context_depths, strict=True) if k == 1} == set(flat.context_ids)
    assert all(k <= depth for k in s.context_depths)
    assert list(s.context_depths) == sorted(s.context_depths, reverse=True)  # the deepest level first
    sources = [c for c, k in zip(s.context_ids, s.context_depths, strict=True) if k > 1]
    assert len(set(sources)) == len(sources) and "d0" not in sources
    spans = {}
    for dep in s.dependencies:
        assert dep.context_end <= dep.anchor  # the context comes before what it resolves
        piece = s.token_ids[dep.context_start:dep.context_end]
        assert piece and piece[0] // 1000 == int(dep.context_id[1:]) + 1
        # the anchor is the very token it was verified at, in the document it was verified for
        target = dep.target_id or "d0"
        assert s.token_ids[dep.anchor] == verified[target].token_ids[dep.anchor_index]
        spans.setdefault(dep.context_id, set()).add((dep.target_id, dep.depth))
    # every deeper piece resolves an anchor of a piece one level up, which the sample holds
    depth_of = dict(zip(s.context_ids, s.context_depths, strict=True))
    for c, k in depth_of.items():
        assert spans[c], c
        for target, edge_depth in spans[c]:
            assert edge_depth == k and (k == 1) == (target == "") and (k == 1 or depth_of[target] == k - 1)
