"""The ONNX Runtime backend on the tiny random CLAP: the export built once and reused, built again
when damaged, built offline from a local folder; a run that never imports torch nor transformers;
prompts' embeddings kept across databases; a fleet worker on it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model import onnx_build
from model.classifier import load_classifier, pick_backend
from model.onnx_export import folder_for
from soundtag.errors import ModelError
from soundtag.taxonomy import taxonomy_from_csv
from tests.audio_files import write
from tests.conftest import ROOT, query, soundtag

LABELS = "dog barking,rain,siren"


@pytest.fixture
def builds(monkeypatch):
    """Counts the exports built (in this process)."""
    built = []
    real = onnx_build.build

    def counted(model, folder, stamp):
        built.append(folder)
        real(model, folder, stamp)

    monkeypatch.setattr(onnx_build, "build", counted)
    return built


def _embeddings(classifier, seed=0):
    rng = np.random.default_rng(seed)
    return classifier.embed_windows(classifier.prepare([rng.standard_normal(48000 * 3).astype(np.float32)]))


def test_export_is_built_once_then_reused_with_the_torch_fingerprint(tiny_clap, tmp_path, builds):
    first = load_classifier(str(tiny_clap), tmp_path, backend="onnx")
    again = load_classifier(str(tiny_clap), tmp_path, backend="onnx")
    assert len(builds) == 1
    folder = folder_for(str(tiny_clap), tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"audio.onnx", "audio.onnx.data", "text.onnx", "text.onnx.data", "tokenizer.json",
            "front_end.npz"} <= manifest["files"].keys()
    assert manifest["sampling_rate"] == 48000 and manifest["max_length_s"] == 10.0
    np.testing.assert_array_equal(_embeddings(first), _embeddings(again))
    # fp32 on either backend is one fingerprint: stored embeddings are shared (they agree to 1e-6).
    torch_one = load_classifier(str(tiny_clap), tmp_path, backend="torch", device="cpu")
    assert first.revision == torch_one.revision and first.backend == "onnx" and torch_one.backend == "torch"
    np.testing.assert_allclose(_embeddings(first), _embeddings(torch_one), atol=1e-5)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_bytes(path):
    data = bytearray(path.read_bytes())
    middle = slice(len(data) // 2, len(data) // 2 + 64)
    data[middle] = bytes(255 - byte for byte in data[middle])  # same size, a block of weights inverted
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, name", [(_truncate, "audio.onnx.data"), (_other_bytes, "audio.onnx.data"),
                                          (lambda path: path.unlink(), "audio.onnx"), (_truncate, "manifest.json")],
                         ids=["weights truncated", "weights of the same size, other bytes", "graph missing",
                              "manifest truncated"])
def test_a_damaged_export_is_built_again(tiny_clap, tmp_path, builds, damage, name):
    expected = _embeddings(load_classifier(str(tiny_clap), tmp_path, backend="onnx"))
    folder = folder_for(str(tiny_clap), tmp_path)
    damage(folder / name)
    rebuilt = load_classifier(str(tiny_clap), tmp_path, backend="onnx")
    assert len(builds) == 2
    np.testing.assert_array_equal(_embeddings(rebuilt), expected)


def test_weights_with_other_bytes_but_the_same_size_and_mtime_are_exported_again(tiny_clap, tmp_path, builds):
    import shutil

    model = tmp_path / "clap"
    shutil.copytree(tiny_clap, model)
    exports = tmp_path / "exports"
    before = load_classifier(str(model), exports, backend="onnx")
    weights = model / "model.safetensors"
    stat = weights.stat()
    _other_bytes(weights)  # in place: the same inode
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = load_classifier(str(model), exports, backend="onnx")
    assert len(builds) == 2 and builds[0] != builds[1]
    assert after.revision != before.revision  # nor are vectors or prompts made from the old bytes reused
    assert after.revision == load_classifier(str(model), exports, backend="torch", device="cpu").revision
    load_classifier(str(model), exports, backend="onnx")
    assert len(builds) == 2  # as they are now, the new export is kept


def test_fetch_model_exports_a_local_folder_offline_with_its_int8_towers(tiny_clap, tmp_path):
    exports = tmp_path / "exports"
    proc = soundtag("fetch-model", str(tiny_clap), "--export", "--dtype", "int8",
                    env={"SOUNDTAG_EXPORT_DIR": str(exports), "HF_HUB_OFFLINE": "1"})
    folder = folder_for(str(tiny_clap), exports)
    assert f"exported to ONNX in {folder}" in proc.stderr
    towers = {"audio.onnx", "text.onnx", "audio-int8.onnx", "text-int8.onnx"}
    # Where OpenVINO is installed it compiles the towers at that dtype once, into its cache there.
    openvino = importlib.util.find_spec("openvino") is not None
    assert {p.name for p in folder.iterdir()} == {*towers, *(f"{t}.data" for t in towers), "tokenizer.json",
                                                  "front_end.npz", "manifest.json", *["openvino-cache"] * openvino}
    assert (f"compiled by OpenVINO at int8 into {folder / 'openvino-cache'}" in proc.stderr) == openvino
    assert not openvino or len(list((folder / "openvino-cache").iterdir())) >= 2  # both towers
    int8 = load_classifier(str(tiny_clap), exports, backend="onnx", dtype="int8")
    assert int8.revision.endswith(":int8-onnx")
    scores = int8.label_embeddings(taxonomy_from_csv(LABELS)) @ _embeddings(int8)[0]
    assert np.isfinite(scores).all()


# Importing torch or transformers (or anything under them) fails in the process this starts.
_NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} imported on the onnx backend")

sys.meta_path.insert(0, NoTorch())
sys.argv = ["soundtag", *sys.argv[1:]]
from soundtag.cli import main
main()
"""


def _run_without_torch(*args, env=None):
    return subprocess.run([sys.executable, "-c", _NO_TORCH, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=300)


def test_a_run_on_the_onnx_backend_imports_neither_torch_nor_transformers(tiny_clap, tmp_path, export_dir, sqlite_url):
    load_classifier(str(tiny_clap), export_dir, backend="onnx")  # the export exists
    write(tmp_path / "archive" / "a.wav", seconds=3.0)
    write(tmp_path / "archive" / "b.flac", seconds=12.0, rate=22050, channels=2)
    # auto: ONNX Runtime on this CPU machine; a label never embedded before: the exported text tower.
    args = ["run", str(tmp_path / "archive"), "--labels", LABELS + ",a sound nobody embedded before",
            "--model", str(tiny_clap), "--database", sqlite_url]
    proc = _run_without_torch(*args)
    assert proc.returncode == 0 and "2 labeled, 0 failed" in proc.stderr, proc.stderr
    assert query(sqlite_url, "select count(*) from file_labels")[0][0] == 2 * 4
    # Relabel and search run the text tower alone, without torch too.
    common = ["--model", str(tiny_clap), "--database", sqlite_url]
    relabeled = _run_without_torch("relabel", "--labels", "wind,a new label", *common)
    assert relabeled.returncode == 0 and "2 relabeled" in relabeled.stderr, relabeled.stderr
    found = _run_without_torch("search", "another sentence never seen", "--json", *common)
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 3, found.stderr  # a.wav 1 window, b.flac 2
    # The same guard makes the torch backend fail: it does stop torch.
    failed = _run_without_torch(*args, "--backend", "torch", "--force")
    assert failed.returncode == 1 and "imported on the onnx backend" in failed.stderr


def test_prompt_embeddings_are_kept_across_databases_per_model_revision_and_prompt(tiny_clap, tmp_path, monkeypatch):
    first = load_classifier(str(tiny_clap), tmp_path, backend="onnx")
    expected = first.label_embeddings(taxonomy_from_csv(LABELS))
    fresh = load_classifier(str(tiny_clap), tmp_path, backend="onnx")  # a new process's classifier
    asked = []
    real = fresh.towers.embed_prompts
    monkeypatch.setattr(fresh.towers, "embed_prompts", lambda texts: asked.append(texts) or real(texts))
    np.testing.assert_array_equal(fresh.label_embeddings(taxonomy_from_csv(LABELS)), expected)
    assert asked == []
    fresh.label_embeddings(taxonomy_from_csv(LABELS + ",thunder"))
    assert asked == [["This is a sound of thunder."]]
    int8 = load_classifier(str(tiny_clap), tmp_path, backend="onnx", dtype="int8")  # another revision
    monkeypatch.setattr(int8.towers, "embed_prompts", lambda texts: asked.append(texts) or real(texts))
    int8.label_embeddings(taxonomy_from_csv("rain"))
    assert asked[-1] == ["This is a sound of rain."]


HOSTS = {  # (machine, openvino installed, CPU computes bf16)
    "x86 with openvino, bf16 CPU": ("x86_64", True, True),
    "x86 with openvino, no bf16": ("x86_64", True, False),
    "x86 without openvino": ("x86_64", False, False),
    "arm with openvino": ("aarch64", True, True),
}


@pytest.mark.parametrize("host, device, dtype, expected", [
    ("x86 with openvino, bf16 CPU", "cpu", "fp32", "openvino"), ("x86 with openvino, bf16 CPU", "auto", "int8", "onnx"),
    ("x86 with openvino, bf16 CPU", "cpu", "bf16", "openvino"), ("x86 with openvino, no bf16", "cpu", "fp32", "openvino"),
    ("x86 with openvino, no bf16", "cpu", "bf16", "torch"), ("x86 without openvino", "cpu", "fp32", "onnx"),
    ("x86 without openvino", "auto", "int8", "onnx"), ("x86 without openvino", "cpu", "bf16", "torch"),
    ("arm with openvino", "cpu", "fp32", "onnx"), ("arm with openvino", "cpu", "bf16", "torch"),
    ("x86 with openvino, bf16 CPU", "cpu", "fp16", "torch"), ("x86 with openvino, bf16 CPU", "cuda", "fp32", "torch"),
    ("x86 with openvino, bf16 CPU", "mps", "fp32", "torch"),
])
def test_auto_takes_the_fastest_cpu_runtime_installed_on_the_host_and_torch_where_only_torch_goes(
        tiny_clap, monkeypatch, host, device, dtype, expected):
    from model import classifier, openvino_towers

    machine, installed, bf16 = HOSTS[host]
    monkeypatch.setattr(classifier.platform, "machine", lambda: machine)
    real_installed = classifier._installed
    monkeypatch.setattr(classifier, "_installed", lambda name: installed if name == "openvino" else real_installed(name))
    monkeypatch.setattr(openvino_towers, "cpu_has_bf16", lambda: bf16)
    assert pick_backend("auto", device, dtype, str(tiny_clap)) == expected


def test_auto_on_this_host_takes_openvino_where_it_is_installed_on_x86(tiny_clap):
    import platform
    from importlib.util import find_spec

    x86_openvino = platform.machine() in ("x86_64", "AMD64") and find_spec("openvino") is not None
    assert pick_backend("auto", "cpu", "fp32", str(tiny_clap)) == ("openvino" if x86_openvino else "onnx")


def test_auto_takes_torch_for_a_fused_checkpoint_and_onnx_refuses_what_it_cannot_run(tiny_clap, tmp_path):
    fused = tmp_path / "fused"
    fused.mkdir()
    config = json.loads((tiny_clap / "processor_config.json").read_text())
    config["feature_extractor"]["truncation"] = "fusion"
    (fused / "processor_config.json").write_text(json.dumps(config))
    assert pick_backend("auto", "cpu", "fp32", str(fused)) == "torch"
    with pytest.raises(ModelError, match="--backend onnx runs on the CPU only"):
        pick_backend("onnx", "cuda", "fp32", str(tiny_clap))
    with pytest.raises(ModelError, match="runs fp32, int8 only"):
        pick_backend("onnx", "cpu", "bf16", str(tiny_clap))
    with pytest.raises(ModelError, match="--backend openvino runs fp32, bf16, int8 only"):
        pick_backend("openvino", "cpu", "fp16", str(tiny_clap))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_worker_labels_a_job_on_the_backend_it_is_given(tmp_path, celery_env, workers, backend):
    env = {**celery_env, "SOUNDTAG_EXPORT_DIR": str(tmp_path / "exports")}
    for i in range(3):
        write(tmp_path / "archive" / f"clip{i}.wav", seconds=4.0, rate=22050, freq=200.0 + 50 * i)
    soundtag("fetch-model", "--export", env=env)  # as a fleet prepares its shared cache once
    worker = workers(env, "--backend", backend)
    job = soundtag("enqueue", str(tmp_path / "archive"), "--labels", LABELS, env=env).stdout.strip().splitlines()[-1]
    assert "3 done, 0 failed" in soundtag("status", job, "--wait", env=env).stdout
    assert "exporting" not in worker.log()
    # The solo pool runs tasks in the worker process itself: the libraries mapped in it say which ran.
    maps = open(f"/proc/{worker.proc.pid}/maps").read()
    assert ("libtorch" in maps, "onnxruntime" in maps) == ((False, True) if backend == "onnx" else (True, False))
