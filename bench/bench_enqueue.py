"""Producer throughput: `soundtag enqueue` of 100,000 local files into PostgreSQL + Redis.

    .venv/bin/python -m bench.bench_enqueue [--files 100000] [--repeat 3]

Needs the local PostgreSQL and Redis (bash .ci/services). Each repetition enqueues into a new,
empty database (the first enqueue of an archive), then once more into the same one (an archive
enqueued again while all of it is still queued). Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from bench.report import loadavg, machine, write_section

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SOUNDTAG = [sys.executable, "-m", "soundtag.cli"]


def _make_files(root: Path, n: int) -> None:
    # Listing and recording are measured, not decoding: the files only need to exist.
    for i in range(n):
        folder = root / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"clip{i:06d}.wav").write_bytes(b"RIFF")


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def _repetition(admin, folder: str) -> tuple[float, float, int]:
    """Seconds of a first and of a repeated enqueue, and the number of tasks sent."""
    name = f"soundtag_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    env = {**os.environ, "SOUNDTAG_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
           "SOUNDTAG_BROKER_URL": "redis://127.0.0.1:6379/0", "SOUNDTAG_QUEUE": f"bench-{name}"}
    try:
        subprocess.run(SOUNDTAG + ["db", "upgrade"], env=env, check=True, capture_output=True)
        first = _timed(SOUNDTAG + ["enqueue", folder, "--labels", "rain,wind"], env)
        tasks = redis.Redis().llen(env["SOUNDTAG_QUEUE"])
        again = _timed(SOUNDTAG + ["enqueue", folder, "--labels", "rain,wind"], env)
    finally:
        redis.Redis().delete(env["SOUNDTAG_QUEUE"])
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return first, again, tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.files
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    load_before = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        _make_files(Path(tmp), n)
        startup = min(_timed(SOUNDTAG + ["--help"], os.environ) for _ in range(3))
        imports = subprocess.run([sys.executable, "-c", "import sys, soundtag.cli, producer.enqueue, soundtag.sources.walk;"
                                  "print(any(m in sys.modules for m in ('torch', 'transformers')))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        runs = [_repetition(admin, tmp) for _ in range(args.repeat)]
    firsts, agains, tasks = [r[0] for r in runs], [r[1] for r in runs], runs[0][2]

    def rate(seconds: float) -> str:
        return f"{n / seconds:,.0f}"

    rows = [
        ("`soundtag --help` (process start to exit, best of 3)", f"{startup:.2f} s", "—", "—",
         f"torch or transformers imported: {imports}"),
        (f"`soundtag enqueue` of {n:,} new files", f"{min(firsts):.2f} s / {statistics.median(firsts):.2f} s",
         f"**{rate(min(firsts))}**", rate(statistics.median(firsts)), f"{tasks:,} tasks sent"),
        ("the same again (all still queued: re-recorded, re-sent)",
         f"{min(agains):.2f} s / {statistics.median(agains):.2f} s", rate(min(agains)),
         rate(statistics.median(agains)), ""),
    ]
    table = ("| what | time (best / median) | files/s (best) | files/s (median) | |\n|---|---|---|---|---|\n"
             + "\n".join(f"| {' | '.join(r)} |" for r in rows))
    log = "; ".join(f"{a:.2f} s + {b:.2f} s" for a, b in zip(firsts, agains))
    body = (f"Command: `.venv/bin/python -m bench.bench_enqueue --files {n} --repeat {args.repeat}`. PostgreSQL 15 "
            f"and Redis 7 run on the same 2 cores; each `soundtag` process is timed whole, interpreter start "
            f"included; every repetition starts from an empty database.\n\nRun {date.today()} on {machine()}, "
            f"load average {load_before} before and {loadavg()} after.\n\n{table}\n\n"
            f"Each repetition, first enqueue + repeated enqueue: {log}.\n")
    print(table)
    write_section("bench_enqueue", "## Producer: enqueue throughput (issue 3)\n\n" + body)


if __name__ == "__main__":
    main()
