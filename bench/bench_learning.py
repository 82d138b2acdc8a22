"""Learning from the reviews, measured. A corpus of synthetic sound classes (tones, chirps, noise
bursts, clicks, chords: varied pitch, sweep, rate, level; 5 s clips) is labeled once with a random
CLAP (zero-shot at chance, the audio embeddings still the model's); then verdicts are simulated
from the known classes in the `random`, `uncertain` (zero-shot margin) and `learn` orders, a head
is fitted after each 10 (heads.training.fit, what `soundtag train` calls) and its accuracy
measured on the files not reviewed, at 10, 20, 50, 70 and 100 verdicts, over several seeds.
Also: train time (1,000 verdicts of 512-dim vectors, the CLI's cross-validation included, one
OpenBLAS thread), relabel --head files/s on PostgreSQL, bytes per head.
Usage: python -m bench.bench_learning --files 300 --size full --seeds 3 [--relabel-files 20000]"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from db import packing  # noqa: E402
from db.embeddings import embedding_chunks  # noqa: E402
from db.reviews import review_items  # noqa: E402
from db.schema import engine_for, ensure_schema  # noqa: E402
from heads.head import Head  # noqa: E402
from heads.stored import store  # noqa: E402
from heads.targets import from_truth, window_targets  # noqa: E402
from heads.training import Examples, fit  # noqa: E402
from model.random_clap import build  # noqa: E402
from review.order import Learning, Order, ordered  # noqa: E402
from soundtag.settings import Settings  # noqa: E402
from soundtag.sources.walk import walk  # noqa: E402
from soundtag.taxonomy import taxonomy_from_csv  # noqa: E402
from vectors.relabel import relabel  # noqa: E402
from worker import runner  # noqa: E402

CLASSES = ("tone", "chirp", "noise burst", "clicks", "chord")
RATE = 16000
STEPS = (10, 20, 50, 70, 100)
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def clip(kind: str, rng, seconds: float = 5.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(200, 800) * t)
    elif kind == "chirp":
        f0, f1 = rng.uniform(300, 1000), rng.uniform(2000, 6000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * (t % 1.0) ** 2 / 2))
    elif kind == "noise burst":
        x = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) > rng.uniform(-0.5, 0.5))
    elif kind == "clicks":
        x = np.zeros(len(t))
        x[(np.arange(0, len(t), int(RATE / rng.uniform(3, 20))))] = 1.0
        x = np.convolve(x, np.exp(-np.arange(200) / 20.0), mode="same")
    else:
        root = rng.uniform(150, 400)
        x = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.25, 1.5))
    x = x + rng.uniform(0.0, 0.05) * rng.standard_normal(len(t))
    return (rng.uniform(0.1, 0.5) * x / np.abs(x).max()).astype(np.float32)


def corpus(root: Path, files: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        kind = CLASSES[i % len(CLASSES)]
        sf.write(root / f"{kind.replace(' ', '_')}-{i:04d}.wav", clip(kind, rng), RATE)


def kind_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1].split("-")[0].replace("_", " ")


def simulate(items, vectors: dict, truth: dict, order: str, seed: int) -> dict[int, float]:
    """Accuracy on the unreviewed files after each of STEPS verdicts, reviewing in ``order``."""
    ids = sorted(vectors)
    matrix = np.array([vectors[i] for i in ids])
    reviewed: list[int] = []
    found: dict[int, float] = {}
    head = None
    labels = list(CLASSES)
    while len(reviewed) < max(STEPS):
        left = [item for item in items if item.file_id not in set(reviewed)]
        if order == "random":
            queue = ordered(left, Order.RANDOM, seed=f"{seed}")
        elif order == "uncertain":
            queue = ordered(left, Order.UNCERTAIN)
        else:
            probabilities = None if head is None or not head.labels else dict(
                zip(ids, head_probabilities(head, matrix)))
            queue = ordered(left, Order.LEARN, seed=f"{seed}",
                            learning=Learning(vectors, tuple(vectors[i] for i in reviewed), probabilities))
        reviewed += [item.file_id for item in queue[:10]]
        head = train(matrix, ids, reviewed, truth, labels, seed)
        if len(reviewed) in STEPS:
            found[len(reviewed)] = accuracy(head, matrix, ids, reviewed, truth)
    return found


def train(matrix, ids, reviewed, truth, labels, seed):
    taught = {i: from_truth(i, truth[i], labels) for i in reviewed}
    targets = np.concatenate([window_targets(np.zeros(1), np.ones(1), taught.get(i, ()), labels) for i in ids])
    examples = Examples(matrix, np.array(ids), targets, np.full(targets.shape, np.nan))
    return fit(examples, labels, seed=seed, cross_validate=False)


def head_probabilities(fitted, matrix) -> np.ndarray:
    if not fitted.labels:
        return np.full((len(matrix), 1), 0.5)
    return 1 / (1 + np.exp(-(matrix @ fitted.weights.T.astype(np.float64) + fitted.bias)))


def accuracy(fitted, matrix, ids, reviewed, truth) -> float:
    held = [n for n, i in enumerate(ids) if i not in set(reviewed)]
    if not fitted.labels:
        return 0.0
    picked = head_probabilities(fitted, matrix[held]).argmax(axis=1)
    return float(np.mean([fitted.labels[p] == truth[ids[n]] for n, p in zip(held, picked)]))


def train_time() -> tuple[float, float]:
    """CPU seconds (one thread: what one core spends, whatever the machine's load) to fit 5 labels
    on 1,000 verdicts of 512-dim vectors (plus 4,000 unreviewed windows as weak negatives), with
    and without the 5-fold cross-validation the CLI prints."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 512))
    kinds = rng.integers(0, 5, 5000)
    vectors = centres[kinds] + 3.0 * rng.standard_normal((5000, 512))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = [f"class {k}" for k in range(5)]
    targets = np.full((5000, 5), np.nan)
    targets[:1000] = 0.0
    targets[np.arange(1000), kinds[:1000]] = 1.0
    examples = Examples(vectors.astype(np.float32), np.arange(5000), targets, np.full(targets.shape, np.nan))
    spent = []
    for cross_validate in (True, False):
        began = time.process_time()
        fit(examples, labels, cross_validate=cross_validate)
        spent.append(time.process_time() - began)
    return spent[0], spent[1]


def relabel_speed(files: int, revision_model: Path) -> str:
    """relabel --head over ``files`` files of one 5 s window (512-dim fp16), 50 labels, PostgreSQL."""
    from bench.bench_embeddings import fill
    from model.classifier import classifier_for

    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bench_learn_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        settings = Settings(model=str(revision_model), database_url=url)
        engine = engine_for(url)
        ensure_schema(engine)
        revision = classifier_for(settings.model_ref, settings).revision
        fill(engine, settings, revision, files, 1, dim=512)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        rng = np.random.default_rng(0)
        head = store(engine, Head("bench", 0, settings.model_ref, revision,
                                            tuple(f"label {i}" for i in range(50)),
                                            rng.standard_normal((50, 512)).astype(np.float32),
                                            rng.standard_normal(50).astype(np.float32)),
                               verdicts=list(range(1000)), truth_files=[], options={})
        began = time.perf_counter()
        info = relabel(engine, None, settings, head=head)
        spent = time.perf_counter() - began
        # The zero-shot relabel of the same files right after, under the same load, for comparison.
        began = time.perf_counter()
        relabel(engine, taxonomy_from_csv(",".join(head.labels)), settings)
        zero = time.perf_counter() - began
        size = len(packing.pack(head.weights)) + len(packing.pack(head.bias))
        engine_for.cache_clear()
        engine.dispose()
        return (f"relabel --head: {info.done} files, 50 labels, 512-dim fp16, {spent:.2f} s, "
                f"{info.done / spent:,.0f} files/s (zero-shot relabel of the same files after it: "
                f"{info.done / zero:,.0f} files/s); head weights+bias {size:,} bytes packed "
                f"({head.weights.nbytes + head.bias.nbytes:,} raw)")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size", default="full", help="random CLAP: full (ClapConfig defaults) or tiny")
    parser.add_argument("--seeds", type=int, default=3, help="0: no learning curves")
    parser.add_argument("--relabel-files", type=int, default=20000, help="0: skip")
    parser.add_argument("--work", default="/tmp/bench-learning")
    args = parser.parse_args()
    work = Path(args.work)
    model = work / f"clap-{args.size}"
    if not model.exists():
        build(model, args.size, projection_dim=512)
    archive = work / f"corpus-{args.files}"
    if not archive.exists():
        corpus(archive, args.files)
    url = f"sqlite:///{work}/learning-{args.size}-{args.files}.db"
    engine = engine_for(url)
    ensure_schema(engine)
    settings = Settings(model=str(model), database_url=url)
    began = time.perf_counter()
    info = runner.run(engine, walk(str(archive)), taxonomy_from_csv(",".join(CLASSES)), settings,
                      sources=[str(archive)])
    print(f"labeled {info.done} files ({info.skipped} already) with the random {args.size} CLAP in "
          f"{time.perf_counter() - began:.0f} s")
    items = review_items(engine, info.job_id)
    truth = {item.file_id: kind_of(item.uri) for item in items}
    zero = np.mean([item.decision == truth[item.file_id] for item in items])
    vectors = {}
    for chunk in embedding_chunks(engine, settings.model_ref):
        for found in chunk:
            mean = found.vectors.mean(axis=0)
            vectors[found.file_id] = mean / np.linalg.norm(mean)
    print(f"zero-shot accuracy (file_decisions): {zero:.3f}; chance {1 / len(CLASSES):.3f}")
    for order in ("random", "uncertain", "learn") if args.seeds else ():
        runs = [simulate(items, vectors, truth, order, seed) for seed in range(args.seeds)]
        row = " | ".join(f"{statistics.mean(r[n] for r in runs):.3f} ± {statistics.pstdev(r[n] for r in runs):.3f}"
                         for n in STEPS)
        print(f"| {order} | {row} |")
    with_cv, without = train_time()
    print(f"train: 5 labels, 1,000 verdicts + 4,000 weak negatives, 512-dim: {with_cv:.2f} CPU s with 5-fold "
          f"cross-validation, {without:.2f} CPU s the fit alone (OPENBLAS_NUM_THREADS=1)")
    if args.relabel_files:
        print(relabel_speed(args.relabel_files, build(work / "clap-tiny-512", "tiny", projection_dim=512)))


if __name__ == "__main__":
    main()
