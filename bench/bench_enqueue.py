"""Producer throughput: `soundtag enqueue` of 100,000 local files into PostgreSQL + Redis.

    .venv/bin/python -m bench.bench_enqueue [--files 100000]

Needs the local PostgreSQL and Redis (bash .ci/services). Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from datetime import date
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from bench.report import loadavg, machine, write_section

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _make_files(root: Path, n: int) -> None:
    # Listing and recording are measured, not decoding: the files only need to exist.
    for i in range(n):
        folder = root / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"clip{i:06d}.wav").write_bytes(b"RIFF")


def _timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()

    name = f"soundtag_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    queue = f"bench-{name}"
    env = {**os.environ, "SOUNDTAG_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
           "SOUNDTAG_BROKER_URL": "redis://127.0.0.1:6379/0", "SOUNDTAG_QUEUE": queue}
    soundtag = [sys.executable, "-m", "soundtag.cli"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _make_files(Path(tmp), args.files)
            subprocess.run(soundtag + ["db", "upgrade"], env=env, check=True, capture_output=True)
            startup, _ = _timed(soundtag + ["--help"], env)
            imports = subprocess.run([sys.executable, "-c", "import sys, soundtag.cli, producer.enqueue, producer.sources;"
                                      "print(any(m in sys.modules for m in ('torch', 'transformers')))"],
                                     env=env, capture_output=True, text=True, check=True).stdout.strip()
            first, out = _timed(soundtag + ["enqueue", tmp, "--labels", "rain,wind"], env)
            tasks = redis.Redis().llen(queue)
            second, _ = _timed(soundtag + ["enqueue", tmp, "--labels", "rain,wind"], env)
        redis.Redis().delete(queue)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    rows = [
        ("`soundtag --help` (process start to exit)", f"{startup:.2f} s", f"torch/transformers imported: {imports}"),
        (f"`soundtag enqueue` of {args.files:,} new files", f"{first:.2f} s", f"**{args.files / first:,.0f} files/s**, {tasks:,} tasks sent"),
        ("the same again (all queued already: recorded, re-sent)", f"{second:.2f} s", f"{args.files / second:,.0f} files/s"),
    ]
    table = "| what | time | result |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    body = (f"Command: `.venv/bin/python -m bench.bench_enqueue --files {args.files}` (PostgreSQL 15 and Redis 7 on "
            f"localhost, whole `soundtag` processes timed, interpreter start included).\n\nRun {date.today()} on {machine()}, load average {loadavg()}.\n\n{table}\n\n"
            f"Output of the first enqueue: `{out.strip().splitlines()[0]}`\n")
    print(table)
    write_section("bench_enqueue", "## Producer: enqueue throughput (issue 3)\n\n" + body)


if __name__ == "__main__":
    main()
