"""A batch build's measurement cache is durable per batch: what flush() appended survives a kill, a record
the kill tore is cut off, and save() folds the log into the file."""

from hypothesis import given
from hypothesis import strategies as st

from entropylong_streamer.measurements import MemoryCache

ITEMS = st.dictionaries(st.binary(min_size=1, max_size=24), st.tuples(st.floats(allow_nan=False), st.binary()),
                        max_size=20)


@given(first=ITEMS, second=ITEMS, cut=st.integers(1, 40))
def test_flushed_batches_survive_and_a_torn_last_record_is_cut_off(tmp_path_factory, first, second, cut):
    path = tmp_path_factory.mktemp("cache") / "measurements.msgpack"
    cache = MemoryCache.load(path)
    log = path.with_name(path.name + ".log")
    cache.put(first.items())
    cache.flush()
    before = log.stat().st_size if log.exists() else 0
    cache.put(second.items())
    cache.flush()
    whole = log.read_bytes() if log.exists() else b""
    assert MemoryCache.load(path).data == first | second  # nothing saved, everything logged
    if second:
        log.write_bytes(whole[: max(len(whole) - cut, before)])  # killed while appending the second batch
        torn = MemoryCache.load(path)
        assert first.keys() <= torn.data.keys()
        assert all(first.get(k) == v or second.get(k) == v for k, v in torn.data.items())
        torn.put([(b"after", (1.0,))])
        torn.flush()  # appended after the last whole record: readable
        assert MemoryCache.load(path).data == torn.data
    cache.save(path)
    assert not log.exists() and MemoryCache.load(path).data == first | second


def test_an_unbound_cache_writes_nothing(tmp_path):
    cache = MemoryCache()
    cache.put([(b"k", (1.0,))])
    cache.flush()
    assert cache.path is None and not list(tmp_path.iterdir())
