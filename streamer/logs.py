"""One log line format for every worker process: the Faust stages' and the packer's and trainer's."""

from __future__ import annotations

import logging

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# Faust's worker (mode) configures logging itself: this dictConfig gives it the same format.
FAUST_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"elong": {"format": FORMAT}},
    "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "elong", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["default"]},
    # kafka-python logs every connection at INFO, and the lag gauge, status and the measurement
    # caches open one every few seconds: a worker's log was mostly that
    "loggers": {"kafka": {"level": "WARNING"}},
}


def setup() -> None:
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    logging.getLogger("kafka").setLevel(logging.WARNING)
