"""What one segment request costs the review server on a long many-channel recording (issue 27):
its peak resident memory above the idle server, and its latency, for one request and for eight
at once.

    .venv/bin/python -m bench.bench_clip                 # updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_clip --code DIR      # serve another checkout's code; prints only
    .venv/bin/python -m bench.bench_clip --one           # the single requests only (old code: GBs)

The recording (660 s, 8 channels, 96 kHz, 16-bit FLAC: a tone and faint noise per channel) is
written once into bench/.cache/clip/. One job holds it, its windows' results stored directly (10 s
windows every 5 s). `soundtag review` runs as its own process; its peak resident memory is read
from /proc (VmHWM, reset through clear_refs before each measurement) less its resident memory
when idle, after start.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.bench_review import _free_port
from bench.report import loadavg, machine, write_section

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "clip"
RATE, CHANNELS, SECONDS, WINDOW_S, HOP_S = 96_000, 8, 660, 10.0, 5.0
LABELS = ["bird song", "bat call", "rain"]


def recording() -> Path:
    path = CACHE / "array-660s-8ch-96k.flac"
    if path.exists():
        return path
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.flac")
    t = np.arange(10 * RATE) / RATE
    noise = 0.01 * np.random.default_rng(0).standard_normal((len(t), CHANNELS))
    block = (0.2 * np.sin(2 * np.pi * 1000 * np.outer(t, np.arange(1, CHANNELS + 1))) + noise).astype(np.float32)
    with sf.SoundFile(partial, "w", samplerate=RATE, channels=CHANNELS, subtype="PCM_16", format="FLAC") as out:
        for _ in range(SECONDS // 10):
            out.write(block)
    partial.rename(path)
    return path


def database(path: Path) -> str:
    db = CACHE / "clip.db"
    if db.exists():
        db.unlink()
    from db.files import add_files
    from db.jobs import create_job
    from db.results import save_results
    from db.schema import engine_for, ensure_schema
    from model.results import FileResult, WindowResult
    from soundtag.fileref import FileRef
    from soundtag.settings import Settings
    from soundtag.taxonomy import taxonomy_from_csv

    url = f"sqlite:///{db}"
    engine = engine_for(url)
    ensure_schema(engine)
    job = create_job(engine, taxonomy_from_csv(",".join(LABELS)), Settings(model="bench"), kind="run",
                     sources=[str(path.parent)])
    rng = np.random.default_rng(1)
    windows = [WindowResult(start, start + WINDOW_S, np.full(len(LABELS), 1 / len(LABELS)),
                            rng.uniform(0.0, 0.4, len(LABELS)))
               for start in np.arange(0.0, SECONDS - WINDOW_S + HOP_S / 2, HOP_S)]
    mean = np.mean([w.similarity for w in windows], axis=0)
    add_files(engine, job, [FileRef(path.as_uri(), fingerprint="bench")])
    save_results(engine, job, [FileResult(path.as_uri(), duration_s=float(SECONDS), sample_rate=RATE,
                                          channels=CHANNELS, scores=np.full(len(LABELS), 1 / len(LABELS)),
                                          similarity=mean, segments=windows)], LABELS, logit_scale=10.0)
    engine.dispose()
    return url


def serve(url: str, unit: str, code: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "review", "--database", url, "--unit", unit,
                             "--port", str(port), "--reviewer", "bench"], cwd=code,
                            env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(address + "/api/items", timeout=5)
            return proc, address
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the review server did not start")


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(proc: subprocess.Popen, address: str, items: list[int]) -> tuple[float, list[float], int]:
    """Peak resident memory above idle (bytes), each request's latency (s), bytes received."""
    idle = _status(proc.pid, "VmRSS")
    Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS

    def one(n: int) -> tuple[float, int]:
        began = time.perf_counter()
        with urllib.request.urlopen(f"{address}/api/items/{n}/audio", timeout=600) as response:
            size = len(response.read())
        return time.perf_counter() - began, size

    with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
        done = list(pool.map(one, items))
    return _status(proc.pid, "VmHWM") - idle, [seconds for seconds, _ in done], sum(size for _, size in done)


def session(url: str, unit: str, code: Path, one_only: bool) -> list[str]:
    proc, address = serve(url, unit, code)
    try:
        time.sleep(2)  # settled after start
        rows = []
        first = [0] if unit == "file" else [10]
        peak, seconds, size = measure(proc, address, first)
        rows.append((f"one {unit} item", peak, seconds, size))
        if not one_only:
            together = [0] * 8 if unit == "file" else list(range(20, 28))
            peak, seconds, size = measure(proc, address, together)
            what = ("the same file item: served from the cache the first filled" if unit == "file"
                    else "eight different window items")
            rows.append((f"eight at once ({what})", peak, seconds, size))
    finally:
        proc.terminate()
        proc.wait(30)
    return [f"| {what} | {peak / 1e6:.0f} MB | {max(seconds):.2f} s | {size / 1e6:.1f} MB |"
            for what, peak, seconds, size in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose `soundtag review` is measured")
    parser.add_argument("--one", action="store_true", help="single requests only")
    args = parser.parse_args()
    path = recording()
    url = database(path)
    load_before = loadavg()
    rows = session(url, "file", args.code, args.one) + session(url, "window", args.code, args.one)
    lines = [
        "## Review segments of a long many-channel recording (issue 27)",
        "",
        f"`python -m bench.bench_clip` on {machine()}: `soundtag review` as its own process over a 660 s, "
        f"8-channel, 96 kHz, 16-bit FLAC ({path.stat().st_size / 1e6:.0f} MB). A file item asks for the whole "
        "recording (capped by `MAX_SECONDS` and `MAX_SAMPLES`), a window item for 10 s and 1 s of context each "
        f"side. Peak resident memory of the server above its idle resident memory (/proc VmHWM). Load average "
        f"{load_before} before, {loadavg()} after (2 cores shared with other work: times are upper bounds).",
        "",
        "| requests | peak memory above idle | slowest answer | bytes sent |",
        "|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines)
    print(text)
    if args.code == ROOT and not args.one:
        write_section("bench_clip", text)


if __name__ == "__main__":
    main()
