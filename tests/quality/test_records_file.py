"""dependencies.msgpack, the batch build's records for the report: round trip, and bad bytes refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import records

from entropylong_streamer.quality.report import read_records, write_records
from entropylong_streamer.topics import RecordError


@given(st.lists(records(), max_size=5))
@settings(max_examples=40, deadline=None)
def test_round_trip(tmp_path_factory, recs):
    path = tmp_path_factory.mktemp("r") / "dependencies.msgpack"
    assert write_records(path, recs) == len(recs)
    assert list(read_records(path)) == recs


@pytest.mark.parametrize("tail", [b"\xc1", b"\x93\x01\x02\x03", b"\x81\xa1x\x01"])
def test_bad_bytes_name_the_file_and_the_record(tmp_path, tail):
    path = tmp_path / "dependencies.msgpack"
    write_records(path, [])
    path.write_bytes(path.read_bytes() + tail)
    with pytest.raises(RecordError, match=r"dependencies.msgpack: record 0"):
        list(read_records(path))
