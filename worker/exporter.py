"""The fleet's Prometheus metrics, which belong to no single worker: the queues' lengths in Redis,
jobs by state, each active job's files by status and its ETA. ``soundtag exporter`` serves them.

One scrape reads Redis (LLEN of each queue's lists) and the database (two grouped selects,
db/progress.py); the answer is kept ``cache_s`` seconds, so Prometheus servers scraping often, or
several of them, add no load. A source that cannot be read fails the scrape (``up`` is 0), rather
than a length of 0 that looks like an empty queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

from db.models import now
from db.progress import Progress, active_progress, job_states
from db.schema import engine_for
from soundtag.fleet import queue_keys
from soundtag.settings import Settings
from soundtag.states import FileState


def eta_seconds(progress: Progress) -> float | None:
    """Seconds until the job's queued files are finished at the rate it has finished files since
    a worker first took one; None before the first is finished."""
    finished = progress.files[FileState.DONE] + progress.files[FileState.FAILED]
    if not finished:
        return None
    elapsed = max((now() - progress.since).total_seconds(), 0.0)
    return progress.files[FileState.QUEUED] * elapsed / finished


class FleetCollector:
    """The fleet's metrics, read at most once every ``cache_s`` seconds."""

    def __init__(self, settings: Settings, queues: Sequence[str], cache_s: float = 5.0):
        self.engine = engine_for(settings.database_url)
        self.broker = redis.Redis.from_url(settings.broker_url, socket_timeout=10, socket_connect_timeout=5)
        self.queues, self.cache_s = list(queues), cache_s
        self._lock = threading.Lock()  # one read at a time; concurrent scrapes share its answer
        self._read_at = float("-inf")
        self._families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_s:
                self._families = self._read()
                self._read_at = time.monotonic()
            return list(self._families)

    def _read(self) -> list[GaugeMetricFamily]:
        queue = GaugeMetricFamily("soundtag_queue_length", "Messages (batches of files) waiting in a queue",
                                  labels=["queue"])
        with self.broker.pipeline(transaction=False) as pipe:
            for name in self.queues:
                for key in queue_keys(name):
                    pipe.llen(key)
            lengths = iter(pipe.execute())
        for name in self.queues:
            queue.add_metric([name], sum(next(lengths) for _ in queue_keys(name)))
        jobs = GaugeMetricFamily("soundtag_jobs", "Jobs by state", labels=["state"])
        for state, count in job_states(self.engine).items():
            jobs.add_metric([state], count)
        files = GaugeMetricFamily("soundtag_job_files", "An active job's files by status", labels=["job", "status"])
        eta = GaugeMetricFamily("soundtag_job_eta_seconds", "Seconds until an active job's queued files are "
                                "finished, at the rate it has finished files so far", labels=["job"])
        for progress in active_progress(self.engine):
            for status, count in progress.files.items():
                files.add_metric([progress.job_id, status], count)
            seconds = eta_seconds(progress)
            if seconds is not None:
                eta.add_metric([progress.job_id], seconds)
        return [queue, jobs, files, eta]


def serve(settings: Settings, port: int, queues: Sequence[str], address: str = "0.0.0.0") -> threading.Thread:
    """Serve the fleet's metrics on ``address``:``port`` from a thread, which is returned."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(settings, queues))
    _, thread = start_http_server(port, address, registry=registry)
    return thread
