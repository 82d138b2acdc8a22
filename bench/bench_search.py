"""Search latency and memory by number of stored windows, on PostgreSQL. Synthetic files of 100
windows of 512-dim unit vectors (fp16, as stored by default) are written through
db.results.save_results, the code path runs use. Each size gets a fresh database and index folder and
three processes: one fills; one times the build's steps one after the other in one thread (the
build itself reads the next rows while inflating these), the first query (which builds the
index), five warm queries, the query after one file is labeled again (`run --force` rewrites its
row: masked and appended, not rebuilt) and, for comparison, one scan of every vector from SQL (the
search before the index); one times the first query of a new process, as `soundtag search` makes it. Memory is each process's peak RSS,
which counts the pages of the memory-mapped index it touched (shared page cache, not private).
Queries are `search --like` (a stored window; no 512-dim model to load).

Then, in a new index folder, the approximate index built ahead as a worker builds it at a job's end,
and the first approximate query of a new process after it.

Usage: python -m bench.bench_search --windows 10000 100000 1000000
       python -m bench.bench_search --windows 10000000 --ahead-only  (the index built ahead alone)"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from bench.report import loadavg, machine, write_section

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MODEL = "synthetic-clap-512"
REVISION = "synthetic"
WINDOWS_PER_FILE = 100
DIM = 512


def _uri(i: int) -> str:
    return f"file:///bench/{i:07d}.wav"


def _labeled(url: str, numbers: range, rng: np.random.Generator, *, force: bool) -> None:
    """Files ``numbers`` labeled with random vectors, as a run (``force``: `run --force`) stores them."""
    from db.embeddings import EmbeddingKey
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
    job = create_job(engine, taxonomy_from_csv("seed"), Settings(model=MODEL, database_url=url), kind="run",
                     sources=["bench"])
    refs = [FileRef(_uri(i), fingerprint=str(i)) for i in numbers]
    add_files(engine, job, refs, force=force)
    key = EmbeddingKey(REVISION, 10.0, 10.0, "fp16")
    one = np.ones(1)
    for start in range(0, len(refs), 100):
        results = []
        for ref in refs[start:start + 100]:
            vectors = rng.standard_normal((WINDOWS_PER_FILE, DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            segments = [WindowResult(10.0 * w, 10.0 * w + 10.0, one, one, v) for w, v in enumerate(vectors)]
            results.append(FileResult(ref.uri, duration_s=10.0 * WINDOWS_PER_FILE, scores=one, similarity=one,
                                      segments=segments))
        save_results(engine, job, results, ["seed"], key, logit_scale=1.0)


def fill(url: str, files: int) -> None:
    _labeled(url, range(files), np.random.default_rng(0), force=True)


def steps(url: str) -> dict:
    """The build's steps, timed one after the other in one thread: the sync summary, the ids and
    stamps compared, reading the rows from SQL, inflating them, writing the segment to disk."""
    import tempfile

    from db.embeddings import embedding_rows, embedding_stamps, embeddings_state, unpack_row
    from db.schema import engine_for
    from vectors.index_segment import IndexSegmentWriter

    engine = engine_for(url)
    took = dict.fromkeys(("summary", "stamps", "sql", "unpack", "write"), 0.0)
    began = time.perf_counter()
    embeddings_state(engine, MODEL, REVISION, 0)
    took["summary"] = time.perf_counter() - began
    began = time.perf_counter()
    ids, _ = embedding_stamps(engine, MODEL, REVISION)
    took["stamps"] = time.perf_counter() - began
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        writer = IndexSegmentWriter(Path(folder), "steps", DIM)
        chunks = iter(embedding_rows(engine, MODEL, REVISION, ids))
        while True:
            began = time.perf_counter()
            chunk = next(chunks, None)
            took["sql"] += time.perf_counter() - began
            if chunk is None:
                break
            began = time.perf_counter()
            unpacked = [(row_id, stamp, unpack_row(row).vectors) for row_id, stamp, row in chunk]
            took["unpack"] += time.perf_counter() - began
            began = time.perf_counter()
            for row_id, stamp, vectors in unpacked:
                writer.add_embedding(row_id, stamp, vectors)
            took["write"] += time.perf_counter() - began
        began = time.perf_counter()
        writer.close()
        took["write"] += time.perf_counter() - began
    return took


def query(url: str, index_dir: str, files: int, warm: int, scan: bool) -> dict:
    from db.embeddings import embedding_chunks, stored_embeddings_of
    from db.schema import engine_for
    from soundtag.settings import Settings
    from vectors.search import search_like

    settings = Settings(model=MODEL, database_url=url, index_dir=Path(index_dir))
    engine = engine_for(url)
    rng = np.random.default_rng(1)
    report = {"steps": steps(url)} if scan else {}
    times = []
    cpu = time.process_time()
    for i in rng.integers(0, files, 1 + warm):
        began = time.perf_counter()
        hits = search_like(engine, _uri(int(i)), settings, at_s=15.0, limit=10)
        times.append(time.perf_counter() - began)
        assert hits[0].uri == _uri(int(i)) and hits[0].start_s == 10.0
        if len(times) == 1:
            report["first_cpu_s"] = time.process_time() - cpu
    report |= {"first_s": times[0], "warm_median_s": float(np.median(times[1:])) if warm else None}
    if scan:
        relabeled = int(rng.integers(0, files))
        _labeled(url, range(relabeled, relabeled + 1), np.random.default_rng(relabeled), force=True)
        began = time.perf_counter()
        hits = search_like(engine, _uri(relabeled), settings, at_s=15.0, limit=10)
        report["relabeled_s"] = time.perf_counter() - began
        assert hits[0].uri == _uri(relabeled) and hits[0].similarity > 0.999
        approximate = []
        for i in rng.integers(0, files, 4):
            began = time.perf_counter()
            hits = search_like(engine, _uri(int(i)), settings, at_s=15.0, limit=10, approximate=True)
            approximate.append(time.perf_counter() - began)
            assert hits[0].uri == _uri(int(i)) and hits[0].start_s == 10.0
        report["approximate_first_s"], report["approximate_warm_s"] = approximate[0], float(np.median(approximate[1:]))
    if scan:
        stored, _ = stored_embeddings_of(engine, MODEL, _uri(0))
        began = time.perf_counter()
        best = np.full(10, -2.0, np.float32)
        for chunk in embedding_chunks(engine, MODEL, REVISION):
            sims = np.concatenate([found.vectors for found in chunk]) @ stored.vectors[0]
            best = np.sort(np.concatenate([best, sims]))[-10:]
        report["sql_scan_s"] = time.perf_counter() - began
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return report


def ahead(url: str, index_dir: str) -> dict:
    """Seconds of building the approximate index ahead into a new ``index_dir``, as a worker's
    task does at a job's end (the segments synced from SQL, then the IVF-PQ index)."""
    from db.schema import engine_for
    from vectors.window_index import WindowIndex

    began = time.perf_counter()
    assert WindowIndex(engine_for(url), MODEL, REVISION, Path(index_dir), 0).prepare_approximate()
    return {"ahead_s": time.perf_counter() - began}


def first_approximate(url: str, index_dir: str, files: int) -> dict:
    """Seconds of a new process's first approximate query over the index built ahead; it must
    build nothing."""
    from db.schema import engine_for
    from soundtag.settings import Settings
    from vectors import approximate_index
    from vectors.search import search_like

    def refuse(*args):
        raise AssertionError("the first query built the approximate index")

    approximate_index.build = refuse
    settings = Settings(model=MODEL, database_url=url, index_dir=Path(index_dir))
    i = int(np.random.default_rng(2).integers(0, files))
    began = time.perf_counter()
    hits = search_like(engine_for(url), _uri(i), settings, at_s=15.0, limit=10, approximate=True)
    assert hits[0].uri == _uri(i)
    return {"first_s": time.perf_counter() - began}


def _child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.bench_search", "--child", *args], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--no-doc", action="store_true", help="print the rows, leave docs/benchmarks.md")
    parser.add_argument("--ahead-only", action="store_true",
                        help="fill, build the approximate index ahead and time a new process's first approximate "
                             "query; print that row (issue 30's target), leave docs/benchmarks.md")
    args = parser.parse_args()
    if args.child:
        what, url, files, *rest = args.child
        if what == "fill":
            fill(url, int(files))
            print(json.dumps({}))
        elif what == "ahead":
            print(json.dumps(ahead(url, rest[0])))
        elif what == "first-approximate":
            print(json.dumps(first_approximate(url, rest[0], int(files))))
        else:
            print(json.dumps(query(url, rest[0], int(files), warm=int(rest[1]), scan=rest[2] == "scan")))
        return
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    rows = []
    for total in args.windows:
        files = total // WINDOWS_PER_FILE
        name = f"bench_search_{uuid.uuid4().hex[:8]}"
        index_dir = f"/tmp/{name}-index"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        try:
            began = time.perf_counter()
            _child("fill", url, str(files))
            filled = time.perf_counter() - began
            if args.ahead_only:
                built = _child("ahead", url, str(files), f"{index_dir}-ahead")
                after = _child("first-approximate", url, str(files), f"{index_dir}-ahead")
                print(f"| {total:,} | {filled:.0f} s | {built['ahead_s']:,.1f} s | {after['first_s'] * 1000:,.0f} ms | "
                      f"{loadavg()} |", flush=True)
                continue
            timed = _child("query", url, str(files), index_dir, "5", "scan")
            fresh = _child("query", url, str(files), index_dir, "0", "-")
            size = sum(path.stat().st_size for path in Path(index_dir).rglob("*") if path.is_file())
            built = _child("ahead", url, str(files), f"{index_dir}-ahead")
            after = _child("first-approximate", url, str(files), f"{index_dir}-ahead")
            step = timed["steps"]
            rows.append(f"| {total:,} | {filled:.0f} s | {timed['first_s']:,.1f} s ({timed['first_cpu_s']:,.1f} s CPU; "
                        f"{timed['first_s'] / total * 1e6:.0f} µs per window) | "
                        + " / ".join(f"{step[k]:,.2f}" for k in ("summary", "stamps", "sql", "unpack", "write"))
                        + f" s | {timed['warm_median_s'] * 1000:,.0f} ms | {timed['relabeled_s'] * 1000:,.0f} ms | "
                        f"{fresh['first_s'] * 1000:,.0f} ms | {timed['peak_rss_mb']:,.0f} / {fresh['peak_rss_mb']:,.0f} MB | "
                        f"{size / 1e6:,.0f} MB ({size / total:,.0f} B) | {timed['approximate_first_s']:,.1f} s / "
                        f"{timed['approximate_warm_s'] * 1000:,.0f} ms | {built['ahead_s']:,.1f} s / "
                        f"{after['first_s'] * 1000:,.0f} ms | {timed['sql_scan_s'] * 1000:,.0f} ms | "
                        f"{loadavg()} |")
            print(rows[-1], flush=True)
        finally:
            shutil.rmtree(index_dir, ignore_errors=True)
            shutil.rmtree(f"{index_dir}-ahead", ignore_errors=True)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if args.no_doc or args.ahead_only:
        return
    write_section("bench_search", f"""
## Search latency and memory by stored windows (issues 9, 22)

Command: `python -m bench.bench_search --windows {' '.join(str(w) for w in args.windows)}`
({time.strftime('%Y-%m-%d', time.gmtime())}). {machine()}; PostgreSQL on the same machine. The load
average (1, 5, 15 min) was taken after each size: the cores are shared, so times are upper bounds.
Synthetic files of {WINDOWS_PER_FILE} windows of {DIM}-dim fp16 vectors written through `db.results.save_results`;
queries are `search --like` on a random stored window, `--limit 10`, through `vectors.search`, each
including its SQL (the index's sync check, the query window, the hits). Targets at 1M windows: first
query ≤ 20 s with the time per window flat from 100k, ≤ 1 s after warm-up and after `run --force` of
one file. The build's steps (summary / ids and stamps / SQL rows / inflating / writing and fsync)
were timed one after the other in one thread; the build overlaps the SQL of the next rows with
inflating these on the other core. Peak RSS counts the pages of the memory-mapped index the process
touched (shared page cache, not private memory); the new process's includes the imports (about 300 MB).
Exact search is the default up to `SOUNDTAG_SEARCH_APPROXIMATE_ABOVE` windows; the approximate
column is `search --approximate` after the others: its first query builds the IVF-PQ index (on
these random vectors, which have no clusters: its recall is measured in the next section), the
warm one is the median of 3. The index on disk includes that IVF-PQ file. Built ahead: a new index
folder brought up to date and its IVF-PQ index built by `WindowIndex.prepare_approximate`, what the
worker task `soundtag.build_index` runs when a job ends past the threshold, then the first
`--approximate` query of a new process over it (which builds nothing). Target: that query ≤ 1 s
after a 10M-window run.

| stored windows | fill | first query (builds the index) | build steps | warm query, median of 5 | after `run --force` of one file | first query of a new process | peak RSS (query / new process) | index on disk (per window) | `--approximate`: first (builds) / warm | built ahead (worker task) / first `--approximate` query of a new process after it | one SQL scan (the search before the index) | load average |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows))


if __name__ == "__main__":
    main()
