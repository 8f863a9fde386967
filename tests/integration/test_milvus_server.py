"""The pool against a real Milvus server (2.3.5 from PyPI), inside a loopback-only namespace."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("milvus_in_netns.py")
UNSHARE = ["unshare", "--net", "--pid", "--fork", "--kill-child"]


def _namespace_or_skip() -> None:
    pytest.importorskip("milvus", reason="the Milvus server package is not installed (deploy/dev.sh test)")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare/ip not found: cannot make a loopback-only network namespace")
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here (the server would listen on every "
                    f"interface): {probe.stderr.strip()}")


def test_pool_against_a_real_milvus_server():
    _namespace_or_skip()
    run = subprocess.run([*UNSHARE, sys.executable, str(HELPER)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["interfaces"] == ["lo"]  # the server saw loopback and nothing else
    assert found["size"] == 60  # the replayed upsert duplicated nothing
    assert found["hits"] == 10 and "doc3" not in found["doc_ids"] and found["sorted"]
    assert found["other_index_refused"]
    # a 2.3 server has no BM25: lexical and hybrid retrieval are refused in one line that says why
    assert "need Milvus 2.5 or later" in found["lexical_refusal"] and "\n" not in found["lexical_refusal"]
