"""The ONNX Runtime backend: CLAP's towers from their export (model/onnx_export.py) on the CPU,
the tokenizer through ``tokenizers`` and the log-mel in numpy (model/log_mel.py). Imports neither
torch nor transformers: a process starts labeling in about a second. The OpenVINO backend
(model/openvino_towers.py) reads the same export and differs only in ``_open``."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from model.log_mel import LogMel
from model.onnx_layout import Export
from soundtag.errors import ModelError, first_line
from soundtag.settings import usable_cpus

# One tower opened by a runtime: its inputs by name → its first output.
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


class OnnxTowers:
    backend = "onnx"
    runtime = "ONNX Runtime"

    def __init__(self, export: Export, dtype: str = "fp32"):
        manifest = export.manifest
        self._export = export
        self._dtype = dtype
        self.revision = f"{manifest['weights']}:{'fp32' if dtype == 'fp32' else f'{dtype}-{self.backend}'}"
        self.sampling_rate: int = manifest["sampling_rate"]
        self.max_length_s: float = manifest["max_length_s"]
        self.logit_scale: float = manifest["logit_scale"]
        self._log_mel = LogMel.load(export.folder / "front_end.npz")
        # Each tower is opened on first use (a second for the full model's audio tower): a relabel
        # or a search needs no audio tower, a taxonomy whose prompts are kept no text tower.
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()

    def _open(self, path) -> Runner:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One compute thread per usable CPU (ONNX Runtime counts the machine's cores, not the
        # affinity mask a container or taskset gives).
        options.intra_op_num_threads = usable_cpus()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda inputs: session.run(None, inputs)[0]

    def _runner(self, tower: str) -> Runner:
        with self._lock:
            if tower not in self._runners:
                # bf16 is a precision the runtime computes in, not a file: it reads the fp32 towers.
                path = self._export.tower(tower, "int8" if self._dtype == "int8" else "fp32")
                try:
                    self._runners[tower] = self._open(path)
                except Exception as exc:  # noqa: BLE001 - each runtime raises its own classes for a bad file
                    raise ModelError(f"{path}: {self.runtime} cannot load it ({first_line(exc)}); delete "
                                     f"{self._export.folder} to export again") from None
                if tower == "text":
                    from tokenizers import Tokenizer

                    manifest = self._export.manifest
                    self._tokenizer = Tokenizer.from_file(str(self._export.folder / "tokenizer.json"))
                    self._tokenizer.enable_padding(pad_id=manifest["pad_id"], pad_token=manifest["pad_token"])
            return self._runners[tower]

    def prepare(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        return [self._log_mel(w) for w in windows]

    def embed_windows(self, prepared: list[np.ndarray]) -> np.ndarray:
        return self._runner("audio")({"input_features": np.stack(prepared)})

    def embed_prompts(self, texts: list[str]) -> np.ndarray:
        run = self._runner("text")
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return run({"input_ids": ids, "attention_mask": mask})
