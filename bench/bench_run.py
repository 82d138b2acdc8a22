"""Speed of ``soundtag run`` against the common way, ``pipeline("zero-shot-audio-classification")``
called once per clip with every candidate label, on the same clips and the same full-size CLAP.

    .venv/bin/python -m bench.bench_run              # 48 clips, 50 labels; updates docs/benchmarks.md
    .venv/bin/python -m bench.bench_run --quick      # a smoke run of a minute or two; prints only
    .venv/bin/python -m bench.bench_run --towers 2   # the audio tower alone per variant, interleaved; prints only

Both sides run as their own process and are timed whole: interpreter start, imports, model load
(and, for soundtag, the database), on the CPU, with each process's peak RSS. soundtag runs on each
backend (ONNX Runtime, torch) and dtype; the ONNX export is built once beforehand (bench/.cache/onnx)
and the prompts' kept embeddings are deleted before each run, so each run pays its text tower. The
model is a random-weight checkpoint with ``ClapConfig()``'s architecture (htsat-unfused, 153M),
built once into bench/.cache/: its scores mean nothing, its cost is the real one. Then per backend:
a cold start (one clip, a fresh database), the steady rate on ``--steady`` clips, and one long
recording; and in this process each stage of the torch path is timed alone on the same clips.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import DOC, loadavg, machine, write_section
from model.classifier import pick_backend

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
EXPORTS = CACHE / "onnx"
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
        from model.random_clap import build

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


def _openvino_here() -> tuple[bool, bool]:
    """Whether OpenVINO is installed here, and whether it computes bf16 natively on this CPU."""
    from importlib.util import find_spec

    if find_spec("openvino") is None:
        return False, False
    from model.openvino_towers import cpu_has_bf16

    return True, cpu_has_bf16()


def _cpu_bf16_flags() -> str:
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16", "amx_bf16", "amx_tile"))


OPENVINO, OPENVINO_BF16 = _openvino_here()
# Each soundtag variant: its name in the tables, the options it adds to `soundtag run`. The
# first is the default on this CPU (what --backend auto takes at fp32), the headline.
_ALL = {
    "openvino fp32": ["--backend", "openvino"],
    "onnx fp32": ["--backend", "onnx"],
    "torch fp32": ["--backend", "torch"],
    "openvino bf16": ["--backend", "openvino", "--dtype", "bf16"],
    "onnx int8": ["--backend", "onnx", "--dtype", "int8"],
    "openvino int8": ["--backend", "openvino", "--dtype", "int8"],
    "torch int8": ["--backend", "torch", "--dtype", "int8"],
    "torch bf16": ["--backend", "torch", "--dtype", "bf16"],
}
_HERE = {name: options for name, options in _ALL.items()
         if (OPENVINO or "openvino" not in name) and (OPENVINO_BF16 or name != "openvino bf16")}
_DEFAULT = f"{pick_backend('auto', 'cpu', 'fp32', str(CACHE / 'clap-full'))} fp32"
VARIANTS = {_DEFAULT: _HERE[_DEFAULT], **_HERE}
BACKENDS = ("onnx", "torch") + (("openvino",) if OPENVINO else ())
EXTRACTOR = "features with ClapFeatureExtractor"
STAGES = ("read + decode", "resample", "features (log-mel)", "audio tower", "scores + DB write")


def _env() -> dict:
    # SOUNDTAG_* from the caller's shell would change what is measured; the model is a local folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "SOUNDTAG_EXPORT_DIR": str(EXPORTS)}


def forget_prompts(model: Path) -> None:
    """Delete the prompts' kept text embeddings, so that the next run pays its text tower."""
    from model.prompt_cache import PromptCache

    PromptCache.beside(EXPORTS, str(model), "").path.unlink(missing_ok=True)


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
    """One timed process: wall seconds, the CPU seconds other processes used meanwhile, its own CPU
    seconds and peak RSS."""

    def __init__(self, wall_s: float, others_cpu_s: float, cpu_s: float = 0.0, peak_rss_mb: float = 0.0):
        self.wall_s, self.others_cpu_s, self.cpu_s, self.peak_rss_mb = wall_s, others_cpu_s, cpu_s, peak_rss_mb


def _timed(cmd: list[str]) -> Timed:
    tick = os.sysconf("SC_CLK_TCK")
    busy0, _ = _cpu_jiffies()
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        # wait4 gives this child's own resource use: its CPU time and its peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        busy1, _ = _cpu_jiffies()
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{err.read()[-3000:].decode()}")
    ours = usage.ru_utime + usage.ru_stime
    return Timed(elapsed, max(0.0, (busy1 - busy0) / tick - ours), ours, usage.ru_maxrss / 1024)


def run_soundtag(model: Path, clips: Path, labels: list[str], db: Path, options: list[str]) -> tuple[Timed, dict]:
    """Wall seconds of a whole ``soundtag run`` process on a new database, and its file results
    {name: {label: (score, similarity)}}."""
    db.unlink(missing_ok=True)
    forget_prompts(model)
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
    from model.classifier import load_classifier, score
    from model.results import FileResult, WindowResult, aggregate
    from soundtag.audio import decode, resample, windows
    from soundtag.settings import Settings
    from soundtag.sources.storage import open_local
    from soundtag.sources.walk import walk
    from soundtag.taxonomy import taxonomy_from_csv

    batch_size = 16  # Settings.batch_size's default
    out: dict[str, float] = {}
    started = time.perf_counter()
    classifier = load_classifier(str(model), EXPORTS, backend="torch", device="cpu", keep_prompts=False)
    out["model load"] = time.perf_counter() - started
    taxonomy = taxonomy_from_csv(",".join(labels))
    started = time.perf_counter()
    label_embeddings = classifier.label_embeddings(taxonomy)  # a new classifier: nothing cached
    out["text tower"] = time.perf_counter() - started
    rate = classifier.sampling_rate
    ticks = dict.fromkeys(STAGES, 0.0)
    ticks[EXTRACTOR] = 0.0
    extractor = classifier.towers.processor.feature_extractor
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
                result.segments.append(WindowResult(w.start_s, w.end_s, all_scores[at], all_similarity[at]))
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


def audio_tower_per_clip(model: Path, clips: list[Path], backend: str, dtype: str, repeat: int,
                         quiet_wait: float) -> float:
    """Seconds of audio tower per 5 s clip on ``backend`` at ``dtype`` in batches of up to 16 (the
    features computed beforehand): the best of ``repeat`` batches, after a warm-up."""
    from model.classifier import load_classifier
    from soundtag.audio import decode

    classifier = load_classifier(str(model), EXPORTS, backend=backend, device="cpu", dtype=dtype, keep_prompts=False)
    prepared = classifier.prepare([decode(p.read_bytes(), classifier.sampling_rate).samples for p in clips[:16]])
    classifier.embed_windows(prepared[:2])
    times = []
    for _ in range(repeat):
        wait_for_quiet(quiet_wait)
        started = time.perf_counter()
        classifier.embed_windows(prepared)
        times.append((time.perf_counter() - started) / len(prepared))
    return min(times)


def _best(times: list[float]) -> float:
    return min(times)


def _median(times: list[float]) -> float:
    return float(np.median(times))


HEADLINE = next(iter(VARIANTS))


def report(r: dict) -> str:
    """The markdown section for docs/benchmarks.md."""
    n, k, reps = r["clips"], r["labels"], r["repeat"]
    pl = r["pipeline"]
    st = r["soundtag"][HEADLINE]
    speedup, speedup_median = _best(pl) / _best(st), _median(pl) / _median(st)
    verdict = "**met**" if min(speedup, speedup_median) >= 10 else (
        "**borderline**: met by one measure, not the other" if max(speedup, speedup_median) >= 10 else "**not met**")
    runs = "once" if reps == 1 else f"{reps} times, interleaved"
    lines = [
        "## `soundtag run` against the zero-shot pipeline (CPU), per backend",
        "",
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}  ",
        f"Machine: {r['machine']}; CPU flags: {_cpu_bf16_flags()}  ",
        f"Load average (1, 5, 15 min) at the start: {r['load_before']}; at the end: {r['load_after']}. "
        "A shared machine: other people's test runs use the same two cores, and a run they overlap slows "
        "down far more than their share, so each timed run waits first (up to a limit) for the CPUs to be "
        "idle, the log below says how idle they were and how much CPU others took during each run, and the "
        "comparison uses each path's best run.",
        "",
        f"{n} clips of 5 s at 44.1 kHz, written for the run (WAV and FLAC, mono and stereo: tones, sweeps, "
        f"white and brown noise, tremolo, clicks, harmonics, bursts), {k} labels, one random-weight CLAP "
        "with `ClapConfig()`'s architecture (htsat-unfused, 153M parameters; model/random_clap.py). Each "
        "row is a whole process timed from start to exit: interpreter, imports, model load (the "
        "pipeline's construction), the text tower on the labels (soundtag's kept prompt embeddings are "
        "deleted before each run), and for soundtag the SQLite database. The ONNX export was built "
        f"beforehand, once, with OpenVINO's compiled towers ({r['export_s']:.0f} s: `soundtag fetch-model --export "
        f"--dtype D` for int8 and each dtype the OpenVINO rows run at). Each ran {runs}: best and median; peak RSS "
        "of the best run.",
        "",
        "| path | best s | median s | files/s (best) | vs pipeline (best) | vs pipeline (median) | CPU s (best) "
        "| vs pipeline (CPU s) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| `pipeline(\"zero-shot-audio-classification\")`, one call per clip, fp32 | {_best(pl):.1f} | "
        f"{_median(pl):.1f} | {n / _best(pl):.2f} | 1.0× | 1.0× | {r['cpu']['pipeline']:.1f} | 1.0× | "
        f"{r['rss']['pipeline']:.0f} |",
    ]
    for name, times in r["soundtag"].items():
        lines.append(f"| `soundtag run {' '.join(VARIANTS[name])}` | {_best(times):.1f} | {_median(times):.1f} | "
                     f"{n / _best(times):.2f} | {_best(pl) / _best(times):.1f}× | "
                     f"{_median(pl) / _median(times):.1f}× | {r['cpu'][name]:.1f} | "
                     f"{r['cpu']['pipeline'] / r['cpu'][name]:.1f}× | {r['rss'][name]:.0f} |")
    lines += ["", "Run log, in order: wall s (CPU idle share just before; CPU-s other processes used during the run).",
              "", "; ".join(f"{name} {wall:.1f} ({100 * idle:.0f}%; {others:.1f})"
                            for name, wall, idle, others in r["log"])]
    lines += [
        "",
        f"Target, `soundtag run` on {HEADLINE} (what `--backend auto` takes on this CPU) ≥ 10× the pipeline's "
        "files/s, fp32, "
        f"model load included: {verdict} — {speedup:.2f}× best against best, {speedup_median:.2f}× median "
        "against median. Scores against the pipeline's: max abs difference "
        + ", ".join(f"{name} {r['parity'][name]['max_abs']:.1e}" for name in r["parity"])
        + " (tests/test_clap.py holds every backend to 1e-4).",
        "",
        *(["Earlier runs of this command here (best, median): " + "; ".join(
            f"{h['date']}: {h['best']:.2f}×, {h['median']:.2f}×" for h in r["history"]) + ".", ""]
          if r.get("history") else []),
    ]
    if r.get("cold"):
        c = r["cold"]
        lines += [
            "### Cold start, steady rate, a long recording",
            "",
            "Each a whole `soundtag run` process on a fresh SQLite database, the export built. Cold start: one "
            f"clip, {k} labels, with the prompts' embeddings kept from an earlier run (a taxonomy seen "
            "before) and without (the text tower runs). Steady rate: files/s past start-up, from a run of "
            f"{r['steady_clips']} clips and the one-clip run, (N − 1) / (wall(N) − wall(1)). Long recording: "
            f"one {r['long_minutes']:.0f}-minute FLAC (44.1 kHz mono, {r['long_windows']} windows), whole process.",
            "",
            "Wall seconds, then (CPU seconds of the process itself).",
            "",
            "| backend (fp32) | cold start, prompts kept s | cold start, text tower s | "
            f"{r['steady_clips']} clips s | steady files/s (per CPU-s) | long recording s | × real time | peak RSS MB "
            f"({r['steady_clips']} clips) | peak RSS MB (long) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for backend in c:
            b = c[backend]
            steady = (r["steady_clips"] - 1) / max(1e-9, b["steady_s"] - b["cold_text_s"])
            steady_cpu = (r["steady_clips"] - 1) / max(1e-9, b["steady_cpu"] - b["cold_text_cpu"])
            lines.append(f"| {backend} | {b['cold_kept_s']:.2f} ({b['cold_kept_cpu']:.2f}) | {b['cold_text_s']:.2f} "
                         f"({b['cold_text_cpu']:.2f}) | {b['steady_s']:.1f} ({b['steady_cpu']:.1f}) | {steady:.2f} "
                         f"({steady_cpu:.2f}) | {b['long_s']:.1f} ({b['long_cpu']:.1f}) | "
                         f"{60 * r['long_minutes'] / b['long_s']:.0f}× | {b['steady_rss']:.0f} | {b['long_rss']:.0f} |")
        head_backend, tower = HEADLINE.split()[0], r["tower"].get(HEADLINE)
        if head_backend in c and tower:
            b = c[head_backend]
            per_clip = (b["steady_s"] - b["cold_text_s"]) / max(1, r["steady_clips"] - 1)
            # The steady runs are fp32, so the tower they are held to is the fastest fp32 one.
            fp32 = {variant: ms for variant, ms in r["tower"].items() if variant.endswith("fp32")}
            fastest = min(fp32.values())
            met = "**met**" if per_clip <= 1.15 * fastest else "**not met**"
            lines += ["", f"Target, steady per-clip cost ≤ 1.15× the fastest audio tower alone at the run's dtype "
                          f"(fp32): {met} — {1000 * per_clip:.0f} ms a clip on {head_backend} against "
                          f"{1000 * fastest:.0f} ms ({min(fp32, key=fp32.get)} alone), {per_clip / fastest:.2f}×."]
        onnx = c.get("onnx")
        if onnx:
            met = "**met**" if onnx["cold_kept_s"] <= 3 else "**not met**"
            lines += ["", f"Target, cold start ≤ 3 s (one clip, fresh database, export cached) on the ONNX backend: "
                          f"{met} — {onnx['cold_kept_s']:.2f} s with the taxonomy's prompts seen before, "
                          f"{onnx['cold_text_s']:.2f} s with the text tower on {k} prompts."]
        lines += ["", "Run log: " + "; ".join(f"{name} {wall:.1f} ({100 * idle:.0f}%; {others:.1f})"
                                           for name, wall, idle, others in r["cold_log"])]
    s = r.get("stages")
    if s:
        per_clip = sum(s[name] for name in STAGES)
        lines += [
            "",
            "### Where the time goes (torch backend)",
            "",
            f"Each stage of the torch path timed alone, one after the other, in one process, on the same {n} clips "
            f"({s['torch threads']} torch threads, batches of 16; each stage's best of {reps} passes). "
            "In `soundtag run` reading, decoding and features run in two threads beside the audio tower.",
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
            f"| text tower on the {k} label prompts (once) | {s['text tower']:.2f} | |",
            "",
            f"Features with transformers' `ClapFeatureExtractor` instead (a Python loop over the 1001 frames "
            f"of each window): {s[EXTRACTOR]:.2f} s, {1000 * s[EXTRACTOR] / n:.1f} ms per clip; model/log_mel.py "
            "takes the same float64 steps and its output is bit-identical.",
        ]
    lines += [
        "",
        "### Lower precision, per backend",
        "",
        "`--dtype int8` quantizes dynamically, on either backend: torch's `quantize_dynamic` on the Linear "
        "layers, ONNX Runtime's `quantize_dynamic` (QInt8 weights) on the MatMul and Gemm nodes of both "
        "exported towers; OpenVINO runs ONNX Runtime's quantized towers. `--dtype bf16`: torch's, and "
        "OpenVINO's where the CPU computes bf16 (AVX-512 BF16, AMX). Differences are against the same backend's fp32 "
        "results on the same clips. The weights are random, so the softmax over the labels is almost flat "
        f"(every score near 1/{k}) and top-1 agreement says little about a trained model's; the cosine "
        "similarities show how far the embeddings move. Audio tower ms/clip: batches of 16 prepared "
        "windows, best of the repeats, in this process.",
        "",
        "| variant | best s | files/s (best) | audio tower ms/clip | max abs score diff | max abs cosine diff | "
        "top-1 agreement |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, times in r["soundtag"].items():
        d = r["vs_fp32"].get(name, {"max_abs": 0.0, "max_abs_cos": 0.0, "top1": 1.0})
        tower = r["tower"].get(name)
        lines.append(f"| {name} | {_best(times):.1f} | {n / _best(times):.2f} | "
                     f"{'' if tower is None else f'{1000 * tower:.0f}'} | {d['max_abs']:.1e} | "
                     f"{d['max_abs_cos']:.1e} | {100 * d['top1']:.0f}% |")
    return "\n".join(lines) + "\n"


def _history() -> list[dict]:
    path = CACHE / "bench_run_history.json"
    return json.loads(path.read_text()) if path.exists() else []


def _remember(r: dict) -> None:
    """Keep this run's headline in bench/.cache/, so the next report shows how runs vary."""
    pl, st = r["pipeline"], r["soundtag"][HEADLINE]
    entry = {"date": r["date"], "clips": r["clips"], "labels": r["labels"], "backend": HEADLINE,
             "best": _best(pl) / _best(st), "median": _median(pl) / _median(st),
             "pipeline_s": [round(x, 2) for x in pl], "soundtag_s": [round(x, 2) for x in st]}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "bench_run_history.json").write_text(json.dumps(_history() + [entry], indent=1))


def export_once(model: Path, variants: list[str]) -> float:
    """Wall seconds of building the ONNX export at fp32 and int8, and OpenVINO's compiled towers at
    each dtype its variants run (about nothing once built): a deployment does it once, beforehand."""
    dtypes = dict.fromkeys(["int8"] + [v.split()[1] for v in variants if v.startswith("openvino")])
    return sum(_timed([sys.executable, "-m", "soundtag.cli", "fetch-model", str(model), "--export",
                       "--dtype", dtype]).wall_s for dtype in dtypes)


def write_long(path: Path, minutes: float) -> Path:
    """One mono FLAC of ``minutes``, the benchmark's clips one after the other."""
    import soundfile as sf

    with sf.SoundFile(path, "w", CLIP_RATE, 1, "PCM_16") as f:
        for i in range(int(minutes * 60 / CLIP_S)):
            f.write(np.clip(_clip(i)[:, 0], -1, 1))
    return path


def cold_and_steady(model: Path, clips: list[Path], labels: list[str], work: Path, steady: int,
                    long_minutes: float, quiet_wait: float, log: list) -> dict[str, dict[str, float]]:
    """Per backend at fp32: one clip with and without the prompts kept, ``steady`` clips, one long
    recording; wall seconds and peak RSS of each whole process."""
    one, many = work / "one", work / "steady"
    one.mkdir(exist_ok=True)
    shutil.copy(clips[0], one / clips[0].name)
    write_clips(many, steady)
    long_dir = work / "long"
    long_dir.mkdir(exist_ok=True)
    write_long(long_dir / "long.flac", long_minutes)
    out: dict[str, dict[str, float]] = {}

    def timed(name: str, folder: Path, backend: str, keep_prompts: bool = False) -> Timed:
        idle = wait_for_quiet(quiet_wait)
        db = work / "cold.db"
        db.unlink(missing_ok=True)
        if not keep_prompts:
            forget_prompts(model)
        timing = _timed([sys.executable, "-m", "soundtag.cli", "run", str(folder), "--labels", ",".join(labels),
                         "--model", str(model), "--database", f"sqlite:///{db}", "--device", "cpu",
                         "--backend", backend])
        log.append((f"{backend} {name}", timing.wall_s, idle, timing.others_cpu_s))
        print(f"{backend} {name}: {timing.wall_s:.2f} s, {timing.cpu_s:.1f} CPU-s, {timing.peak_rss_mb:.0f} MB "
              f"(CPUs {100 * idle:.0f}% idle "
              f"before; others {timing.others_cpu_s:.1f} CPU-s)", flush=True)
        return timing

    for backend in BACKENDS:
        text = timed("one clip, text tower", one, backend)
        kept = timed("one clip, prompts kept", one, backend, keep_prompts=True)
        many_run = timed(f"{steady} clips", many, backend)
        long_run = timed("long recording", long_dir, backend)
        out[backend] = {"cold_text_s": text.wall_s, "cold_kept_s": kept.wall_s, "steady_s": many_run.wall_s,
                        "steady_rss": many_run.peak_rss_mb, "long_s": long_run.wall_s, "long_rss": long_run.peak_rss_mb,
                        "cold_kept_cpu": kept.cpu_s, "cold_text_cpu": text.cpu_s, "steady_cpu": many_run.cpu_s,
                        "long_cpu": long_run.cpu_s}
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.bench_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--labels", type=int, default=50, choices=range(1, len(LABELS) + 1), metavar="1..50")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each process (best and median)")
    parser.add_argument("--steady", type=int, default=1000, help="clips of the steady-rate run per backend")
    parser.add_argument("--long-minutes", type=float, default=30.0, help="length of the long recording")
    parser.add_argument("--no-stages", action="store_true",
                        help="skip the in-process timings (the torch path stage by stage, the audio tower alone)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
                        help=f"soundtag variants to run (default: all of {', '.join(VARIANTS)})")
    parser.add_argument("--quiet-wait", type=float, default=120.0, metavar="S",
                        help="before each timed run, wait up to S seconds for the CPUs to be 85%% idle")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6 clips, one run each of the pipeline and the fp32 and int8 variants, "
                             "20 steady clips, a 2-minute recording; writes no doc")
    parser.add_argument("--no-doc", action="store_true", help="print the section, leave docs/benchmarks.md")
    parser.add_argument("--towers", type=int, metavar="ROUNDS",
                        help="only the audio tower alone per variant, ROUNDS rounds interleaved; prints only")
    args = parser.parse_args(argv)
    if args.towers:
        with tempfile.TemporaryDirectory(prefix="soundtag-bench-") as tmp:
            clips, model = write_clips(Path(tmp), 16), checkpoint()
            print(f"{machine()}; CPU flags: {_cpu_bf16_flags()}; load average {loadavg()}", flush=True)
            for round_ in range(args.towers):
                for variant in args.variants or VARIANTS:
                    backend, dtype = VARIANTS[variant][1], variant.split()[1]
                    seconds = audio_tower_per_clip(model, clips, backend, dtype, args.repeat, args.quiet_wait)
                    print(f"round {round_ + 1} {variant}: {1000 * seconds:.0f} ms a clip (load {loadavg()})", flush=True)
        return
    n, repeat, quiet_wait = (6, 1, 10.0) if args.quick else (args.clips, args.repeat, args.quiet_wait)
    steady, long_minutes = (20, 2.0) if args.quick else (args.steady, args.long_minutes)
    labels = LABELS[: args.labels]
    variants = args.variants or ([v for v in VARIANTS if "bf16" not in v] if args.quick else list(VARIANTS))
    if HEADLINE not in variants:
        parser.error(f"--variants must include {HEADLINE!r}, the headline")

    model = checkpoint()
    r: dict = {"clips": n, "labels": len(labels), "repeat": repeat, "log": [], "cold_log": [], "rss": {}, "cpu": {},
               "command": " ".join([".venv/bin/python -m bench.bench_run", *argv]), "steady_clips": steady,
               "long_minutes": long_minutes, "long_windows": int(long_minutes * 60 / 10),
               "soundtag": {v: [] for v in variants}, "pipeline": [], "vs_fp32": {}, "tower": {}, "parity": {},
               "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
    r["export_s"] = export_once(model, variants)

    def timed(name: str, run):
        idle = wait_for_quiet(quiet_wait)
        timing, scores = run()
        r["log"].append((name, timing.wall_s, idle, timing.others_cpu_s))
        if timing.wall_s <= min([wall for logged, wall, *_ in r["log"] if logged == name]):
            r["rss"][name], r["cpu"][name] = timing.peak_rss_mb, timing.cpu_s
        print(f"[{round_ + 1}/{repeat}] {name}: {timing.wall_s:.1f} s, {timing.cpu_s:.1f} CPU-s, "
              f"{timing.peak_rss_mb:.0f} MB (CPUs "
              f"{100 * idle:.0f}% idle before; others used {timing.others_cpu_s:.1f} CPU-s meanwhile)", flush=True)
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
                if variant == HEADLINE:
                    wall, pipeline_scores = timed("pipeline", lambda: run_pipeline(model, clips, labels, work))
                    r["pipeline"].append(wall)
        for variant in variants:
            backend = VARIANTS[variant][1]
            if variant.endswith("fp32"):
                r["parity"][variant] = compare(results[variant], pipeline_scores, labels)
            elif f"{backend} fp32" in results:
                r["vs_fp32"][variant] = compare(results[variant], results[f"{backend} fp32"], labels, field=0)
        r["cold"] = cold_and_steady(model, clips, labels, work, steady, long_minutes, quiet_wait, r["cold_log"])
        if not (args.quick or args.no_stages):
            r["stages"] = stages(model, clips, labels, work, repeat, quiet_wait)
            print("stages: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items()), flush=True)
        for variant in variants if not (args.quick or args.no_stages) else ():
            backend, dtype = VARIANTS[variant][1], variant.split()[1]
            r["tower"][variant] = audio_tower_per_clip(model, clips, backend, dtype, repeat, quiet_wait)
        r["load_after"] = loadavg()
    r["machine"] = machine()
    r["history"] = [h for h in _history() if (h["clips"], h["labels"]) == (n, len(labels))
                    and h.get("backend") == HEADLINE][-5:]
    section = report(r)
    print(section)
    if not args.quick:
        _remember(r)
    if not (args.quick or args.no_doc):
        write_section("bench_run", section)
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
