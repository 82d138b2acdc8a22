"""A fleet left running: how long a SIGKILLed worker's files take to be labeled by a live one,
with the default settings, and what the lease heartbeat costs, in one run.

    .venv/bin/python -m bench.bench_recovery [--clips 64] [--full]

Recovery: two `soundtag worker` processes with the defaults (6 h visibility timeout, 64 files a
task, 60 s leases renewed every 15 s) and a job of 32 one-minute clips (one batch); the worker
holding it is killed with SIGKILL once two files are done; timed from the kill to the last file
stored. Heartbeat: the same job
on one worker with the default heartbeat (15 s), a heartbeat every 1 s, and none (a period longer
than the run), files/s from enqueue to the last result. The tiny random CLAP by default (its
per-file work is small, so the heartbeat's share is as large as it gets); --full for the
full-size one. Needs the local PostgreSQL and Redis. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.bench_celery import ADMIN, ROOT, _database, _soundtag
from bench.bench_run import checkpoint, write_clips
from bench.report import loadavg, machine, write_section


class Worker:
    def __init__(self, env: dict, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "worker"], env=env, cwd=ROOT,
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        while "ready." not in log.read_text():
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(60)


def _queued(url: str, job: str) -> tuple[int, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        row = conn.execute(text("select count(*) filter (where status = 'done'), count(*) filter (where status = "
                                f"'queued') from job_file where job_id = '{job}'")).one()
    engine.dispose()
    return row[0], row[1]


def _wait(predicate, interval: float = 0.2):
    while not predicate():
        time.sleep(interval)


def _long_clips(folder: Path, count: int, seconds: float) -> Path:
    """Clips long enough that a batch is still being labeled when its worker is killed."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        sf.write(folder / f"long{i:03d}.wav", (0.3 * np.sin(2 * np.pi * (110 + 37 * i) * t)).astype(np.float32), rate)
    return folder


def _holder(url: str, job: str) -> int | None:
    """The pid of the worker process holding the job's files, once one does."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        worker = conn.execute(text(f"select max(worker) from job_file where job_id = '{job}' and status = 'queued'"))
        name = worker.scalar()
    engine.dispose()
    return int(name.rsplit(":", 1)[1]) if name else None


def recovery(base: dict, clips: Path, labels: str, admin, tmp: Path, tag: str) -> dict:
    env = {**base, "SOUNDTAG_DATABASE_URL": _database(admin, f"bench_recovery_{tag}"),
           "SOUNDTAG_QUEUE": f"bench-{tag}-r"}
    url = env["SOUNDTAG_DATABASE_URL"]
    _soundtag("db", "upgrade", env=env)
    workers = [Worker(env, tmp / "a.log"), Worker(env, tmp / "b.log")]
    try:
        job = _soundtag("enqueue", str(clips), "--labels", labels, env=env).stdout.strip().splitlines()[-1]
        _wait(lambda: _queued(url, job)[0] >= 2 and _holder(url, job))
        pid = _holder(url, job)
        (dead,) = [w for w in workers if w.proc.pid == pid]
        (survivor,) = [w for w in workers if w is not dead]
        done, left = _queued(url, job)
        dead.kill()
        killed = time.perf_counter()
        _wait(lambda: "sent again" in survivor.log.read_text(), 0.1)
        taken_s = time.perf_counter() - killed
        _wait(lambda: _queued(url, job)[1] == 0)
        recovered_s = time.perf_counter() - killed
    finally:
        for worker in workers:
            worker.kill(signal.SIGTERM)
    return {"done_at_kill": done, "left_at_kill": left, "taken_s": taken_s, "recovered_s": recovered_s}


def throughput(base: dict, clips: Path, labels: str, admin, tmp: Path, tag: str, heartbeat_s: str) -> float:
    name = f"bench_hb_{tag}_{heartbeat_s.replace('.', '_')}"
    env = {**base, "SOUNDTAG_DATABASE_URL": _database(admin, name), "SOUNDTAG_QUEUE": f"bench-{tag}-{name}",
           "SOUNDTAG_HEARTBEAT_S": heartbeat_s, "SOUNDTAG_LEASE_S": str(max(60.0, 3 * float(heartbeat_s))),
           # no stored embeddings: the timed job labels from the recordings, not from the warm-up's vectors
           "SOUNDTAG_EMBEDDINGS": "off"}
    _soundtag("db", "upgrade", env=env)
    worker = Worker(env, tmp / f"{name}.log")
    try:
        # a first job loads the model, so the timed one measures labeling alone
        warm = _soundtag("enqueue", str(clips), "--labels", "warm,up", env=env).stdout.strip().splitlines()[-1]
        _soundtag("status", warm, "--wait", "--interval", "0.2", env=env)
        start = time.perf_counter()
        job = _soundtag("enqueue", str(clips), "--labels", labels, env=env).stdout.strip().splitlines()[-1]
        _soundtag("status", job, "--wait", "--interval", "0.2", env=env)
        elapsed = time.perf_counter() - start
    finally:
        worker.kill(signal.SIGTERM)
    return len(list(clips.iterdir())) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--full", action="store_true", help="the full-size random CLAP instead of the tiny one")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each heartbeat setting; the best is kept")
    args = parser.parse_args()
    labels = "dog barking,rain,siren,speech,music,engine,birds chirping,footsteps,applause,thunder"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.full:
            model = checkpoint()
        else:
            from model.random_clap import build

            model = build(tmp / "tiny-clap", "tiny")
        base = {**{k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}, "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_VERBOSITY": "error", "SOUNDTAG_MODEL": str(model),
                "SOUNDTAG_BROKER_URL": "redis://127.0.0.1:6379/0"}
        clips = tmp / "clips"
        write_clips(clips, args.clips)
        rec = recovery(base, _long_clips(tmp / "long", 32, 60.0), labels, admin, tmp, tag)
        runs: dict[str, list[float]] = {"1e6": [], "15": [], "1": []}
        for round_ in range(args.rounds):  # interleaved, so a burst of load on the host hits all three alike
            for period in runs:
                runs[period].append(throughput(base, clips, labels, admin, tmp, f"{tag}{round_}", period))
        rates = {period: max(values) for period, values in runs.items()}
    with admin.connect() as conn:
        for name in conn.execute(text(f"select datname from pg_database where datname like 'bench_%{tag}%'")).scalars():
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    n, model_name = args.clips, "full-size" if args.full else "tiny"
    table = ("| heartbeat | files/s (best) | each run | vs none (best) |\n|---|---|---|---|\n"
             + "\n".join(f"| {label} | {rates[p]:.2f} | {', '.join(f'{r:.2f}' for r in runs[p])} | "
                          f"{rates[p] / rates['1e6']:.3f} |"
                         for p, label in (("1e6", "none (a period longer than the run)"), ("15", "every 15 s (default)"),
                                          ("1", "every 1 s")))
             )
    body = (f"Command: `.venv/bin/python -m bench.bench_recovery --clips {n} --rounds {args.rounds}"
            f"{' --full' if args.full else ''}`: "
            f"{n} five-second clips, 10 labels, the {model_name} random CLAP in fp32 on the CPU.\n\n"
            f"**Recovery after SIGKILL, default settings** (6 h visibility timeout, 64 files a task, 60 s leases "
            f"renewed every 15 s), two workers, 32 one-minute clips in one batch: the worker holding it was killed with "
            f"{rec['done_at_kill']} files done and {rec['left_at_kill']} queued. The idle survivor sent the "
            f"dead worker's files again **{rec['taken_s']:.0f} s** after the kill (the lease's 60 s, plus up to "
            f"one heartbeat, from the last renewal), and the last of them was stored **{rec['recovered_s']:.0f} s** "
            f"after the kill: the rest is the survivor labeling those {rec['left_at_kill']} one-minute clips "
            f"itself, one task each, at this host's pace. Before leases the same files waited for the visibility timeout: 6 h.\n\n"
            f"**The heartbeat's cost**: one worker, the same job after a warm-up job, files/s from `enqueue` to the "
            f"last result, {args.rounds} rounds of the three settings interleaved, best kept. A beat is two indexed statements (renew this process's leases, take back expired "
            f"ones); the differences are within this shared machine's noise.\n\n{table}\n\n"
            f"Run {date.today()} on {machine()}, load average {loadavg()}.\n")
    print(body)
    write_section("bench_recovery", "## A fleet left running: recovery after a kill, the heartbeat's cost (issue 16)\n\n"
                  + body)


if __name__ == "__main__":
    main()
