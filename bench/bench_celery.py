"""End to end through the distributed path: a job sent through Redis to one Celery worker that
writes to PostgreSQL, against `soundtag run` on the same files and model, in one run.

    .venv/bin/python -m bench.bench_celery [--clips 96]

Uses the full-size random CLAP of bench.bench_run (fp32, CPU). Both sides are timed from the
command's start to the last result stored, model load included. Needs the local PostgreSQL and
Redis (bash .ci/services). Writes its section of docs/benchmarks.md.
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

from sqlalchemy import create_engine, text

from bench.bench_run import checkpoint, write_clips
from bench.report import loadavg, machine, write_section

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parents[1]


def _database(admin, name: str) -> str:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _soundtag(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soundtag.cli", *args], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=96)
    args = parser.parse_args()
    model = checkpoint()
    labels = "dog barking,rain,siren,speech,music,engine,birds chirping,footsteps,applause,thunder"
    base = {**{k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}, "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error", "SOUNDTAG_MODEL": str(model)}
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        write_clips(clips, args.clips)

        run_env = {**base, "SOUNDTAG_DATABASE_URL": _database(admin, f"bench_run_{tag}")}
        _soundtag("db", "upgrade", env=run_env)
        start = time.perf_counter()
        _soundtag("run", str(clips), "--labels", labels, env=run_env)
        run_s = time.perf_counter() - start

        env = {**base, "SOUNDTAG_DATABASE_URL": _database(admin, f"bench_celery_{tag}"),
               "SOUNDTAG_QUEUE": f"bench-{tag}", "SOUNDTAG_BROKER_URL": "redis://127.0.0.1:6379/0"}
        _soundtag("db", "upgrade", env=env)
        log = open(Path(tmp) / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while "ready." not in (Path(tmp) / "worker.log").read_text():
                time.sleep(0.1)
            start = time.perf_counter()
            job = _soundtag("enqueue", str(clips), "--labels", labels, env=env).stdout.strip().splitlines()[-1]
            enqueued_s = time.perf_counter() - start
            _soundtag("status", job, "--wait", "--interval", "0.2", env=env)
            celery_s = time.perf_counter() - start
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(60)
            log.close()
    with admin.connect() as conn:
        for name in (f"bench_run_{tag}", f"bench_celery_{tag}"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    n = args.clips
    rows = [
        ("`soundtag run` (one process, PostgreSQL)", f"{run_s:.1f} s", f"{n / run_s:.2f}", "1.00"),
        ("`soundtag enqueue` → Redis → 1 `soundtag worker` → PostgreSQL", f"{celery_s:.1f} s", f"{n / celery_s:.2f}",
         f"**{run_s / celery_s:.2f}**"),
    ]
    table = ("| path | wall time | files/s | vs run |\n|---|---|---|---|\n"
             + "\n".join(f"| {' | '.join(r)} |" for r in rows))
    body = (f"Command: `.venv/bin/python -m bench.bench_celery --clips {n}`: {n} five-second clips (44.1 kHz WAV/FLAC), "
            f"10 labels, the full-size random CLAP in fp32 on the CPU, default settings "
            f"(64 files per task, batch 16). Both are timed from the command's start to the last result stored, "
            f"with the model load (weights and label embeddings) included. `soundtag run` also pays its process "
            f"start and `import torch` (about 1.5 s here). The worker process was started beforehand, as workers "
            f"are long-lived; it loads the model on its first task, inside the timing. The enqueue itself took "
            f"{enqueued_s:.2f} s; the rest is the worker's labeling and the poll of `status --wait`."
            f"\n\nRun {date.today()} on {machine()}, load average {loadavg()}.\n\n{table}\n")
    print(table)
    write_section("bench_celery", "## Distributed: Celery end to end vs `soundtag run` (issue 3)\n\n" + body)


if __name__ == "__main__":
    main()
