"""Creating the pool's collections when several processes start at once."""

from __future__ import annotations

import time


def create_unless_exists(client, name: str, schema, index_params, *, wait_s: float = 60.0) -> bool:
    """Create the collection; False when another process had created it (Milvus may also accept an
    identical second create: then both report True). Workers that start together
    (index, retrieval) each see no collection and each create it. The losers fail, with "already
    exists" or, on milvus-lite, "[Errno 17] File exists" while the winner is still creating it
    (has_collection is then still False): wait for the winner's collection, trying again in
    case the winner failed, and give up after wait_s."""
    from pymilvus.exceptions import MilvusException

    deadline, pause = time.monotonic() + wait_s, 0.05
    while True:
        try:
            client.create_collection(name, schema=schema, index_params=index_params)
            return True
        except MilvusException:
            if client.has_collection(name):
                return False
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)  # back-off between tries against the server, not a test's wait
        pause = min(2 * pause, 1.0)
