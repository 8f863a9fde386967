"""Creating the pool's collections when several processes start at once, and reading them again
after their server restarted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
COLLECTION_NOT_LOADED = 101  # Milvus's error code for a read of a released collection


def reloading(client, name: str, read: Callable[[], T]) -> T:
    """read(), loading the collection first where a restarted server released it: milvus-lite loads no
    collection when it starts, and a search then fails with code 101 ("call load() before search")."""
    from pymilvus.exceptions import MilvusException

    try:
        return read()
    except MilvusException as exc:
        if exc.code != COLLECTION_NOT_LOADED:
            raise
    client.load_collection(name)
    return read()


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
