"""Faust workers for the stateless stages: each agent decodes, calls its stage, publishes.

The stage runs in one dedicated thread so a long forward pass never blocks the event loop (and
so the consumer's heartbeats). One consumer group per stage and config version: a new version reads
its input topic from the start, which is what a replay after a threshold change needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from entropylong_streamer import logs, metrics
from entropylong_streamer.config import Config
from entropylong_streamer.pipeline import Pipeline
from entropylong_streamer.registry import stage as stage_spec
from entropylong_streamer.topics import DEAD_LETTER, TopicSpec

from . import kafka_clients as kc
from . import worker_metrics
from .adapter import Message, StageRunner
from .broker_compat import install_backoff

log = logging.getLogger(__name__)


def build_app(cfg: Config, stage: str):
    import faust

    spec = stage_spec(stage)
    k = cfg.kafka
    datadir = cfg.paths.faust(stage)
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        spec.group(cfg),
        broker=[f"kafka://{s}" for s in k.bootstrap_servers.split(",")],
        broker_credentials=kc.faust_credentials(cfg),
        store="memory://",
        topic_partitions=k.partitions,
        topic_allow_declare=False,  # topics are created with their partition counts by `up`
        topic_disable_leader=True,
        web_enabled=False,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=cfg.kafka.max_message_bytes,
        consumer_max_fetch_size=cfg.kafka.max_message_bytes,
        broker_session_timeout=cfg.agents.session_timeout_s,
        consumer_group_instance_id=cfg.agents.instance_id,
        broker_heartbeat_interval=min(3.0, cfg.agents.session_timeout_s / 3),
        broker_commit_interval=1.0,
    )

    def topic(s: TopicSpec):
        return app.topic(s.full_name(k.topic_prefix), key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    source, dead = topic(spec.source), topic(DEAD_LETTER)
    sink = topic(spec.sink) if spec.sink else None
    holder: dict[str, StageRunner] = {}
    max_batch = cfg.agents.batch_size(stage)
    # One thread runs the stage, model loading included: torch's OpenMP keeps a spinning thread
    # team per calling thread, and a second team steals cores from the first (measured 450 -> 307
    # tokens/s on 2 cores after forwards from two threads).
    stage_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{stage}-stage")

    @app.agent(source, name=f"{stage}-agent")
    async def agent(stream):
        try:
            await run_agent(stream)
        except Exception:
            # Not a bad record (handle_batch dead-letters those): the stage cannot run (a model or
            # pool that fails to load, a broker refusing sends). Faust would keep the process up
            # with a dead agent; exit instead, so `up`, the demo and a supervisor see it. Nothing
            # is lost: this batch's offsets are not committed and it is read again after a restart.
            log.critical("%s worker stops: its agent failed", stage, exc_info=True)
            logging.shutdown()
            os._exit(1)

    def load() -> StageRunner:
        keep = spec.cache is not None and cfg.agents.measurement_cache
        return StageRunner.build(cfg, spec, Pipeline(cfg), spec.cache(cfg) if keep else None)

    async def run_agent(stream):
        loop = asyncio.get_running_loop()
        if "runner" not in holder:  # load the model once per worker, off the event loop
            holder["runner"] = await loop.run_in_executor(stage_thread, load)
            metrics.READY.labels(stage).set(1)
            log.info("%s worker ready", stage)
        runner = holder["runner"]
        # Batches across documents: up to max_batch records, or what came within batch_wait_s.
        async for events in stream.take_events(max_batch, within=cfg.agents.batch_wait_s):
            msgs = [Message(e.message.topic, e.message.partition, e.message.offset, e.key, e.value)
                    for e in events]
            outs, dlq = await loop.run_in_executor(stage_thread, runner.run, msgs)
            # Wait for the broker's acks before taking the next batch (which acks this one).
            pending = [await sink.send(key=p.key, value=p.value) for p in outs]
            pending += [await dead.send(key=p.key, value=p.value) for p in dlq]
            await asyncio.gather(*pending)
            log.info("%s", runner.last_log)

    return app


def run(cfg: Config, stage: str) -> None:
    import faust

    install_backoff(cfg.kafka.idle_fetch_backoff_ms / 1000)
    worker_metrics.serve(cfg, stage)
    app = build_app(cfg, stage)
    faust.Worker(app, loglevel="INFO", quiet=True, logging_config=dict(logs.FAUST_LOGGING)).execute_from_commandline()
