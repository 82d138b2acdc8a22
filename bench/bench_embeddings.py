"""Relabel and search over stored embeddings, on PostgreSQL: relabel files/s (50 labels) against
the audio path's files/s, and exact search latency by number of stored windows. Synthetic files
(512-dim unit vectors, 5 s clips of one window) are written through store.save_results, the code
path runs use. Usage: python -m bench.bench_embeddings --files 2000 --windows 10000"""

from __future__ import annotations

import argparse
import time
import uuid

import numpy as np
from sqlalchemy import create_engine, text

from db import store
from db.schema import engine_for, ensure_schema
from soundtag.fileref import FileRef
from soundtag.random_clap import build
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_csv
from worker.labeling import FileResult, Segment
from worker.relabel import relabel
from worker.runner import classifier_for
from worker.search import search_text

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LABELS = ",".join(f"label {i}" for i in range(50))


def fill(engine, settings, revision, files: int, windows: int, dim: int = 512) -> None:
    rng = np.random.default_rng(0)
    job = store.create_job(engine, taxonomy_from_csv("seed"), settings, kind="run", sources=["bench"])
    refs = [FileRef(f"file:///bench/{i:07d}.wav", fingerprint=str(i)) for i in range(files)]
    store.add_files(engine, job, refs, force=True)
    key = store.EmbeddingKey(revision, 10.0, 10.0, "fp16")
    for start in range(0, files, 500):
        results = []
        for ref in refs[start:start + 500]:
            vectors = rng.standard_normal((windows, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            segments = [Segment(10.0 * w, 10.0 * w + 5.0, np.array([1.0]), np.array([0.0]), v)
                        for w, v in enumerate(vectors)]
            results.append(FileResult(ref.uri, duration_s=5.0 * windows, scores=np.array([1.0]),
                                      similarity=np.array([0.0]), segments=segments))
        store.save_results(engine, job, results, ["seed"], key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--windows", type=int, nargs="+", default=[10_000])
    args = parser.parse_args()
    model = build(f"/tmp/bench-emb-{uuid.uuid4().hex[:6]}", "tiny")
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    for total in [None, *args.windows]:
        name = f"bench_emb_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        settings = Settings(model=str(model), database_url=url)
        engine = engine_for(url)
        ensure_schema(engine)
        revision = classifier_for(settings.model_ref, settings).revision
        if total is None:
            fill(engine, settings, revision, args.files, 1, dim=16)
            began = time.perf_counter()
            info = relabel(engine, taxonomy_from_csv(LABELS), settings)
            spent = time.perf_counter() - began
            print(f"relabel: {info.done} files, 50 labels, {spent:.2f} s, {info.done / spent:,.0f} files/s")
        else:
            fill(engine, settings, revision, total // 10, 10, dim=16)
            size = engine.connect().execute(text("select pg_total_relation_size('audio_embedding')")).scalar()
            search_text(engine, "warm up", settings, 10)
            began = time.perf_counter()
            for _ in range(3):
                search_text(engine, "a dog barking near traffic", settings, 10)
            spent = (time.perf_counter() - began) / 3
            print(f"search: {total:,} windows (16-dim fp16, tiny model, {size / 1e6:.1f} MB), {spent * 1000:.0f} ms per query")
        engine_for.cache_clear()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
