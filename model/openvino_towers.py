"""The OpenVINO backend: the same ONNX export as ONNX Runtime's (model/onnx_export.py), compiled
by OpenVINO for this CPU. fp32 computes in f32 (OpenVINO's own default on a CPU with bf16
instructions is bf16, which moves embeddings by about 1e-3); bf16 asks for it where the CPU has it
(AVX-512 BF16, AMX) and is refused elsewhere; int8 runs the export's dynamically quantized towers.
What OpenVINO compiles is kept in the export's folder (its model cache), so a later start imports
it instead of compiling again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from model.onnx_export import Export
from model.onnx_towers import OnnxTowers, Runner
from soundtag.errors import ModelError
from soundtag.settings import usable_cpus


def cpu_has_bf16() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenvinoTowers(OnnxTowers):
    backend = "openvino"
    runtime = "OpenVINO"

    def __init__(self, export: Export, dtype: str = "fp32"):
        import openvino

        if dtype == "bf16" and not cpu_has_bf16():
            raise ModelError("--dtype bf16: this CPU has no bf16 instructions (AVX-512 BF16 or AMX) for OpenVINO; "
                             "use --dtype fp32")
        super().__init__(export, dtype)
        self._core = openvino.Core()
        self._cache = export.folder / "openvino-cache"
        # Compiling the full model's towers takes seconds at each start; importing the compiled
        # blobs a fraction of that (docs/benchmarks.md). A read-only export just compiles.
        self._caching = os.access(export.folder, os.W_OK)
        if self._caching:
            self._cache.mkdir(exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(self._cache)})

    def _open(self, path: Path) -> Runner:
        from contextlib import nullcontext

        from filelock import FileLock

        # One process compiles and writes the blob; workers starting beside it wait and import it.
        with FileLock(str(self._cache / "compiling.lock")) if self._caching else nullcontext():
            compiled = self._core.compile_model(str(path), "CPU", {
                "INFERENCE_PRECISION_HINT": "bf16" if self._dtype == "bf16" else "f32",
                "INFERENCE_NUM_THREADS": usable_cpus(),
            })

        def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
            # A request per call: a compiled model's own request is not safe across threads, and
            # the output tensor belongs to the request.
            return compiled.create_infer_request().infer(inputs)[0].copy()

        return run


def compile_ahead(export: Export, dtype: str) -> Path | None:
    """Compile both towers at ``dtype`` once, so OpenVINO keeps them in the export's folder for
    every process that starts after (``soundtag fetch-model --export``); None where OpenVINO is not
    installed or cannot run ``dtype`` here."""
    try:
        towers = OpenvinoTowers(export, dtype)
    except (ImportError, ModelError):
        return None
    towers.embed_prompts(["a sound"])
    towers.embed_windows(towers.prepare([np.zeros(int(towers.sampling_rate * towers.max_length_s), np.float32)]))
    return towers._cache
