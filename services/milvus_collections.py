"""Creating the pool's collections when several processes start at once."""

from __future__ import annotations


def create_unless_exists(client, name: str, schema, index_params) -> bool:
    """Create the collection; False when another process created it first. Workers that start
    together (index, retrieval) each see no collection and each create it: the loser's create
    fails with "already exists", which is what it wanted."""
    from pymilvus.exceptions import MilvusException

    try:
        client.create_collection(name, schema=schema, index_params=index_params)
        return True
    except MilvusException:
        if client.has_collection(name):
            return False
        raise
