"""Hypothesis strategies the quality tests share."""

from hypothesis import strategies as st

from entropylong_streamer.topics import Context, DependenciesRecord, Pair


@st.composite
def records(draw, doc_id="d"):
    """A dependencies record: its contexts' token ids are 1000*(i+1) + j, so each is traceable."""
    doc = draw(st.lists(st.integers(1, 999), min_size=1, max_size=40))
    n_ctx = draw(st.integers(0, 6))
    contexts = [Context(context_id=f"c{i}", context_doc_id=f"o{i}", text="x",
                        token_ids=[1000 * (i + 1) + j for j in range(draw(st.integers(1, 30)))])
                for i in range(n_ctx)]
    pairs = [Pair(context_id=c.context_id, anchor_index=draw(st.integers(0, len(doc) - 1)), char_start=0, char_end=1,
                  h=2.0, h_ctx=1.0, nll=2.0, nll_ctx=1.0, d_i=draw(st.floats(-3, 1)), accepted=draw(st.booleans()))
             for c in contexts for _ in range(draw(st.integers(1, 3)))]
    return DependenciesRecord(doc_id=doc_id, text="t", token_ids=doc, contexts=contexts, pairs=pairs,
                              config_version="v")
