"""Creating the pool's collections when several processes start at once."""

from __future__ import annotations

import time


def create_unless_exists(client, name: str, schema, index_params, *, wait_s: float = 60.0) -> None:
    """Create the collection, indexed and loaded, unless it is already. Workers that start together
    (index, retrieval) each see no collection and each create it. The losers fail, with "already
    exists" or, on milvus-lite, "[Errno 17] File exists" while the winner is still creating it; the
    winner itself can fail after the collection exists (milvus-lite: "no index" while it waits for
    the index it just asked for). So whoever fails tries again until the collection is there with an
    index and loaded, doing what is still missing, and gives up after wait_s."""
    from pymilvus.exceptions import MilvusException

    deadline, pause = time.monotonic() + wait_s, 0.05
    while True:
        try:
            if not client.has_collection(name):
                client.create_collection(name, schema=schema, index_params=index_params)
                return
            if not client.list_indexes(name):
                client.create_index(name, index_params)
            client.load_collection(name)
            return
        except MilvusException:
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)  # back-off between tries against the server, not a test's wait
        pause = min(2 * pause, 1.0)
