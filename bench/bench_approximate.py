"""Approximate search (vectors/approximate_index.py) against exact search, by number of windows.

Synthetic clustered 512-dim unit vectors, as recordings give: files of 100 windows, a window about
its file's centre (cosine ≈ 0.8), a file about one of 1,000 topics (≈ 0.7). They are written
straight into index segments with the index's own IndexSegmentWriter (1M windows per segment; no
PostgreSQL: 10M rows there would take hours to fill on two cores), then the approximate index is
built over them as a search builds it. Queries are stored windows (as `search --like`); recall@10
is against the exact top 10, computed in one batched pass over the segments. ``--compare N`` also
builds HNSW graphs (faiss, and usearch: `pip install usearch`, not a dependency) on the same
vectors at N windows (their vectors in memory: 20 GB at 10M, past this machine).

Usage: python -m bench.bench_approximate --windows 1000000 10000000 [--compare 1000000]"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import loadavg, machine, write_section
from vectors import approximate_index
from vectors.index_segment import ROW, IndexSegmentWriter

DIM = 512
QUERIES = 20
EF_SEARCH = (64, 512)  # HNSW's candidates per query: the libraries' default, and one for recall
PER_SEGMENT = 1_000_000


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _fill(folder: Path, windows: int) -> list:
    rng = np.random.default_rng(0)
    topics = _unit(rng.standard_normal((1000, DIM), dtype=np.float32))
    # Noise drawn from a pool: drawing 5G normals for 10M windows takes most of an hour on two cores.
    noise = 0.75 * _unit(rng.standard_normal((100_000, DIM), dtype=np.float32))
    segments = []
    for first in range(0, windows, PER_SEGMENT):
        writer = IndexSegmentWriter(folder, f"seg{first // PER_SEGMENT:03d}", DIM)
        for file in range(first // 100, min(first + PER_SEGMENT, windows) // 100, 1000):
            centres = _unit(topics[rng.integers(0, 1000, 1000)] + _unit(rng.standard_normal((1000, DIM), dtype=np.float32)))
            vectors = _unit(np.repeat(centres, 100, axis=0) + noise[rng.integers(0, len(noise), 100_000)])
            rows = np.zeros(len(vectors), ROW)
            rows["embedding"], rows["window"] = np.repeat(np.arange(file, file + 1000), 100), np.tile(np.arange(100), 1000)
            writer.add(rows, vectors)
        segments.append(writer.close())
    return segments


def _exact(segments: list, queries: np.ndarray) -> list[set]:
    """The exact top 10 of each query, as (segment, row), in one pass over the segments."""
    best = [[] for _ in queries]
    for k, seg in enumerate(segments):
        for at in range(0, len(seg.rows), 1 << 18):
            sims = seg.vectors[at:at + (1 << 18)] @ queries.T
            for q in range(len(queries)):
                top = np.argpartition(-sims[:, q], 10)[:10]
                best[q] = sorted(best[q] + [(float(sims[i, q]), k, at + int(i)) for i in top], reverse=True)[:10]
    return [{(k, row) for _, k, row in found} for found in best]


def _hnsw(segments: list, queries: np.ndarray, truth: list[set]) -> list[str]:
    """Build time, size, recall@10 and query time of HNSW graphs on the same vectors."""
    import faiss
    from usearch.index import Index

    vectors = np.concatenate([np.asarray(seg.vectors) for seg in segments])
    labels = np.concatenate([np.full(len(seg.rows), k, np.int64) << 40 | np.arange(len(seg.rows)) for k, seg in
                             enumerate(segments)])

    def label(i: int) -> tuple[int, int]:
        return int(i) >> 40, int(i) & ((1 << 40) - 1)

    lines = []
    began = time.perf_counter()
    graph = Index(ndim=DIM, metric="ip", dtype="i8", connectivity=16)
    graph.add(labels, vectors, threads=os.cpu_count())
    built = time.perf_counter() - began
    path = Path(tempfile.mkdtemp()) / "graph.usearch"
    graph.save(str(path))
    for ef in EF_SEARCH:
        graph.expansion_search = ef
        began = time.perf_counter()
        found = [set(map(label, graph.search(q, 10).keys)) for q in queries]
        lines.append((f"usearch HNSW i8, M=16, ef {ef}", built, path.stat().st_size, _recall(found, truth),
                      (time.perf_counter() - began) / len(queries)))
    shutil.rmtree(path.parent)
    del graph
    began = time.perf_counter()
    graph = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    graph.add(vectors)
    built = time.perf_counter() - began
    for ef in EF_SEARCH:
        graph.hnsw.efSearch = ef
        began = time.perf_counter()
        found = [set(label(labels[i]) for i in graph.search(q[None], 10)[1][0]) for q in queries]
        lines.append((f"faiss HNSW flat, M=16, ef {ef}", built, graph.ntotal * DIM * 4, _recall(found, truth),
                      (time.perf_counter() - began) / len(queries)))
    return lines


def _recall(found: list[set], truth: list[set]) -> float:
    return float(np.mean([len(f & t) / 10 for f, t in zip(found, truth)]))


def run(windows: int, compare: bool) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="bench_approximate-"))
    try:
        began = time.perf_counter()
        segments = _fill(folder, windows)
        filled = time.perf_counter() - began
        rng = np.random.default_rng(1)
        picks = [(int(k), int(rng.integers(0, len(segments[k].rows)))) for k in rng.integers(0, len(segments), QUERIES)]
        queries = np.stack([segments[k].vectors[row] for k, row in picks]).astype(np.float32)
        began = time.perf_counter()
        truth = _exact(segments, queries)
        exact_s = (time.perf_counter() - began) / QUERIES  # one pass for all: a lower bound per query
        began, cpu = time.perf_counter(), time.process_time()
        entry = approximate_index.build(folder, "ivf.faiss", segments, DIM)
        built, built_cpu = time.perf_counter() - began, time.process_time() - cpu
        anon = _rss_anon_mb()
        index = approximate_index.load(folder, entry)
        approximate_index.top(index, entry, segments, queries[0], 10)
        began = time.perf_counter()
        found = [{(k, row) for _, k, row in approximate_index.top(index, entry, segments, q, 10)} for q in queries]
        per_query = (time.perf_counter() - began) / QUERIES
        lines = [f"| {windows:,} | IVF{approximate_index.lists_for(windows)},PQ{DIM // 8} + {approximate_index.CANDIDATES} "
                 f"exact, {approximate_index.PROBES} lists scanned | {built:,.0f} s ({built_cpu:,.0f} s CPU) | "
                 f"{(folder / 'ivf.faiss').stat().st_size / 1e6:,.0f} MB file (mapped), "
                 f"{anon:,.0f} MB anonymous after build | {_recall(found, truth):.3f} | {per_query * 1000:,.1f} ms | "
                 f"{exact_s * 1000:,.0f} ms | {filled:,.0f} s | {loadavg()} |"]
        if compare:
            for name, built, size, recall, per_query in _hnsw(segments, queries, truth):
                lines.append(f"| {windows:,} | {name} | {built:,.0f} s | {size / 1e6:,.0f} MB | {recall:.3f} | "
                             f"{per_query * 1000:,.1f} ms | | | {loadavg()} |")
        for line in lines:
            print(line, flush=True)
        return lines
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--compare", type=int, nargs="+", default=[], metavar="WINDOWS",
                        help="also build HNSW graphs at these sizes (their vectors held in memory)")
    args = parser.parse_args()
    write(args.windows, args.compare,
          [line for windows in args.windows for line in run(windows, windows in args.compare)])


def write(windows: list[int], compare: list[int], rows: list[str]) -> None:
    write_section("bench_approximate", f"""
## Approximate search past 10M windows (issue 22)

Command: `python -m bench.bench_approximate --windows {' '.join(map(str, windows))}{' --compare ' + ' '.join(map(str, compare)) if compare else ''}`
({time.strftime('%Y-%m-%d', time.gmtime())}). {machine()}. Synthetic clustered 512-dim windows written
straight into index segments by the index's IndexSegmentWriter (not through PostgreSQL); {QUERIES} queries,
each a stored window; recall@10 against the exact top 10. The exact column is one batched pass over
the segments divided by the queries (a lower bound for a single exact query).

| windows | index | build | memory | recall@10 | query | exact query | writing the segments | load average |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows))


if __name__ == "__main__":
    main()
