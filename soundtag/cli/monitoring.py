"""Monitoring: ``exporter``, the fleet's Prometheus metrics (queues, jobs, ETAs). Each worker
serves its own with SOUNDTAG_METRICS_PORT (``soundtag worker``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console
from soundtag.settings import load_settings


def exporter(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve /metrics on.")] = 9808,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    queue: Annotated[Optional[list[str]], typer.Option(
        "--queue", help="A queue to measure besides SOUNDTAG_QUEUE and SOUNDTAG_SCAN_QUEUE (repeatable).")] = None,
    database: Database = None,
) -> None:
    """Serve the fleet's Prometheus metrics, which belong to no single worker: each queue's
    length in Redis, jobs by state, each active job's files by status and its ETA. One process
    for the whole fleet; reads are kept 5 s, so scrapes do not load Redis or the database."""
    from worker.exporter import serve

    settings = load_settings(database_url=database)
    queues = list(dict.fromkeys([settings.queue, settings.scan_queue, *(queue or [])]))
    thread = serve(settings, port, queues, host)
    console.print(f"fleet metrics on http://{host}:{port}/metrics (queues {', '.join(queues)})")
    thread.join()
