"""Peak memory and speed of `soundtag run` against a file's duration: 96 kHz stereo FLAC of
1 minute to 3 hours, and a decompression bomb (10 minutes of 8-channel 192 kHz silence).

    .venv/bin/python -m bench.bench_memory [--minutes 1 10 60 180] [--no-bomb]

Each file is labeled alone by a fresh `soundtag run` process (SQLite, the tiny random CLAP of
bench.checkpoint, default settings), whose peak RSS is read with getrusage(RUSAGE_CHILDREN) in a
wrapper process of its own, so no other child counts. Files are written one second at a time into
a temporary folder and deleted after their run. Writes its section of docs/benchmarks.md after
every row, so an interrupted run still leaves the rows it measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.report import loadavg, machine, write_section
from model.random_clap import build

ROOT = Path(__file__).resolve().parents[1]
RATE = 96000
_PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_flac(path: Path, seconds: int, rate: int, channels: int, silent: bool = False) -> Path:
    """A 16-bit FLAC of ``seconds``: one second of tones under low noise, repeated (FLAC does not
    see repeats a second apart, so it compresses like a quiet recording: about 1 GB for 3 hours of
    96 kHz stereo), or silence."""
    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    second = np.zeros((rate, channels), np.int16)
    if not silent:
        for k in range(channels):
            second[:, k] = 3000 * np.sin(2 * np.pi * 440 * (k + 1) * t) + rng.normal(0, 4, rate)
    with sf.SoundFile(path, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds):
            f.write(second)
    return path


def measure(path: Path, model: Path, tmp: Path) -> tuple[float, float]:
    """Peak RSS in MB and wall seconds of one `soundtag run` of the folder holding ``path``."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}, "HF_HUB_OFFLINE": "1"}
    database = tmp / f"{path.stem}.db"
    run = [sys.executable, "-m", "soundtag.cli", "run", str(path.parent), "--labels", "dog barking,rain,siren",
           "--model", str(model), "--database", f"sqlite:///{database}"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *run], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - started
    database.unlink()
    return int(proc.stdout.split()[-1]) / 1024, wall


def _duration(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds >= 3600 else f"{seconds // 60} min"


def report(rows: dict[str, dict], planned: list[str], command: str, started: str, load_before: str) -> str:
    """The section: a row per planned file, in the order given; those not measured yet say so."""
    base = rows[planned[0]]["rss"] if planned[0] in rows else 0.0
    lines = [f"| file | FLAC size | peak RSS | above the {planned[0].split(',')[0]} file | wall s (process) | files/s "
             "| audio s per wall s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in planned:
        r = rows.get(name)
        if r is None:
            lines.append(f"| {name} | — | not run | | | | |")
            continue
        lines.append(f"| {name} | {r['mb']:,.1f} MB | {r['rss']:,.0f} MB | {r['rss'] - base:+,.0f} MB | "
                     f"{r['wall']:.1f} | {1 / r['wall']:.3f} | {r['seconds'] / r['wall']:.0f} |")
    return (f"Command: `{command}`  \nStarted: {started}  \nMachine: {machine()}  \n"
            f"Load average (1, 5, 15 min) at the start: {load_before}; at the end: {loadavg()}.\n\n"
            "One file per `soundtag run` process (SQLite, the tiny random CLAP, default settings: batches of 16 "
            "windows, 2 decode threads), its peak RSS from getrusage(RUSAGE_CHILDREN) in a wrapper process. The "
            "wall time is the whole process: interpreter, `import torch`, model load, then "
            "reading, sha256, decoding, resampling 96 → 48 kHz, features and the tiny audio tower; files/s is "
            "1 / wall. Files are tones under low noise (`bench/bench_memory.py`), written for the run and deleted "
            "after.\n\n" + "\n".join(lines) + "\n\n"
            "The step from 1 min to 10 min is the batch, not the file: the 1 min file's 6 windows make one batch "
            "of 6, longer files batches of 16, and the audio tower's activations grow with the batch (with "
            "`--batch-size 4`, which both fill, tests/test_streaming.py measures 10 min within a few tens of MB of "
            "1 min). From 10 min on, the peak does not follow the length. Before streaming, a file was decoded "
            "whole at its own rate as float32: 10 minutes of 96 kHz stereo peaked about 730 MB above 1 minute "
            "(measured once, by hand, with `--batch-size 4`), and issue 8 reports 4.5 GB for the bomb. Other people's "
            "jobs shared the two cores throughout (see the load average), so the wall times are upper bounds.\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 10, 60, 180])
    parser.add_argument("--no-bomb", action="store_true")
    args = parser.parse_args()
    command = ".venv/bin/python -m bench.bench_memory --minutes " + " ".join(map(str, args.minutes)) + \
        (" --no-bomb" if args.no_bomb else "")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    files = [(f"{_duration(m * 60)}, 96 kHz stereo", m * 60, RATE, 2, False) for m in args.minutes]
    if not args.no_bomb:
        files.append(("bomb: 10 min of silence, 8 channels, 192 kHz", 600, 192000, 8, True))
    planned = [f[0] for f in files]
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="soundtag-bench-memory-") as tmp:
        tmp = Path(tmp)
        model = build(tmp / "tiny-clap", "tiny")
        # Cheapest first (by samples to decode), so an interrupted run has the most rows.
        for name, seconds, rate, channels, silent in sorted(files, key=lambda f: f[1] * f[2] * f[3]):
            folder = tmp / "audio"
            folder.mkdir()
            path = write_flac(folder / "file.flac", seconds, rate, channels, silent)
            size_mb = path.stat().st_size / 1e6
            rss, wall = measure(path, model, tmp)
            path.unlink()
            folder.rmdir()
            rows[name] = {"seconds": seconds, "mb": size_mb, "rss": rss, "wall": wall}
            print(f"{name}: {size_mb:,.0f} MB FLAC, peak RSS {rss:,.0f} MB, {wall:.1f} s", flush=True)
            write_section("bench_memory", "## Memory against duration: streaming decode (issue 8)\n\n"
                          + report(rows, planned, command, started, load_before))


if __name__ == "__main__":
    main()
