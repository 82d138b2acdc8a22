"""The review page on a 3-hour 96 kHz recording, in Chromium: how soon an item is ready, what
each costs in bytes, and whether a long session's memory grows.

    .venv/bin/python -m bench.bench_review               # 2,000 verdicts; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_review --items 200   # a shorter session; prints only
    .venv/bin/python -m bench.bench_review --learn 20000 # `--order learn` over 20,000 files (issue 27)

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


def learn_database(files: int, dim: int = 512) -> str:
    """A SQLite database with one job over ``files`` 5-second recordings (never read), each with
    one window's results and a 512-dim embedding around one of 200 centres: what `--order learn`
    spreads over."""
    from db.embeddings import EmbeddingKey
    from db.files import add_files
    from db.jobs import create_job
    from db.results import save_results
    from db.schema import engine_for, ensure_schema
    from model.results import FileResult, WindowResult
    from soundtag.fileref import FileRef
    from soundtag.settings import Settings
    from soundtag.taxonomy import taxonomy_from_csv

    db = CACHE / f"learn-{files}.db"
    url = f"sqlite:///{db}"
    if db.exists():
        return url
    CACHE.mkdir(parents=True, exist_ok=True)
    engine = engine_for(url)
    ensure_schema(engine)
    job = create_job(engine, taxonomy_from_csv(",".join(LABELS)), Settings(model="bench"), kind="run",
                     sources=["/bench"])
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((200, dim))
    for first in range(0, files, 1000):
        uris = [f"file:///bench/learn/{n:06d}.wav" for n in range(first, min(first + 1000, files))]
        add_files(engine, job, [FileRef(uri, fingerprint="bench") for uri in uris])
        results = []
        for uri in uris:
            cosines = rng.uniform(0.0, 0.4, len(LABELS))
            scores = np.exp(10 * (cosines - cosines.max()))
            vector = centres[rng.integers(200)] + 0.5 * rng.standard_normal(dim)
            window = WindowResult(0.0, 5.0, scores / scores.sum(), cosines, vector.astype(np.float32))
            results.append(FileResult(uri, duration_s=5.0, sample_rate=RATE, channels=1,
                                      scores=scores / scores.sum(), similarity=cosines, segments=[window]))
        save_results(engine, job, results, LABELS, EmbeddingKey("bench", 5.0, 5.0, "fp16"), logit_scale=10.0)
    engine.dispose()
    return url


def learn_requests(address: str, reviewed: int) -> dict:
    """The requests the page makes against a `--order learn` server, walked as a reviewer walks
    it: a page opened (a new listing of the order, the page of its first item without a verdict),
    verdicts in the order shown, the next page asked for as the walk nears a page's end, the
    server asked for the next item without a verdict, a reload every 50 verdicts (as a new head
    brings); then a verdict far down the list and an undo (the page asks where its item is)."""
    import json
    from urllib.parse import urlencode

    from review.listing import PAGE

    csrf = urllib.request.urlopen(address + "/", timeout=60).read().decode().split('data-csrf="')[1].split('"')[0]

    def timed(path: str, body: dict | None = None) -> tuple[float, dict]:
        request = urllib.request.Request(address + path, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "X-Soundtag-CSRF": csrf,
                                                  "Origin": address})
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = json.loads(response.read())
        return (time.perf_counter() - began) * 1000, answer

    held: dict[int, dict] = {}

    def page(**params) -> tuple[float, dict]:
        elapsed, answer = timed("/api/items?" + urlencode({"limit": PAGE, **params}))
        for k, item in enumerate(answer["items"]):
            held.setdefault(answer["offset"] + k, item)
        return elapsed, answer

    opened, pages, seeks, posts = [], [], [], []
    for _ in range(5):
        held.clear()
        elapsed, answer = page(after=-1)
        opened.append(elapsed)
    listing, place, sizes = answer["listing"], answer["position"], [len(answer["items"])]
    for n in range(reviewed):
        if n and n % 50 == 0:  # a reload: a new listing of the order as it is now
            held.clear()
            elapsed, answer = page(after=-1)
            opened.append(elapsed)
            listing, place = answer["listing"], answer["position"]
        item = held[place]
        elapsed, given = timed("/api/verdicts", {"item": item["id"], "version": item["version"], "verdict": "accept"})
        posts.append(elapsed)
        item["given"], item["version"] = given["given"], given["version"]
        if n % 10 == 5:  # the server asked for the next without a verdict, past the pages held
            seeks.append(page(listing=listing, after=place)[0])
        ahead = (place + 10) // PAGE * PAGE
        if ahead not in held:
            elapsed, answer = page(listing=listing, offset=ahead)
            pages.append(elapsed)
            sizes.append(len(answer["items"]))
        place = next(p for p in range(place + 1, answer["total"]) if not held[p]["given"])
    far = answer["total"] - 1
    elapsed, answer = page(listing=listing, offset=far // PAGE * PAGE)
    pages.append(elapsed)
    out_of_order = timed("/api/verdicts", {"item": held[far]["id"], "version": held[far]["version"],
                                           "verdict": "reject"})[0]
    after_far = [page(listing=listing, offset=offset)[0] for offset in (0, PAGE, 2 * PAGE)]
    undo, undone = timed("/api/undo", {})
    found = [page(listing=listing, item=undone["item"])[0] for _ in range(3)]
    return {"opened": opened, "pages": pages, "seeks": seeks, "posts": posts, "far": out_of_order,
            "after_far": after_far, "undo": undo, "found": found, "items": answer["total"], "page": max(sizes)}


def learn_in_process(url: str, reviewed: int) -> dict:
    """The same, on review.queue.ReviewQueue directly, after the server's verdicts: the order's own
    cost per request, without the list's JSON (and the wait, in the background, for an order
    brought up to date)."""
    from db.schema import engine_for
    from db.jobs import jobs
    from review.learning import Learner
    from review.order import Order
    from review.queue import ReviewQueue, Session
    from soundtag.states import Verdict

    engine = engine_for(url)
    job = jobs(engine)[0].job_id
    began = time.perf_counter()
    learner = Learner(engine, job, f"review-{job}")
    queue = ReviewQueue(engine, Session(job, Order.LEARN), learner)
    start = time.perf_counter() - began

    def timed(action) -> float:
        began = time.perf_counter()
        action()
        return (time.perf_counter() - began) * 1000

    shown, gives, catch_up = [], [], []
    for _ in range(reviewed):
        shown.append(timed(queue.shown))
        n = next(n for n, item in queue.shown() if queue.given(n) is None)
        gives.append(timed(lambda: queue.give("bench-direct", n, queue.version(n), Verdict.ACCEPT)))
        catch_up.append(timed(learner.wait))
    far = queue.shown()[-1][0]
    far_give = timed(lambda: queue.give("bench-direct", far, queue.version(far), Verdict.REJECT))
    far_shown = timed(queue.shown)
    far_catch_up = timed(learner.wait)
    undo = timed(lambda: queue.undo("bench-direct"))
    undo_shown = timed(queue.shown)
    undo_catch_up = timed(learner.wait)
    learner.wait()
    engine.dispose()
    return {"start": start, "shown": shown, "gives": gives, "catch_up": catch_up, "far": (far_give, far_shown,
            far_catch_up), "undo": (undo, undo_shown, undo_catch_up)}


def serve(url: str, *options: str, wait_s: float = 120) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "soundtag.cli", "review", "--database", url, *options,
                             "--port", str(port), "--reviewer", "bench"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{port}"
    for _ in range(int(wait_s / 0.2)):
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
        listed = page.request.get(address + "/api/items?limit=100000").json()["items"]
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
    parser.add_argument("--learn", type=int, metavar="FILES", help="measure `--order learn` over this many files")
    parser.add_argument("--reviewed", type=int, default=300, help="with --learn: verdicts given in the order shown")
    args = parser.parse_args()
    if args.learn:
        return learn_main(args.learn, args.reviewed)
    began = time.perf_counter()
    path = recording()
    made = time.perf_counter() - began
    url = database(path)
    proc, address = serve(url, "--unit", "window")
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



def learn_main(files: int, reviewed: int) -> None:
    import shutil

    began = time.perf_counter()
    kept = learn_database(files)
    made = time.perf_counter() - began
    run = CACHE / f"learn-{files}-run.db"  # a copy: the kept database stays without verdicts
    shutil.copy(kept.removeprefix("sqlite:///"), run)
    url = f"sqlite:///{run}"
    started = time.perf_counter()
    proc, address = serve(url, "--order", "learn", wait_s=1200)  # 20,000 items read and spread first
    ready = time.perf_counter() - started
    load_before = loadavg()
    try:
        found = learn_requests(address, reviewed)
    finally:
        proc.terminate()
        proc.wait(30)
    direct = learn_in_process(url, reviewed)
    lines = [
        f"## Review `--order learn` over {files:,} files (issue 27)",
        "",
        f"`python -m bench.bench_review --learn {files} --reviewed {reviewed}` on {machine()}; "
        f"`soundtag review --order learn` (no head yet: k-centre over 512-dim embeddings) answering "
        f"urllib in this process the requests the page makes: pages of {found['page']} items of a listing of "
        f"{found['items']:,} (review/listing.py). Load average {load_before} before, {loadavg()} after "
        "(2 cores shared with other work: times are upper bounds).",
        "",
        f"- server start to answering (embeddings read, the first {found['items']:,}-item spread computed): "
        f"{ready:.1f} s",
        f"- the page opened or reloaded (a new listing of the order as it is, the page of its first item "
        f"without a verdict): {_ms(found['opened'])}",
        f"- the next page of the listing, as the walk nears a page's end: {_ms(found['pages'])}",
        f"- the next item without a verdict, asked of the server (the whole listing scanned): {_ms(found['seeks'])}",
        f"- `POST /api/verdicts` on the item shown, {reviewed} in the order shown: {_ms(found['posts'])}",
        f"- a verdict on the last item listed: {found['far']:.0f} ms, then pages of the listing: {_ms(found['after_far'])}",
        f"- undo: {found['undo']:.0f} ms, then the page of the undone item, found in the listing: {_ms(found['found'])}",
        "- (the picks a verdict moves are chosen again in a thread; a new listing reads the order last brought "
        "up to date, and every later page of it is cut from that order)",
        "",
        f"The order alone, on `review.queue.ReviewQueue` in this process (queue and learner made in "
        f"{direct['start']:.1f} s):",
        "",
        f"- `ReviewQueue.shown()` (what a new listing takes) while {reviewed} verdicts arrive: {_ms(direct['shown'])}",
        f"- `ReviewQueue.give()` on the first unreviewed item shown: {_ms(direct['gives'])}; the order brought up "
        f"to date after it, in the background: {_ms(direct['catch_up'])}",
        "- a verdict on the last item shown: give {:.0f} ms, shown() {:.1f} ms, brought up to date in {:.0f} ms".format(
            *direct["far"]),
        "- undo: {:.0f} ms, shown() {:.1f} ms, picks chosen afresh in {:.0f} ms".format(*direct["undo"]),
    ]
    if made > 5:
        lines.append(f"- (the database was written first, in {made:.0f} s)")
    text = "\n".join(lines)
    print(text)
    write_section("bench_review_learn", text)


if __name__ == "__main__":
    main()
