"""What is kept, on PostgreSQL: relabel files/s (50 labels, 5 s clips of one window, 512-dim fp16
vectors), database bytes per hour of audio (50 labels, fp16 512-dim embeddings; files of one hour,
360 windows of 10 s), and the SQL views page's example queries over many windows. Synthetic files are
written through db.results.save_results, the code path runs use; the tiny random CLAP, with a 512-dim
shared space (its text tower is the only part that runs). Search has its own, bench_search.
Usage: python -m bench.bench_embeddings --files 2000 20000 --hours 100 --queries 1000000"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from db.embeddings import EmbeddingKey
from db.files import add_files
from db.jobs import create_job
from db.results import save_results
from db.schema import engine_for, ensure_schema
from model.classifier import classifier_for, score
from model.random_clap import build
from model.results import FileResult, WindowResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_canonical, taxonomy_from_csv
from vectors.relabel import relabel

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LABELS = ",".join(f"label {i}" for i in range(50))


def fill(engine, settings, revision, files: int, windows: int, dim: int = 512) -> None:
    rng = np.random.default_rng(0)
    job = create_job(engine, taxonomy_from_csv("seed"), settings, kind="run", sources=["bench"])
    refs = [FileRef(f"file:///bench/{i:07d}.wav", fingerprint=str(i)) for i in range(files)]
    add_files(engine, job, refs, force=True)
    key = EmbeddingKey(revision, 10.0, 10.0, "fp16")
    for start in range(0, files, 500):
        results = []
        for ref in refs[start:start + 500]:
            vectors = rng.standard_normal((windows, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            segments = [WindowResult(10.0 * w, 10.0 * w + 5.0, np.array([1.0]), np.array([0.0]), v)
                        for w, v in enumerate(vectors)]
            results.append(FileResult(ref.uri, duration_s=5.0 * windows, scores=np.array([1.0]),
                                      similarity=np.array([0.0]), segments=segments))
        save_results(engine, job, results, ["seed"], key, logit_scale=1.0)


def bytes_per_hour(engine, settings, revision, hours: int) -> str:
    """Database bytes per hour of audio: ``hours`` files of 360 windows of 10 s, 50 labels, with
    their fp16 512-dim embeddings, after VACUUM ANALYZE; every table a window occupies, indexes
    and TOAST included (the file's labeling row counted with them)."""
    rng = np.random.default_rng(1)
    names = LABELS.split(",")
    job = create_job(engine, taxonomy_from_csv(LABELS), settings, kind="run", sources=["bench"])
    refs = [FileRef(f"file:///bench/hour-{i:05d}.flac", fingerprint=str(i)) for i in range(hours)]
    add_files(engine, job, refs, force=True)
    key = EmbeddingKey(revision, 10.0, 10.0, "fp16")
    texts = rng.standard_normal((len(names), 512))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    logit_scale = 100.0
    for start in range(0, hours, 10):
        results = []
        for ref in refs[start:start + 10]:
            vectors = rng.standard_normal((360, 512)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            scores, cosines = score(vectors, texts, logit_scale)
            segments = [WindowResult(10.0 * w, 10.0 * w + 10.0, scores[w], cosines[w], vectors[w]) for w in range(360)]
            results.append(FileResult(ref.uri, duration_s=3600.0, scores=scores.mean(axis=0),
                                      similarity=cosines.mean(axis=0), segments=segments))
        save_results(engine, job, results, names, key, logit_scale=logit_scale)
    tables = ("labeling", "segment", "audio_embedding")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        sizes = {t: conn.execute(text(f"select pg_total_relation_size('{t}')")).scalar() for t in tables}
    per_hour = {t: size / hours for t, size in sizes.items()}
    split = ", ".join(f"{t} {b / 1e6:.3f} MB ({b / 360:,.0f} B/window)" for t, b in per_hour.items())
    return f"bytes: {sum(per_hour.values()) / 1e6:.3f} MB per hour of audio ({hours} files of 1 h; {split})"


def readme_queries(engine, settings, windows: int) -> str:
    """The example queries of docs/reference/views.md (its first ``sql`` block, run as written; the
    README's until it moved there) over ``windows`` windows of files of 100 windows, 50 labels of a
    taxonomy named quickstart (the name the queries filter on), one of them siren;
    random unit vectors, so every label is rank 1 of about 2% of the windows. Median of 3 runs
    after a first one. No embeddings are kept: these queries do not read them."""
    rng = np.random.default_rng(2)
    names = ["siren", *LABELS.split(",")[1:]]
    job = create_job(engine, taxonomy_from_canonical({"name": "quickstart", "labels": names}), settings,
                     kind="run", sources=["bench"])
    per_file = 100
    refs = [FileRef(f"file:///bench/rec-{i:07d}.flac", fingerprint=str(i)) for i in range(windows // per_file)]
    add_files(engine, job, refs, force=True)
    texts = rng.standard_normal((len(names), 512))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    began = time.perf_counter()
    for start in range(0, len(refs), 100):
        results = []
        for ref in refs[start:start + 100]:
            vectors = rng.standard_normal((per_file, 512))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            scores, cosines = score(vectors, texts, 100.0)
            segments = [WindowResult(10.0 * w, 10.0 * w + 10.0, scores[w], cosines[w]) for w in range(per_file)]
            results.append(FileResult(ref.uri, duration_s=10.0 * per_file, scores=scores.mean(axis=0),
                                      similarity=cosines.mean(axis=0), segments=segments))
        save_results(engine, job, results, names, logit_scale=100.0)
    filled = time.perf_counter() - began
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        block = re.search(r"```sql\n(.*?)```", (Path(__file__).parents[1] / "docs" / "reference" / "views.md").read_text(), re.S).group(1)
        lines = []
        for statement in (s.strip() for s in block.split(";")):
            sql = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if not sql:
                continue
            conn.execute(text(sql)).fetchall()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                rows = len(conn.execute(text(sql)).fetchall())
                times.append(time.perf_counter() - t0)
            lines.append(f"  {statistics.median(times) * 1000:8.1f} ms  {rows:>7,} rows  {' '.join(sql.split())}")
    return (f"example queries over {len(refs) * per_file:,} windows of {len(refs):,} files "
            f"(filled in {filled:.0f} s), median of 3 after a first run:\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[2000])
    parser.add_argument("--hours", type=int, default=100, help="files of one hour for bytes per hour; 0: skip")
    parser.add_argument("--queries", type=int, default=0, metavar="WINDOWS",
                        help="time the SQL views page's example queries over this many windows; 0: skip")
    args = parser.parse_args()
    wide = build(f"/tmp/bench-emb-{uuid.uuid4().hex[:6]}", "tiny", projection_dim=512)
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    runs = [("relabel", n) for n in args.files]
    runs += [("bytes", args.hours)] if args.hours else []
    runs += [("queries", args.queries)] if args.queries else []
    for kind, total in runs:
        name = f"bench_emb_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        settings = Settings(model=str(wide), database_url=url)
        engine = engine_for(url)
        ensure_schema(engine)
        revision = classifier_for(settings.model_ref, settings).revision
        if kind == "relabel":
            fill(engine, settings, revision, total, 1, dim=512)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))  # as autovacuum leaves an archive labeled a while ago
            began = time.perf_counter()
            info = relabel(engine, taxonomy_from_csv(LABELS), settings)
            spent = time.perf_counter() - began
            print(f"relabel: {info.done} files, 50 labels, 512-dim fp16, {spent:.2f} s, "
                  f"{info.done / spent:,.0f} files/s (text tower on the 50 prompts included)")
        elif kind == "bytes":
            print(bytes_per_hour(engine, settings, revision, total))
        else:
            print(readme_queries(engine, settings, total))
        engine_for.cache_clear()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
