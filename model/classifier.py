"""The classifier: CLAP's two towers behind one interface, label embeddings, scores.

Three backends run the towers (``Towers``): torch (model/clap.py: CPU, CUDA, MPS; fp32, fp16,
bf16, int8), ONNX Runtime (model/onnx_towers.py: the CPU; fp32, int8) and OpenVINO
(model/openvino_towers.py: the CPU, from the same ONNX export; fp32, bf16, int8), chosen by one
setting, ``backend``. ``auto`` takes the fastest installed CPU runtime on the CPU, where either
starts in about a second without torch and transformers, and torch on a GPU. Windows, scores and
rows above do not know which ran.

Scores follow ``pipeline("zero-shot-audio-classification")`` exactly: the softmax over labels of
``exp(logit_scale_a) * cos(audio, text)``. Label embeddings are computed once per taxonomy, and each
prompt's text embedding once per model, revision and machine (model/prompt_cache.py).
"""

from __future__ import annotations

import json
import os
import platform
import re
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import Engine

from db.jobs import JobSpec
from db.taxonomies import label_embeddings as stored_label_embeddings, save_label_embeddings
from model.prompt_cache import PromptCache
from soundtag import hub
from soundtag.errors import ModelError
from soundtag.settings import Settings
from soundtag.taxonomy import Taxonomy


class Towers(Protocol):
    """What a backend runs: audio windows → embeddings, prompts → embeddings (unit-norm rows)."""

    backend: str  # "torch", "onnx" or "openvino"
    revision: str  # the weights' stamp and what the backend did to them (dtype), stored with vectors
    sampling_rate: int
    max_length_s: float
    logit_scale: float

    def prepare(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """What the decode threads hand to ``embed_windows`` for raw mono windows at the model's
        rate, none longer than the model's window. Safe in threads."""

    def embed_windows(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Unit-norm audio embeddings of a batch of windows, from what ``prepare`` returned."""

    def embed_prompts(self, texts: list[str]) -> np.ndarray:
        """Unit-norm text embedding of each text."""


class Classifier:
    """A CLAP checkpoint on one backend. ``embed_windows`` belongs to one thread."""

    def __init__(self, name: str, towers: Towers, prompts: PromptCache | None = None):
        self.name = name
        self.towers = towers
        self.backend = towers.backend
        self.revision = towers.revision
        self.sampling_rate = towers.sampling_rate
        self.max_length_s = towers.max_length_s
        self.logit_scale = towers.logit_scale
        self.prepare = towers.prepare
        self.embed_windows = towers.embed_windows
        self._prompts = prompts
        self._label_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def label_embeddings(self, taxonomy: Taxonomy) -> np.ndarray:
        """Unit-norm text embedding per label (prompts averaged), cached per taxonomy content."""
        key = taxonomy.content_hash
        with self._lock:
            cached = self._label_cache.get(key)
            if cached is None:
                cached = self._label_cache[key] = self._embed_labels(taxonomy.prompts())
        return cached

    def embed_text(self, text: str) -> np.ndarray:
        """Unit-norm text embedding of one free text (a search query), as labels are embedded."""
        return self._embed_labels([[text]])[0]

    def _embed_labels(self, prompts: list[list[str]]) -> np.ndarray:
        texts = list(dict.fromkeys(text for group in prompts for text in group))
        known = self._prompts.get(texts) if self._prompts else {}
        todo = [text for text in texts if text not in known]
        for start in range(0, len(todo), 256):
            batch = todo[start : start + 256]
            computed = dict(zip(batch, self.towers.embed_prompts(batch)))
            known.update(computed)
            if self._prompts:
                self._prompts.put(computed)
        labels = []
        for group in prompts:
            mean = np.mean([known[text] for text in group], axis=0)
            labels.append(mean / np.linalg.norm(mean))
        return np.stack(labels)


def score(audio: np.ndarray, labels: np.ndarray, logit_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores and cosine similarities, shape (windows, labels)."""
    similarity = audio.astype(np.float64) @ labels.astype(np.float64).T
    logits = similarity * logit_scale
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True), similarity


def check_device(device: str) -> None:
    """Raises ModelError unless this machine has ``device`` (auto and cpu always resolve; only
    the others need torch to tell)."""
    if device not in ("auto", "cpu"):
        from model.clap import check_device as check_torch_device

        check_torch_device(device)


def pick_backend(backend: str, device: str, dtype: str, model: str) -> str:
    """The backend that runs ``model`` at ``device`` and ``dtype``: the one asked for, or for
    ``auto`` the fastest installed one on this host: OpenVINO on an x86 CPU (fp32, and bf16 where
    the CPU has it), else ONNX Runtime on the CPU (fp32, int8), and torch where only torch
    goes (a GPU, MPS, fp16, bf16 without CPU support, a fused checkpoint). Raises ModelError for
    combinations the backend asked for does not run here."""
    if backend in ("onnx", "openvino"):
        dtypes = ("fp32", "int8") if backend == "onnx" else ("fp32", "bf16", "int8")
        if device not in ("auto", "cpu"):
            raise ModelError(f"--backend {backend} runs on the CPU only; use --backend torch for --device {device}")
        if dtype not in dtypes:
            raise ModelError(f"--backend {backend} runs {', '.join(dtypes)} only; use --backend torch for --dtype {dtype}")
        if backend == "openvino" and not _installed("openvino"):
            raise ModelError("--backend openvino: the openvino package is not installed here; "
                             "pip install 'soundtag[openvino]', or use --backend onnx")
        return backend
    if backend == "torch":
        return "torch"
    on_cpu = device == "cpu" or (device == "auto" and not _cuda_likely())
    if not (on_cpu and _unfused(model)):
        return "torch"
    if _openvino_leads(dtype):
        return "openvino"
    return "onnx" if dtype in ("fp32", "int8") else "torch"


def _openvino_leads(dtype: str) -> bool:
    """Whether OpenVINO is installed and outruns the other runtimes here at ``dtype``: fp32 on
    x86, where it was measured (docs/benchmarks.md), and bf16 where the CPU computes it natively.
    Not int8: it runs ONNX Runtime's dynamically quantized towers at half ONNX Runtime's speed."""
    if (dtype not in ("fp32", "bf16") or platform.machine().lower() not in ("x86_64", "amd64")
            or not _installed("openvino")):
        return False
    if dtype == "fp32":
        return True
    from model.openvino_towers import cpu_has_bf16

    return cpu_has_bf16()


def _installed(package: str) -> bool:
    try:
        return find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _cuda_likely() -> bool:
    """Whether torch would find a CUDA GPU, without importing torch (2 s): a CUDA build of torch
    and an NVIDIA device. The torch backend then asks torch itself."""
    try:
        spec = find_spec("torch")
    except (ImportError, ValueError):  # a torch that cannot be imported here
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    version = Path(next(iter(spec.submodule_search_locations)), "version.py")
    try:
        cuda_build = re.search(r"^cuda\b.*=\s*'", version.read_text(), re.MULTILINE) is not None
    except OSError:
        return False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return cuda_build and visible not in ("", "-1") and Path("/dev/nvidia0").exists()


def _unfused(model: str) -> bool:
    """Whether the checkpoint's feature extractor is the unfused one model/log_mel.py computes;
    True when its config is not on this machine yet (the export then checks)."""
    # The hub's checkpoints keep it in preprocessor_config.json; transformers 5 saves processor_config.json.
    for name in ("preprocessor_config.json", "processor_config.json"):
        if hub.is_local(model):
            path = Path(model).expanduser() / name
        else:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, name)
            path = Path(found) if isinstance(found, str) else None
        try:
            config = json.loads(path.read_text()) if path else None
        except (OSError, ValueError):
            config = None
        if config is not None:
            break
    else:
        return True
    config = config.get("feature_extractor", config)
    return config.get("truncation", "rand_trunc") == "rand_trunc" and config.get("padding", "repeatpad") == "repeatpad"


def load_classifier(model: str, export_dir: Path, *, backend: str = "auto", device: str = "auto",
                    dtype: str = "fp32", keep_prompts: bool = True) -> Classifier:
    """``model`` (a local folder or a cached hub id) loaded on the backend ``pick_backend``
    chooses. ONNX Runtime exports the towers on first use into ``export_dir`` (with a one-line
    notice); prompts' text embeddings are kept there too unless ``keep_prompts`` is False.
    Raises ModelError when the model cannot load."""
    check_device(device)
    chosen = pick_backend(backend, device, dtype, model)
    if chosen == "onnx":
        from model.onnx_export import exported
        from model.onnx_towers import OnnxTowers

        towers: Towers = OnnxTowers(exported(model, dtype, export_dir), dtype)
    elif chosen == "openvino":
        from model.onnx_export import exported
        from model.openvino_towers import OpenvinoTowers

        # OpenVINO computes bf16 from the fp32 towers; int8 reads the export's quantized ones.
        towers = OpenvinoTowers(exported(model, "int8" if dtype == "int8" else "fp32", export_dir), dtype)
    else:
        from model.clap import TorchTowers
        from model.weights import weights_stamp

        towers = TorchTowers(model, device, dtype, stamp=weights_stamp(model, export_dir))
    prompts = PromptCache.beside(export_dir, model, towers.revision) if keep_prompts else None
    return Classifier(model, towers, prompts)


_cache_lock = threading.Lock()
_classifiers: dict[tuple, Classifier] = {}


def classifier_for(model: str, settings: Settings) -> Classifier:
    key = (model, settings.backend, settings.device, settings.dtype, settings.export_dir)
    with _cache_lock:
        if key not in _classifiers:
            _classifiers[key] = load_classifier(model, settings.export_dir, backend=settings.backend,
                                                device=settings.device, dtype=settings.dtype)
        return _classifiers[key]


def label_embeddings(engine: Engine, classifier: Classifier, spec: JobSpec):
    """The taxonomy's label embeddings: stored ones when this model computed them before (a
    repeated run skips the text tower), else computed now and stored."""
    vectors = stored_label_embeddings(engine, spec.model, classifier.revision, spec.taxonomy_id)
    if vectors is None:
        vectors = classifier.label_embeddings(spec.taxonomy)
        save_label_embeddings(engine, spec.model, classifier.revision, spec.taxonomy_id, vectors)
    return vectors
