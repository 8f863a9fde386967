"""Files derived from the code, committed so that readers find them, and held to the code by the
tests so that they cannot drift:

    deploy/k8s/autoscaling.yaml  consumer groups and topics of the stages (deploy_manifests.py)
    deploy/k8s/workers.yaml      one Deployment per stage (deploy_workers.py)
    deploy/compose.yaml          its workers' block, one service per stage (deploy_workers.py)
    docs/configuration.md        every setting, from its description in config_*.py (config_docs.py)

    python -m entropylong_streamer.generated_files          # rewrite them
    python -m entropylong_streamer.generated_files --check  # exit 1 if one is out of date
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from . import config_docs, deploy_manifests, deploy_workers

FILES: dict[Path, Callable[[], str]] = {
    deploy_manifests.AUTOSCALING: deploy_manifests.render,
    deploy_workers.WORKERS: deploy_workers.render_workers,
    deploy_workers.COMPOSE: deploy_workers.render_compose,
    config_docs.PAGE: config_docs.render,
}


def stale() -> list[Path]:
    return [path for path, render in FILES.items() if not path.exists() or path.read_text() != render()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        for path in stale():
            print(f"{path} is out of date: run python -m entropylong_streamer.generated_files")
        return 1 if stale() else 0
    for path, render in FILES.items():
        path.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
