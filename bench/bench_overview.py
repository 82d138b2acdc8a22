"""The overview page's numbers (review/overview.py: the detections views read for one job) on
PostgreSQL, over a job of ``--windows`` stored windows: how long until /overview has what it draws.

    .venv/bin/python -m bench.bench_overview                     # 1M windows; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_overview --windows 100000    # prints only

The windows are stored as a worker stores them (db.results.save_results): 10 s windows of
1,000-window recordings (2.8 h each), spread over 4 sites and 30 days, 5 labels with a cosine
threshold, random cosines. Each step is timed twice: its first request after the results were
saved, which scans the windows and keeps what it found (db/summaries.py), and a later one, which
reads what was kept; the database's caches hold the tables, as they do on a server in use.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import create_engine, text

from bench.report import loadavg, write_section
from db.files import add_files
from db.jobs import create_job
from db.results import save_results
from db.schema import engine_for, ensure_schema
from model.results import FileResult, WindowResult
from review.overview import histogram, overview
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_canonical

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LABELS = ["rain", "bird song", "wind", "insects", "speech"]
PER_FILE = 1000


def fill(engine, windows: int) -> str:
    taxonomy = taxonomy_from_canonical({"name": "bench", "labels": LABELS, "threshold": 0.3})
    job = create_job(engine, taxonomy, Settings(model="m"), kind="run", sources=["/bench"])
    files = windows // PER_FILE
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(0)
    add_files(engine, job, [FileRef(f"file:///bench/site{n % 4}/f{n}.wav", fingerprint="1") for n in range(files)])
    for first in range(0, files, 50):
        results = []
        for n in range(first, min(files, first + 50)):
            cosines = rng.normal(0.15, 0.1, (PER_FILE, len(LABELS))).astype(np.float32)
            segments = [WindowResult(10.0 * w, 10.0 * (w + 1), cosines[w], cosines[w]) for w in range(PER_FILE)]
            results.append(FileResult(f"file:///bench/site{n % 4}/f{n}.wav", duration_s=10.0 * PER_FILE,
                                      scores=cosines.mean(0), similarity=cosines.mean(0), segments=segments,
                                      recorded_at=start + timedelta(hours=(n * 7) % (30 * 24)), site=f"site{n % 4}"))
        save_results(engine, job, results, LABELS, logit_scale=10.0)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return job


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=1_000_000)
    args = parser.parse_args()
    name = f"bench_overview_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = engine_for(f"postgresql://postgres@127.0.0.1:5432/{name}")
        ensure_schema(engine)
        started = time.perf_counter()
        job = fill(engine, args.windows)
        filled = time.perf_counter() - started
        with engine.begin() as conn:  # the tables read once, as on a server in use
            conn.execute(text("SELECT COUNT(*) FROM segment")).scalar()
        numbers_first, numbers = timed(lambda: overview(engine, job)), timed(lambda: overview(engine, job))
        histogram_first = timed(lambda: histogram(engine, job, "rain"))
        one_histogram = timed(lambda: histogram(engine, job, "rain"))
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    section = f"""## The overview page on PostgreSQL (issue 29)

Command: `.venv/bin/python -m bench.bench_overview --windows {args.windows}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {loadavg()}).
A job of {args.windows:,} windows ({args.windows // PER_FILE:,} recordings of {PER_FILE:,} 10 s windows, 4 sites, 30 days, {len(LABELS)} labels with a cosine threshold), stored in {filled:.0f} s. The first request after results are saved scans the windows and keeps what it found (db/summaries.py, table `job_summary`); later ones read it while the job's labelings, its files' times and sites and the thresholds stay as they were:

| step | first request (scan, kept) s | later requests s | target |
|---|---|---|---|
| `/api/overview` (totals, per day, per hour of day, diel, sites; db/detections.py) | {numbers_first:.2f} | {numbers:.2f} | ≤ 1 s for the page |
| `/api/overview/histogram` (one label's scores over every window) | {histogram_first:.2f} | {one_histogram:.2f} | |
"""
    print(section)
    if args.windows >= 1_000_000:
        write_section("bench_overview", section)


if __name__ == "__main__":
    main()
