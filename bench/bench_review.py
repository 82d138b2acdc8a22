"""The review page on a 3-hour 96 kHz recording, in Chromium: how soon an item is ready, what
each costs in bytes, and whether a long session's memory grows.

    .venv/bin/python -m bench.bench_review               # 2,000 verdicts; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_review --items 200   # a shorter session; prints only

The recording (3 h of 16-bit mono at 96 kHz, 2.07 GB) is written once into bench/.cache/review/.
Its windows' results are stored directly (random cosines, 10 s windows every 5 s: 2,159 items),
as a worker would store them: the page does not care how they were made, and labeling 3 hours
is not what is measured. `soundtag review --unit window` runs as its own process; the page is
driven by Playwright. Times are taken in the page (performance.now()): from the key press to
the item being shown (decoded, its region, axes and zoom set; the spectrogram draws after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.report import loadavg, machine, write_section

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "review"
RATE, HOURS, WINDOW_S, HOP_S = 96_000, 3, 10.0, 5.0
LABELS = ["bird song", "bat call", "rain", "wind", "insects", "frog"]
CHROMIUM = "/usr/bin/chromium"

# Set in the page: each key press starts a clock, stopped when the page is ready and idle again.
TIMER = """
window.__ready = [];
document.addEventListener("keydown", () => { window.__t0 = performance.now(); }, true);
new MutationObserver(() => {
  const b = document.body.dataset;
  if (window.__t0 !== undefined && b.state === "ready" && b.busy === undefined) {
    window.__ready.push(performance.now() - window.__t0);
    window.__t0 = undefined;
  }
}).observe(document.body, {attributes: true});
"""


def recording() -> Path:
    """The 3-hour recording: faint noise with a tone that sweeps up to 40 kHz and back, the same
    minute over and over (computing 3 hours of it takes long on a busy machine; reading does not care)."""
    path = CACHE / "dawn-3h-96k.wav"
    if path.exists():
        return path
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.wav")
    t = np.arange(60 * RATE) / RATE
    phase = 2 * np.pi * np.cumsum(1000 + 39_000 * np.abs(np.sin(np.pi * t / 60))) / RATE
    minute = (0.02 * np.random.default_rng(0).standard_normal(len(t)) + 0.2 * np.sin(phase))
    minute = (minute * 32767).astype(np.int16)
    with sf.SoundFile(partial, "w", samplerate=RATE, channels=1, subtype="PCM_16", format="WAV") as out:
        for _ in range(HOURS * 60):
            out.write(minute)
    partial.rename(path)
    return path


def database(path: Path) -> str:
    """A SQLite database with one job over the recording, its windows' results stored."""
    db = CACHE / "review.db"
    url = f"sqlite:///{db}"
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

    engine = engine_for(url)
    ensure_schema(engine)
    job = create_job(engine, taxonomy_from_csv(",".join(LABELS)), Settings(model="bench"), kind="run",
                           sources=[str(path.parent)])
    duration = HOURS * 3600.0
    rng = np.random.default_rng(1)
    windows = []
    start = 0.0
    while start + WINDOW_S <= duration:
        cosines = rng.uniform(0.0, 0.4, len(LABELS))
        scores = np.exp(10 * (cosines - cosines.max()))
        windows.append(WindowResult(start, start + WINDOW_S, scores / scores.sum(), cosines))
        start += HOP_S
    mean = np.mean([w.similarity for w in windows], axis=0)
    scores = np.exp(10 * (mean - mean.max()))
    uri = path.as_uri()
    add_files(engine, job, [FileRef(uri, fingerprint="bench")])
    save_results(engine, job, [FileResult(uri, duration_s=duration, sample_rate=RATE, channels=1,
                                                scores=scores / scores.sum(), similarity=mean, segments=windows)],
                       LABELS, logit_scale=10.0)
    engine.dispose()
    return url


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "review", "--database", url, "--unit", "window",
                             "--port", str(port), "--reviewer", "bench"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(address + "/static/review.css", timeout=2)
            return proc, address
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the review server did not start")


def memory(cdp) -> tuple[float, int, float]:
    """After a full collection: the page's JS heap (MB), its DOM nodes, and the resident memory
    of this process's Chromium renderers (MB: decoded audio lives outside the JS heap)."""
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
    nodes = cdp.send("Memory.getDOMCounters")["nodes"]
    return heap, nodes, _renderers_rss() / 1e6


def _renderers_rss() -> int:
    parents, found = {}, 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    mine = {os.getpid()}
    for _ in range(6):  # the Playwright driver, Chromium, its zygotes and renderers
        mine |= {pid for pid, parent in parents.items() if parent in mine}
    for pid in mine:
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                status = Path(f"/proc/{pid}/status").read_text()
                found += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
        except (OSError, StopIteration):
            continue
    return found


def session(address: str, items: int) -> dict:
    from playwright.sync_api import sync_playwright

    sizes: list[tuple[str, int]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("response", lambda r: "/audio" in r.url and sizes.append((r.url, int(r.headers["content-length"]))))
        opened = time.perf_counter()
        page.goto(address + "/")
        page.wait_for_selector("body[data-state=ready]:not([data-busy])", timeout=60_000)
        first = time.perf_counter() - opened
        listed = page.request.get(address + "/api/items").json()["items"]
        page.evaluate(TIMER)
        cdp = page.context.new_cdp_session(page)
        heaps = [(0, *memory(cdp))]
        # Cold: the previous item is never prefetched, so `p` cuts its segment on demand.
        cold = []
        for _ in range(20):
            page.keyboard.press("n")
            page.wait_for_selector("body[data-state=ready]:not([data-busy])")
        page.evaluate("window.__ready = []")
        for _ in range(10):
            page.keyboard.press("p")
            page.wait_for_selector("body[data-state=ready]:not([data-busy])")
            page.wait_for_timeout(300)
        cold = page.evaluate("window.__ready")
        page.evaluate("window.__ready = []")
        # Warm: verdicts in a row; the next item was fetched while this one was shown.
        prefetch = []
        for n in range(1, items + 1):
            # A reviewer listens before judging: the next item's segment is fetched and decoded
            # meanwhile. How long that took after the item was shown is recorded beside.
            began = time.perf_counter()
            page.wait_for_selector("body[data-prefetched]", timeout=30_000)
            prefetch.append((time.perf_counter() - began) * 1000)
            page.keyboard.press("a" if n % 3 else "x")
            page.wait_for_selector("body[data-state=ready]:not([data-busy])", timeout=30_000)
            if n % 250 == 0 or n == items:
                heaps.append((n, *memory(cdp)))
        after_verdict = page.evaluate("window.__ready")
        reviewed = page.text_content("#progress")
        browser.close()
    segment = {str(item["id"]): (item["end"] - item["start"]) * RATE * 2 for item in listed}  # 16-bit mono
    ratios = [size / segment[url.split("/api/items/")[1].split("/")[0]] for url, size in sizes
              if "/api/items/" in url]
    return {"first": first, "cold": cold, "after_verdict": after_verdict, "prefetch": prefetch, "heaps": heaps, "ratios": ratios,
            "bytes": [size for _, size in sizes], "whole": sum("/audio/" in url for url, _ in sizes),
            "reviewed": reviewed}


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms, max {values[-1]:.0f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    began = time.perf_counter()
    path = recording()
    made = time.perf_counter() - began
    url = database(path)
    proc, address = serve(url)
    load_before = loadavg()
    try:
        found = session(address, args.items)
    finally:
        proc.terminate()
        proc.wait(30)
    load_after = loadavg()
    heaps = ", ".join(f"{n}: {heap:.1f} MB / {nodes} / {rss:.0f} MB" for n, heap, nodes, rss in found["heaps"])
    lines = [
        "## Review page on a 3-hour 96 kHz recording (issue 18)",
        "",
        f"`python -m bench.bench_review --items {args.items}` on {machine()}; Chromium (Playwright), "
        f"`soundtag review --unit window` on a local 3 h × 96 kHz 16-bit mono WAV "
        f"({path.stat().st_size / 1e9:.2f} GB, {len(found['bytes'])} segment responses), 10 s windows every 5 s "
        f"and 1 s of context each side. Load average {load_before} before, {load_after} after "
        "(2 cores shared with other work: times are upper bounds).",
        "",
        f"- next item ready after a verdict (prefetched while the item was shown): {_ms(found['after_verdict'])}",
        f"- the next item's segment fetched and decoded, after the item was shown (waited for before each "
        f"verdict, as a reviewer listens): {_ms(found['prefetch'])}",
        f"- an item not prefetched (`p`: its segment cut on demand, 2.3 MB): {_ms(found['cold'])}",
        f"- page opened to first item ready: {found['first'] * 1000:.0f} ms",
        f"- bytes sent per segment / the segment's own size: {min(found['ratios']):.3f}–{max(found['ratios']):.3f} "
        f"(the 1 s of context on each side of a 10 s window); whole-recording requests: {found['whole']}",
        "- memory after a forced collection, by verdicts given (JS heap / DOM nodes / Chromium renderers' "
        f"resident memory): {heaps}",
        f"- progress at the end: {found['reviewed']}",
    ]
    if made > 5:
        lines.append(f"- (the recording was written first, in {made:.0f} s)")
    text = "\n".join(lines)
    print(text)
    if args.items >= 2000:
        write_section("bench_review", text)


if __name__ == "__main__":
    main()
