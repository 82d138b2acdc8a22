"""The ONNX Runtime backend: CLAP's towers from their export (model/onnx_export.py) on the CPU,
the tokenizer through ``tokenizers`` and the log-mel in numpy (model/log_mel.py). Imports neither
torch nor transformers: a process starts labeling in about a second."""

from __future__ import annotations

import threading

import numpy as np

from model.log_mel import LogMel
from model.onnx_layout import Export
from soundtag.errors import ModelError, first_line
from soundtag.settings import usable_cpus


class OnnxTowers:
    backend = "onnx"

    def __init__(self, export: Export, dtype: str = "fp32"):
        import onnxruntime

        manifest = export.manifest
        self._export = export
        self._dtype = dtype
        self.revision = f"{manifest['weights']}:{'fp32' if dtype == 'fp32' else dtype + '-onnx'}"
        self.sampling_rate: int = manifest["sampling_rate"]
        self.max_length_s: float = manifest["max_length_s"]
        self.logit_scale: float = manifest["logit_scale"]
        self._log_mel = LogMel.load(export.folder / "front_end.npz")
        self._options = onnxruntime.SessionOptions()
        # One compute thread per usable CPU (ONNX Runtime counts the machine's cores, not the
        # affinity mask a container or taskset gives).
        self._options.intra_op_num_threads = usable_cpus()
        # Each session is made on first use (a second for the full model's audio tower): a relabel
        # or a search needs no audio tower, a taxonomy whose prompts are kept no text tower.
        self._sessions: dict = {}
        self._lock = threading.Lock()

    def _session(self, tower: str):
        import onnxruntime

        with self._lock:
            if tower not in self._sessions:
                path = self._export.tower(tower, self._dtype)
                try:
                    self._sessions[tower] = onnxruntime.InferenceSession(str(path), self._options,
                                                                         providers=["CPUExecutionProvider"])
                except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own classes for a bad file
                    raise ModelError(f"{path}: ONNX Runtime cannot load it ({first_line(exc)}); delete "
                                     f"{self._export.folder} to export again") from None
                if tower == "text":
                    from tokenizers import Tokenizer

                    manifest = self._export.manifest
                    self._tokenizer = Tokenizer.from_file(str(self._export.folder / "tokenizer.json"))
                    self._tokenizer.enable_padding(pad_id=manifest["pad_id"], pad_token=manifest["pad_token"])
            return self._sessions[tower]

    def prepare(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        return [self._log_mel(w) for w in windows]

    def embed_windows(self, prepared: list[np.ndarray]) -> np.ndarray:
        return self._session("audio").run(None, {"input_features": np.stack(prepared)})[0]

    def embed_prompts(self, texts: list[str]) -> np.ndarray:
        session = self._session("text")
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
