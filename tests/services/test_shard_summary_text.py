"""How summaries print a spread: the unit goes with the figures, and an empty spread is "none" alone
(it printed "dependency distance ... none tokens")."""

from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.services.shards import spread, spread_text


def test_an_empty_spread_is_none_without_a_unit():
    assert spread_text(spread([]), "tokens") == "none"


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=50))
def test_a_spread_prints_its_median_p90_and_max_then_the_unit(values):
    text = spread_text(spread(values), "tokens")
    assert text.startswith("median ") and text.endswith(f"max {max(values):,} tokens")
    assert spread_text(spread(values)).endswith(f"max {max(values):,}")
