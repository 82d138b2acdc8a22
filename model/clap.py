"""The torch backend (model/classifier.py's ``Towers``): a CLAP checkpoint loaded through
transformers on the CPU, a CUDA GPU or MPS, in fp32, fp16, bf16 or int8 (dynamic quantization)."""

from __future__ import annotations

import numpy as np
import torch

from model.log_mel import LogMel
from soundtag import hub
from soundtag.errors import ModelError, first_line

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: str) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def check_device(device: str) -> None:
    """Raises ModelError unless this machine has ``device`` (auto always resolves)."""
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available():
            raise ModelError(f"--device {device}: no CUDA GPU is visible here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or auto")
        if index >= torch.cuda.device_count():
            raise ModelError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")


class TorchTowers:
    """A loaded CLAP checkpoint. ``embed_windows`` and ``embed_audio`` belong to one thread."""

    backend = "torch"

    def __init__(self, model: str, device: str = "auto", dtype: str = "fp32", *, stamp: str):
        from transformers import ClapModel, ClapProcessor
        from transformers.utils import logging as hf_logging

        # Loading bars and load reports are noise in worker logs and under soundtag's own progress.
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self.name = model
        check_device(device)
        self.device = pick_device(device)
        # A cached hub model loads without asking the hub first: an unreachable hub would
        # otherwise cost minutes of retries before the cache is used.
        local = hub.is_local(model) or hub.in_cache(model)
        try:
            self.processor = ClapProcessor.from_pretrained(self.name, local_files_only=local)
            loaded = ClapModel.from_pretrained(self.name, dtype=torch.float32, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {model}: cannot load: {first_line(exc)}") from None
        self.revision = f"{stamp}:{dtype}"
        self.dtype_name = dtype
        if dtype == "int8":
            if self.device.type != "cpu":
                raise ModelError("dtype int8 (dynamic quantization) runs on the CPU only")
            # Only the linear layers are quantized; the convolutions and norms keep fp32.
            loaded = torch.ao.quantization.quantize_dynamic(loaded, {torch.nn.Linear}, dtype=torch.qint8)
            self.dtype = torch.float32
        else:
            self.dtype = _DTYPES[dtype]
            loaded = loaded.to(self.device, dtype=self.dtype)
        self.model = loaded.eval()
        extractor = self.processor.feature_extractor
        self.sampling_rate: int = extractor.sampling_rate
        self.max_length_s: float = float(extractor.max_length_s)
        self.logit_scale = float(self.model.logit_scale_a.detach().float().exp())
        self._log_mel = _LogMel(LogMel.from_extractor(extractor)) if LogMel.fits(extractor) else None
        # On the CPU the numpy log-mel, in the decode threads: it equals the extractor bit for bit,
        # and took 15.7 ms a 5 s clip on one core where torch's, with the float64 FFT that parity
        # needs (see _LogMel), took 38.9 ms (bench/bench_feed.py, docs/benchmarks.md). Apple's MPS
        # has no float64, so there too the CPU computes it.
        self.mel_on_device = self.device.type == "cuda"

    def prepare(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """What the decode threads hand to ``embed_windows`` for raw mono windows at the model's
        rate, none longer than the model's window: for a CUDA GPU the windows themselves, whose
        log-mel the GPU computes in batches; otherwise their log-mel features, computed here, on the
        CPU. Safe in threads."""
        if self._log_mel is None:
            # Fused checkpoints (4-channel fusion features): the extractor's own numpy path.
            out = self.processor.feature_extractor(windows, sampling_rate=self.sampling_rate, return_tensors="np")
            return list(out["input_features"].astype(np.float32, copy=False))
        if not self.mel_on_device:
            return [self._log_mel.numpy(w) for w in windows]
        return [np.asarray(w, dtype=np.float32) for w in windows]

    @torch.inference_mode()
    def features(self, prepared: list[np.ndarray]) -> torch.Tensor:
        """The batch of log-mel features on the model's device, float32, shape (windows, channels,
        frames, mels), from what ``prepare`` returned: computed there from raw windows."""
        if prepared[0].ndim == 1:
            return self._log_mel.torch(prepared, self.device)
        return torch.from_numpy(np.stack(prepared)).to(self.device)

    @torch.inference_mode()
    def embed_windows(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Unit-norm audio embeddings of a batch of windows, from what ``prepare`` returned:
        features and audio tower on the model's device."""
        return self.embed_audio(self.features(prepared))

    @torch.inference_mode()
    def embed_audio(self, features: torch.Tensor) -> np.ndarray:
        """Unit-norm audio embeddings for a batch of features (from ``features``)."""
        inputs = features.to(self.device, dtype=self.dtype)
        # is_longer only switches on feature fusion for clips longer than the window; windows never
        # are, and the extractor's habit of flagging a random clip as longer would make results random.
        is_longer = torch.zeros((len(inputs), 1), dtype=torch.bool, device=self.device)
        out = self.model.get_audio_features(input_features=inputs, is_longer=is_longer)
        return out.pooler_output.float().cpu().numpy()

    @torch.inference_mode()
    def embed_prompts(self, texts: list[str]) -> np.ndarray:
        tokens = self.processor.tokenizer(texts, padding=True, return_tensors="pt")
        return self.model.get_text_features(**tokens.to(self.device)).pooler_output.float().cpu().numpy()


class _LogMel:
    """model/log_mel.py's log-mel two ways: ``numpy``, one window in the decode threads; ``torch``,
    a batch of raw windows on the model's device, repeat-padded there. A GPU computes it in a
    fraction of a millisecond a window, where the CPU would spend 6-9 ms a window feeding it.
    The FFT is float64, as the extractor's: a float32 FFT's rounding error follows the whole frame's
    energy, and in the quiet bands of a clean tone it moved features by up to 0.12 dB; with it, the
    features stay within 1e-4 of the extractor's (tests/test_clap.py). The rest is float32."""

    def __init__(self, log_mel: LogMel):
        self.numpy = log_mel
        self.size, self.frame, self.hop = log_mel.size, log_mel.frame, log_mel.hop
        self.window, self.filters = log_mel.window, log_mel.filters
        self._check = log_mel.check
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def torch(self, windows: list[np.ndarray], device: torch.device) -> torch.Tensor:
        lengths = [len(w) for w in windows]
        self._check(lengths)
        if device not in self._on:
            self._on[device] = (torch.from_numpy(self.window).to(device),
                                torch.from_numpy(self.filters.T).float().to(device))
        window, filters = self._on[device]
        # One host-to-device copy for the whole batch; the repeat-padding happens on the device.
        flat = torch.from_numpy(np.concatenate(windows).astype(np.float32, copy=False)).to(device)
        rows = []
        for wave in flat.split(lengths):
            if len(wave) < self.size:
                repeats = self.size // len(wave)
                wave = torch.nn.functional.pad(wave.repeat(repeats), (0, self.size - repeats * len(wave)))
            rows.append(wave)
        half = self.frame // 2
        padded = torch.nn.functional.pad(torch.stack(rows)[:, None], (half, half), mode="reflect")[:, 0]
        frames = padded.double().unfold(-1, self.frame, self.hop) * window
        spectrum = torch.view_as_real(torch.fft.rfft(frames).to(torch.complex64))
        mel = torch.matmul(spectrum.square().sum(-1), filters).clamp_(min=1e-10)
        # transformers' power_to_db as the extractor calls it: reference 1.0, no top_db.
        return (10.0 * torch.log10(mel))[:, None]

