"""Incremental ingestion: list sources, enqueue only what is new or changed since it was last
seen, never two scans of the same sources at once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from db.files import new_or_changed
from db.taxonomies import save_taxonomy
from producer.enqueue import enqueue
from soundtag.settings import Settings
from soundtag.sources.uris import readable, source_uri
from soundtag.sources.walk import WalkReport, walk_sources
from soundtag.taxonomy import Taxonomy


@dataclass(frozen=True)
class ScanResult:
    sources: list[str]
    listed: int = 0
    new: int = 0
    changed: int = 0
    job_id: str | None = None
    already_running: bool = False
    left_out: str = ""  # what the walk did not read: links out of the root, loops, unreadable folders

    def summary(self) -> str:
        names = ", ".join(map(readable, self.sources))
        if self.already_running:
            return f"scan of {names}: another scan of these sources is running; skipped"
        job = f"enqueued as job {self.job_id}" if self.job_id else "nothing to enqueue"
        left_out = f"; left out: {self.left_out}" if self.left_out else ""
        return f"scan of {names}: {self.listed} listed, {self.new} new, {self.changed} changed; {job}{left_out}"


def _lock(settings: Settings, sources: Sequence[str]):
    import redis

    key = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:16]
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=30)
    # Expires on its own if the scanning process dies; a scan that outlives it extends it.
    return client.lock(f"soundtag:scan-lock:{key}", timeout=settings.scan_lock_s, blocking=False)


def scan(engine: Engine, sources: Sequence[str], taxonomy: Taxonomy, settings: Settings, *,
         pattern: str | None = None, audio_column: str | None = None, truth_column: str | None = None) -> ScanResult:
    """List ``sources`` and enqueue the files the model and taxonomy have not seen as they are now."""
    names = [source_uri(s) for s in sources]
    lock = _lock(settings, names)
    if not lock.acquire():
        return ScanResult(names, already_running=True)
    try:
        walked = WalkReport()
        refs = list(walk_sources(sources, pattern, audio_column=audio_column, truth_column=truth_column,
                                 report=walked))
        taxonomy_id = save_taxonomy(engine, taxonomy)
        fresh, new, changed = new_or_changed(engine, refs, settings.model_ref, taxonomy_id)
        lock.extend(settings.scan_lock_s, replace_ttl=True)
        job_id = None
        if fresh:
            job_id = enqueue(engine, fresh, taxonomy, settings, sources=names, kind="scan").job_id
        return ScanResult(names, len(refs), new, changed, job_id, left_out=str(walked))
    finally:
        from redis.exceptions import LockError

        try:
            lock.release()
        except LockError:
            pass
