"""Speed of ``soundtag run`` against the common way, ``pipeline("zero-shot-audio-classification")``
called once per clip with every candidate label, on the same clips and the same full-size CLAP.

    .venv/bin/python -m bench.bench_run              # 48 clips, 50 labels; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_run --quick      # a smoke run of a minute or two; prints only

Both sides run as their own process and are timed whole: interpreter start, imports, model load
(and, for soundtag, the database), on fp32 on the CPU. The model is a random-weight checkpoint
with ``ClapConfig()``'s architecture (htsat-unfused, 153M), built once into bench/.cache/: its
scores mean nothing, its cost is the real one. Then, in this process, each stage of soundtag's
path is timed alone on the same clips, and the bf16 and int8 options are run end to end and
compared with fp32's scores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import DOC, loadavg, machine, write_section

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
CLIP_RATE = 44100
CLIP_S = 5.0

LABELS = [
    "dog barking", "rain", "thunder", "siren", "speech", "music", "engine", "car horn", "bird song",
    "wind", "running water", "birds chirping", "footsteps", "door knock", "glass breaking", "applause",
    "laughter", "baby crying", "cat meowing", "cough", "sneeze", "train", "airplane", "helicopter",
    "church bells", "clock tick", "keyboard typing", "vacuum cleaner", "washing machine", "crackling fire",
    "insects", "crickets", "frog", "rooster", "cow", "pig", "hen", "sheep", "chainsaw", "hand saw",
    "fireworks", "pouring water", "snoring", "drinking sipping", "toilet flush", "brushing teeth",
    "mouse click", "can opener", "sea waves", "guitar",
]


def checkpoint() -> Path:
    """The full-size random CLAP, built on first use (about 10 s, 600 MB) and kept."""
    path = CACHE / "clap-full"
    if not (path / "model.safetensors").exists() or not (path / "processor_config.json").exists():
        from soundtag.random_clap import build

        partial = CACHE / "clap-full.partial"
        build(partial, "full")
        partial.rename(path)
    return path


def _clip(index: int) -> np.ndarray:
    """Five seconds of one of eight kinds of sound, mono or stereo; (frames, channels)."""
    rng = np.random.default_rng(index)
    n = int(CLIP_S * CLIP_RATE)
    t = np.arange(n) / CLIP_RATE
    f0 = rng.uniform(80, 3000)
    kind = index % 8
    if kind == 0:  # steady tone
        x = np.sin(2 * np.pi * f0 * t)
    elif kind == 1:  # sweep
        f1 = rng.uniform(4000, 16000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * CLIP_S)))
    elif kind == 2:  # white noise
        x = rng.standard_normal(n)
    elif kind == 3:  # brown-ish noise
        x = np.cumsum(rng.standard_normal(n))
        x -= np.convolve(x, np.ones(441) / 441, mode="same")
    elif kind == 4:  # tremolo tone
        x = np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 12) * t))
    elif kind == 5:  # click train
        x = np.zeros(n)
        x[:: int(CLIP_RATE / rng.uniform(2, 40))] = 1.0
        x = np.convolve(x, np.exp(-np.arange(200) / 30.0), mode="same")
    elif kind == 6:  # harmonic (sawtooth-like) with vibrato
        phase = 2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)
        x = sum(np.sin(k * phase) / k for k in range(1, 12))
    else:  # noise bursts over a low hum
        x = 0.3 * np.sin(2 * np.pi * 60 * t) + rng.standard_normal(n) * (np.sin(2 * np.pi * 1.5 * t) > 0.3)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.8)
    x = x + 0.003 * rng.standard_normal(n)
    if index % 2:
        # A stereo image: the right channel slightly delayed and quieter.
        x = np.stack([x, 0.7 * np.roll(x, 20)], axis=1)
    else:
        x = x[:, None]
    return x.astype(np.float32)


def write_clips(folder: Path, count: int) -> list[Path]:
    """``count`` 5 s clips at 44.1 kHz, WAV (16-bit) and FLAC alternating in pairs."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        ext = "wav" if (i // 2) % 2 == 0 else "flac"
        path = folder / f"clip{i:03d}.{ext}"
        sf.write(path, np.clip(_clip(i), -1, 1), CLIP_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


# Each soundtag variant: its name in the tables, the options it adds to `soundtag run`.
VARIANTS = {
    "fp32": [],
    "fp32, --batch-size 4": ["--batch-size", "4"],
    "bf16": ["--dtype", "bf16"],
    "int8": ["--dtype", "int8"],
}
EXTRACTOR = "features with ClapFeatureExtractor"
STAGES = ("read + decode", "resample", "features (log-mel)", "audio tower", "scores + DB write")


def _env() -> dict:
    # SOUNDTAG_* from the caller's shell would change what is measured; the model is a local folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_wait_s: float, idle_share: float = 0.85) -> float:
    """Wait until the CPUs were at least ``idle_share`` idle over two seconds, or ``max_wait_s``
    has passed; returns the idle share last seen. Other people's test runs share this machine."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, total0 = _cpu_jiffies()
        time.sleep(2.0)
        busy1, total1 = _cpu_jiffies()
        idle = 1 - (busy1 - busy0) / max(1, total1 - total0)
        if idle >= idle_share or time.monotonic() >= deadline:
            return idle


class Timed:
    """One timed process: wall seconds, and the CPU seconds other processes used meanwhile."""

    def __init__(self, wall_s: float, others_cpu_s: float):
        self.wall_s, self.others_cpu_s = wall_s, others_cpu_s


def _timed(cmd: list[str]) -> Timed:
    import resource

    tick = os.sysconf("SC_CLK_TCK")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, _ = _cpu_jiffies()
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    busy1, _ = _cpu_jiffies()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    ours = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return Timed(elapsed, max(0.0, (busy1 - busy0) / tick - ours))


def run_soundtag(model: Path, clips: Path, labels: list[str], db: Path, options: list[str]) -> tuple[Timed, dict]:
    """Wall seconds of a whole ``soundtag run`` process on a new database, and its file results
    {name: {label: (score, similarity)}}."""
    db.unlink(missing_ok=True)
    seconds = _timed([sys.executable, "-m", "soundtag.cli", "run", str(clips), "--labels", ",".join(labels),
                      "--model", str(model), "--database", f"sqlite:///{db}", "--device", "cpu", *options])
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with sqlite3.connect(db) as conn:
        for uri, label, score, similarity in conn.execute("select uri, label, score, similarity from file_labels"):
            results.setdefault(Path(uri).name, {})[label] = (score, similarity)
    return seconds, results


def run_pipeline(model: Path, clips: list[Path], labels: list[str], work: Path) -> tuple[Timed, dict]:
    """Wall seconds of a whole bench.pipeline_baseline process, and its scores {name: {label: score}}."""
    labels_file, out = work / "labels.txt", work / "pipeline.json"
    labels_file.write_text("\n".join(labels) + "\n")
    out.unlink(missing_ok=True)
    seconds = _timed([sys.executable, "-m", "bench.pipeline_baseline", str(model), str(labels_file), str(out),
                      *map(str, clips)])
    return seconds, {Path(k).name: v for k, v in json.loads(out.read_text()).items()}


def _matrix(results: dict, names: list[str], labels: list[str], field: int | None) -> np.ndarray:
    return np.array([[results[n][lb] if field is None else results[n][lb][field] for lb in labels] for n in names])


def compare(results: dict, reference: dict, labels: list[str], field: int | None = None) -> dict[str, float]:
    """How far ``results`` are from ``reference``: max abs score difference over every file and
    label, the share of files with the same top label, and (soundtag results on both sides) the
    max abs difference of cosine similarities."""
    names = sorted(reference)
    if sorted(results) != names:
        raise SystemExit(f"the runs labeled different files: {len(results)} against {len(names)}")
    a = _matrix(results, names, labels, 0)
    b = _matrix(reference, names, labels, field)
    out = {"max_abs": float(np.abs(a - b).max()), "top1": float((a.argmax(axis=1) == b.argmax(axis=1)).mean())}
    if field == 0:
        cosines = _matrix(results, names, labels, 1) - _matrix(reference, names, labels, 1)
        out["max_abs_cos"] = float(np.abs(cosines).max())
        top2 = np.sort(b, axis=1)[:, -2:]
        out["ref_margin"] = float(np.median(top2[:, 1] - top2[:, 0]))
    return out


def stages(model: Path, clips: list[Path], labels: list[str], work: Path, repeat: int,
           quiet_wait: float) -> dict[str, float]:
    """Seconds each stage of soundtag's path takes on all clips, one stage after the other in this
    process, with the functions ``soundtag run`` calls: the best of ``repeat`` passes per stage."""
    import torch
    from transformers import ClapModel, ClapProcessor  # noqa: F401 - so that "model load" is the load alone

    best: dict[str, float] = {}
    for attempt in range(repeat):
        wait_for_quiet(quiet_wait)
        one = {"import torch + transformers": _import_seconds(),
               **_stage_pass(model, clips, labels, work / f"stages-{attempt}.db")}
        for key, value in one.items():
            best[key] = min(value, best.get(key, value))
    best["torch threads"] = torch.get_num_threads()
    return best


def _import_seconds() -> float:
    """What importing torch and the CLAP classes adds to a Python process's start."""
    bare = _timed([sys.executable, "-c", "pass"]).wall_s
    full = _timed([sys.executable, "-c", "import torch; from transformers import ClapModel, ClapProcessor"]).wall_s
    return max(0.0, full - bare)


def _stage_pass(model: Path, clips: list[Path], labels: list[str], db: Path) -> dict[str, float]:
    from db.files import add_files
    from db.jobs import create_job
    from db.results import save_results
    from db.schema import engine_for, ensure_schema
    from producer.sources import walk
    from soundtag.settings import Settings
    from soundtag.sources.storage import open_local
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.audio import decode, resample, windows
    from worker.clap import Classifier, score
    from worker.labeling import FileResult, Segment, aggregate

    batch_size = 16  # Settings.batch_size's default
    out: dict[str, float] = {}
    started = time.perf_counter()
    classifier = Classifier(str(model), device="cpu")
    out["model load"] = time.perf_counter() - started
    taxonomy = taxonomy_from_csv(",".join(labels))
    started = time.perf_counter()
    label_embeddings = classifier.label_embeddings(taxonomy)  # a new classifier: nothing cached
    out["text tower"] = time.perf_counter() - started
    rate = classifier.sampling_rate
    ticks = dict.fromkeys(STAGES, 0.0)
    ticks[EXTRACTOR] = 0.0
    extractor = classifier.processor.feature_extractor
    prepared = []
    for path in clips:
        t0 = time.perf_counter()
        with open_local(path.as_uri()) as file:
            data = file.read()
        # Decoding at the file's own rate skips resampling, which is timed next on its own.
        native = decode(data, target_rate=CLIP_RATE)
        t1 = time.perf_counter()
        samples = resample(native.samples, native.sample_rate, rate)
        t2 = time.perf_counter()
        parts = windows(samples, rate, classifier.max_length_s, classifier.max_length_s)
        features = classifier.prepare([w.samples for w in parts])
        t3 = time.perf_counter()
        extractor([w.samples for w in parts], sampling_rate=rate, return_tensors="np")
        t4 = time.perf_counter()
        ticks["read + decode"] += t1 - t0
        ticks["resample"] += t2 - t1
        ticks["features (log-mel)"] += t3 - t2
        ticks[EXTRACTOR] += t4 - t3
        prepared.append((path, native, parts, features))

    results = []
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start : start + batch_size]
        t0 = time.perf_counter()
        embeddings = classifier.embed_windows([f for *_, features in batch for f in features])
        t1 = time.perf_counter()
        ticks["audio tower"] += t1 - t0
        all_scores, all_similarity = score(embeddings, label_embeddings, classifier.logit_scale)
        at = 0
        for path, native, parts, _ in batch:
            result = FileResult(path.as_uri(), duration_s=native.duration_s, sample_rate=native.source_rate,
                                channels=native.channels, content_hash="-")
            for w in parts:
                result.segments.append(Segment(w.start_s, w.end_s, all_scores[at], all_similarity[at]))
                at += 1
            [result.scores], [result.similarity] = aggregate(all_scores[at - len(parts):at],
                                                             all_similarity[at - len(parts):at], [len(parts)])
            results.append(result)
        ticks["scores + DB write"] += time.perf_counter() - t1

    engine = engine_for(f"sqlite:///{db}")
    ensure_schema(engine)
    job_id = create_job(engine, taxonomy, Settings(model=str(model), database_url=f"sqlite:///{db}"), kind="run",
                        sources=[str(clips[0].parent)])
    add_files(engine, job_id, list(walk(str(clips[0].parent))))
    t0 = time.perf_counter()
    save_results(engine, job_id, results, taxonomy.names, logit_scale=classifier.logit_scale)
    ticks["scores + DB write"] += time.perf_counter() - t0
    out.update(ticks)
    return out


def audio_tower_per_clip(model: Path, clips: list[Path], dtype: str, repeat: int, quiet_wait: float) -> float:
    """Seconds of audio tower per 5 s clip at ``dtype`` in batches of up to 16: the best of
    ``repeat`` batches, after a warm-up."""
    from worker.audio import decode
    from worker.clap import Classifier

    classifier = Classifier(str(model), device="cpu", dtype=dtype)
    features = classifier.features(classifier.prepare([decode(p.read_bytes(), classifier.sampling_rate).samples
                                                       for p in clips[:16]]))
    classifier.embed_audio(features[:2])
    times = []
    for _ in range(repeat):
        wait_for_quiet(quiet_wait)
        started = time.perf_counter()
        classifier.embed_audio(features)
        times.append((time.perf_counter() - started) / len(features))
    return min(times)


def _best(times: list[float]) -> float:
    return min(times)


def _median(times: list[float]) -> float:
    return float(np.median(times))


def report(r: dict) -> str:
    """The markdown section for docs/benchmarks.md."""
    n, k, reps = r["clips"], r["labels"], r["repeat"]
    pl = r["pipeline"]
    st = r["soundtag"]["fp32"]
    speedup, speedup_median = _best(pl) / _best(st), _median(pl) / _median(st)
    if speedup >= 5 and speedup_median >= 5:
        verdict = "**met**"
    elif speedup >= 5 or speedup_median >= 5:
        verdict = "**borderline**: met by one measure, not the other"
    else:
        verdict = "**not met**"
    runs = "once" if reps == 1 else f"{reps} times, interleaved"
    lines = [
        "## `soundtag run` against the zero-shot pipeline (CPU)",
        "",
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}  ",
        f"Machine: {r['machine']}  ",
        f"Load average (1, 5, 15 min) at the start: {r['load_before']}; at the end: {r['load_after']}. "
        "A shared machine: other people's test runs use the same two cores, and a run they overlap slows "
        "down far more than their share (PyTorch's two compute threads wait on each other whenever one "
        "loses its core), so each timed run waits first for the CPUs to be idle, the log below says how "
        "much CPU others took during each, and the comparison uses each path's best run.",
        "",
        f"{n} clips of 5 s at 44.1 kHz, written for the run (WAV and FLAC, mono and stereo: tones, sweeps, "
        f"white and brown noise, tremolo, clicks, harmonics, bursts), {k} labels, one random-weight CLAP "
        "with `ClapConfig()`'s architecture (htsat-unfused, 153M parameters; soundtag/random_clap.py). Each "
        f"row is a whole process timed from start to exit: interpreter, imports, model load (the "
        f"pipeline's construction), and for soundtag the SQLite database. Each ran {runs}: best and median.",
        "",
        "| path | best s | median s | files/s (best) | vs pipeline (best) | vs pipeline (median) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| `pipeline(\"zero-shot-audio-classification\")`, one call per clip, fp32 | {_best(pl):.1f} | "
        f"{_median(pl):.1f} | {n / _best(pl):.2f} | 1.0× | 1.0× |",
    ]
    for name, times in r["soundtag"].items():
        option = " ".join(VARIANTS[name]) or "(defaults: fp32, --batch-size 16)"
        lines.append(f"| `soundtag run {option}` | {_best(times):.1f} | {_median(times):.1f} | "
                     f"{n / _best(times):.2f} | {_best(pl) / _best(times):.1f}× | "
                     f"{_median(pl) / _median(times):.1f}× |")
    lines += ["", "Run log, in order: wall s (CPU idle share just before; CPU-s other processes used during the run).",
              "", "; ".join(f"{name} {wall:.1f} ({100 * idle:.0f}%; {others:.1f})"
                            for name, wall, idle, others in r["log"])]
    s = r["stages"]
    per_clip = sum(s[name] for name in STAGES)
    fixed = s["import torch + transformers"] + s["model load"] + s["text tower"]
    startup = _best(st) - per_clip
    pipeline_clip = s["text tower"] + (s["audio tower"] + s[EXTRACTOR]) / n
    margin = r["vs_fp32"]["int8"]["ref_margin"] if "int8" in r["vs_fp32"] else float("nan")
    held = f"What holds soundtag under 5× at {n} clips is" if speedup < 5 else "The rest of the gap is"
    small = r["soundtag"].get("fp32, --batch-size 4")
    batches = (f"Smaller batches: `--batch-size 4` took {_best(small):.1f} s (median {_median(small):.1f} s) "
               f"against the default 16's {_best(st):.1f} s ({_median(st):.1f} s). ") if small else ""
    lines += [
        "",
        f"Target, soundtag ≥ 5× the pipeline's files/s, fp32, model load included: {verdict} — "
        f"{speedup:.2f}× best against best, {speedup_median:.2f}× median against median. soundtag's fp32 "
        f"scores against the pipeline's: max abs difference {r['parity']['max_abs']:.1e} "
        f"(tests/test_clap.py holds them to 1e-4), same top label for {100 * r['parity']['top1']:.0f}% of clips.",
        "",
        *(["Earlier runs of this command here (best, median): " + "; ".join(
            f"{h['date']}: {h['best']:.2f}×, {h['median']:.2f}×" for h in r["history"]) + ".", ""]
          if r.get("history") else []),
        "### Where the time goes",
        "",
        f"Each stage of soundtag's path timed alone, one after the other, in one process, on the same {n} clips "
        f"({s['torch threads']} torch threads, batches of 16; each stage's best of {reps} passes). "
        "In `soundtag run` reading, decoding and features run "
        "in two threads beside the audio tower, so on two cores they partly overlap it.",
        "",
        "| stage | total s | ms per clip |",
        "|---|---:|---:|",
    ]
    for name in STAGES:
        lines.append(f"| {name} | {s[name]:.2f} | {1000 * s[name] / n:.1f} |")
    lines += [
        f"| **per-clip stages together** | **{per_clip:.2f}** | **{1000 * per_clip / n:.1f}** |",
        f"| import torch + transformers (once) | {s['import torch + transformers']:.2f} | |",
        f"| model load (once) | {s['model load']:.2f} | |",
        f"| text tower on the {k} label prompts (soundtag: once; the pipeline: for every clip) | "
        f"{s['text tower']:.2f} | |",
        f"| rest of the best `soundtag run`: interpreter, CLI imports, SQLite schema and job, and what the "
        "stages lose running side by side | "
        f"{_best(st) - per_clip - fixed:.2f} | |",
        "",
        f"Features as soundtag computed them before the vectorised log-mel in worker/clap.py, with "
        f"transformers' `ClapFeatureExtractor` (a Python loop over the 1001 frames of each window): "
        f"{s[EXTRACTOR]:.2f} s, {1000 * s[EXTRACTOR] / n:.1f} ms per clip. The vectorised one takes the same "
        "float64 steps and its output is bit-identical.",
        "",
        f"The pipeline runs the text tower on all {k} prompts for every clip: {n} × {s['text tower']:.2f} s ≈ "
        f"{n * s['text tower']:.0f} s of its {_best(pl):.0f} s. Past start-up it pays about "
        f"{1000 * pipeline_clip:.0f} ms per clip (text tower, audio tower, features) where soundtag pays "
        f"{1000 * per_clip / n:.0f} ms ({pipeline_clip * n / per_clip:.1f}×), {1000 * s['audio tower'] / n:.0f} ms "
        f"of it in the audio tower, which both pay alike. {held} start-up: {startup:.1f} s of imports, model "
        f"load, label embedding and database, {100 * startup / _best(st):.0f}% of soundtag's wall time; with "
        "more clips the ratio rises towards the per-clip one.",
        "",
        f"{batches}Not in soundtag's hands here: numpy's OpenBLAS spins a second thread for about 100 ms "
        "of CPU after each multi-threaded `np.dot` (the mel projection of every window, the scores of every "
        "batch), taking a core from PyTorch; `OPENBLAS_NUM_THREADS=1` in the environment of `soundtag run` "
        "measured 12.5, 12.7 and 17.7 s against 14.1, 13.1 and 19.9 s for pairs of fp32 runs on 2026-11-29 "
        "(by hand, not by this script).",
        "",
        "### Lower precision",
        "",
        "`--dtype bf16` casts the model to bfloat16; `--dtype int8` quantizes its Linear layers "
        "dynamically (CPU only; convolutions and norms stay fp32). Differences are against soundtag's "
        "fp32 results on the same clips (the pipeline rows above stay fp32). The weights are random, so the "
        f"softmax over the labels is almost flat (every score near 1/{k}) and the fp32 top label leads the "
        f"second by a median of {margin:.1e}: any "
        "perturbation flips it, so top-1 agreement here says nothing about a trained model's; the cosine "
        "similarities show how far the embeddings move.",
        "",
        "| dtype | best s | files/s (best) | audio tower ms/clip | max abs score diff | max abs cosine diff | "
        "top-1 agreement |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dtype in ("fp32", "bf16", "int8"):
        if dtype not in r["soundtag"]:
            continue
        times = r["soundtag"][dtype]
        d = r["vs_fp32"].get(dtype, {"max_abs": 0.0, "max_abs_cos": 0.0, "top1": 1.0})
        lines.append(f"| {dtype} | {_best(times):.1f} | {n / _best(times):.2f} | {1000 * r['tower'][dtype]:.0f} | "
                     f"{d['max_abs']:.1e} | {d['max_abs_cos']:.1e} | {100 * d['top1']:.0f}% |")
    return "\n".join(lines) + "\n"


def _history() -> list[dict]:
    path = CACHE / "bench_run_history.json"
    return json.loads(path.read_text()) if path.exists() else []


def _remember(r: dict) -> None:
    """Keep this run's headline in bench/.cache/, so the next report shows how runs vary."""
    pl, st = r["pipeline"], r["soundtag"]["fp32"]
    entry = {"date": r["date"], "clips": r["clips"], "labels": r["labels"],
             "best": _best(pl) / _best(st), "median": _median(pl) / _median(st),
             "pipeline_s": [round(x, 2) for x in pl], "soundtag_s": [round(x, 2) for x in st]}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "bench_run_history.json").write_text(json.dumps(_history() + [entry], indent=1))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.bench_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--labels", type=int, default=50, choices=range(1, len(LABELS) + 1), metavar="1..50")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each process (best and median)")
    parser.add_argument("--quiet-wait", type=float, default=120.0, metavar="S",
                        help="before each timed run, wait up to S seconds for the CPUs to be 85%% idle")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6 clips, one run each of the pipeline, fp32 and int8; writes no doc")
    parser.add_argument("--no-doc", action="store_true", help="print the section, leave docs/benchmarks.md")
    args = parser.parse_args(argv)
    n, repeat, quiet_wait = (6, 1, 10.0) if args.quick else (args.clips, args.repeat, args.quiet_wait)
    labels = LABELS[: args.labels]
    variants = ["fp32", "int8"] if args.quick else list(VARIANTS)

    model = checkpoint()
    r: dict = {"clips": n, "labels": len(labels), "repeat": repeat, "log": [],
               "command": " ".join([".venv/bin/python -m bench.bench_run", *argv]),
               "soundtag": {v: [] for v in variants}, "pipeline": [], "vs_fp32": {}, "tower": {},
               "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}

    def timed(name: str, run):
        idle = wait_for_quiet(quiet_wait)
        timing, scores = run()
        r["log"].append((name, timing.wall_s, idle, timing.others_cpu_s))
        print(f"[{round_ + 1}/{repeat}] {name}: {timing.wall_s:.1f} s (CPUs {100 * idle:.0f}% idle before; "
              f"others used {timing.others_cpu_s:.1f} CPU-s meanwhile)", flush=True)
        return timing.wall_s, scores

    with tempfile.TemporaryDirectory(prefix="soundtag-bench-") as tmp:
        work = Path(tmp)
        clips = write_clips(work / "clips", n)
        r["load_before"] = loadavg()
        print(f"{n} clips, {len(labels)} labels, {repeat} runs each; load average {r['load_before']}", flush=True)
        results: dict[str, dict] = {}
        for round_ in range(repeat):
            for variant in variants:
                wall, results[variant] = timed(variant, lambda: run_soundtag(
                    model, work / "clips", labels, work / "soundtag.db", VARIANTS[variant]))
                r["soundtag"][variant].append(wall)
                if variant == "fp32":
                    wall, pipeline_scores = timed("pipeline", lambda: run_pipeline(model, clips, labels, work))
                    r["pipeline"].append(wall)
        r["parity"] = compare(results["fp32"], pipeline_scores, labels)
        for dtype in ("bf16", "int8"):
            if dtype in results:
                r["vs_fp32"][dtype] = compare(results[dtype], results["fp32"], labels, field=0)
        r["stages"] = stages(model, clips, labels, work, repeat, quiet_wait)
        print("stages: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items()), flush=True)
        for dtype in ("fp32", "bf16", "int8"):
            if dtype in variants:
                r["tower"][dtype] = audio_tower_per_clip(model, clips, dtype, repeat, quiet_wait)
        r["load_after"] = loadavg()
    r["machine"] = machine()
    r["history"] = [h for h in _history() if (h["clips"], h["labels"]) == (n, len(labels))][-5:]
    section = report(r)
    print(section)
    if not args.quick:
        _remember(r)
    if not (args.quick or args.no_doc):
        write_section("bench_run", section)
        print(f"wrote {DOC.relative_to(ROOT)}")

if __name__ == "__main__":
    main()
