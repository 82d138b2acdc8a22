"""ClapFeatureExtractor's log-mel for unfused checkpoints (rand_trunc, repeatpad), in numpy.

One window in whole-array calls. The extractor loops over the 1001 frames of a window in Python
(15-25 ms a window on one core; this takes 6-8 ms). It takes the same float64 steps, its rounding
of the spectrum to complex64 included, and equals the extractor bit for bit. It needs no
transformers: the Hann window and the mel filterbank are the extractor's own arrays, read from it
(``from_extractor``) or from the file an ONNX export keeps them in (``load``/``save``).

Windows longer than the model's (which the extractor crops at random) are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class LogMel:
    def __init__(self, size: int, frame: int, hop: int, window: np.ndarray, filters: np.ndarray):
        self.size = size  # samples in the model's window
        self.frame = frame
        self.hop = hop
        self.window = window  # float64, `frame` samples
        self.filters = filters  # float64, (mels, frame // 2 + 1)

    @staticmethod
    def fits(extractor) -> bool:
        """Whether ``extractor`` computes what this does (a ClapFeatureExtractor without fusion)."""
        return (type(extractor).__name__ == "ClapFeatureExtractor" and extractor.truncation == "rand_trunc"
                and extractor.padding == "repeatpad")

    @classmethod
    def from_extractor(cls, extractor) -> LogMel:
        from transformers.audio_utils import window_function

        return cls(extractor.nb_max_samples, extractor.fft_window_size, extractor.hop_length,
                   window_function(extractor.fft_window_size, "hann"), extractor.mel_filters_slaney.T)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:  # np.savez would add .npz to a name without it
            np.savez(f, size=self.size, frame=self.frame, hop=self.hop, window=self.window, filters=self.filters)

    @classmethod
    def load(cls, path: Path) -> LogMel:
        with np.load(path) as saved:
            return cls(int(saved["size"]), int(saved["frame"]), int(saved["hop"]), saved["window"], saved["filters"])

    def check(self, lengths: list[int]) -> None:
        if max(lengths) > self.size or min(lengths) == 0:
            raise ValueError(f"windows must hold 1 to {self.size} samples, not {min(lengths)}-{max(lengths)}")

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Features of one window, float32, shape (1, frames, mels)."""
        self.check([len(samples)])
        wave = np.asarray(samples, dtype=np.float64)
        if len(wave) < self.size:
            wave = np.tile(wave, int(self.size / len(wave)))
            wave = np.pad(wave, (0, self.size - len(wave)))
        padded = np.pad(wave, self.frame // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.frame)[:: self.hop]
        spectrum = np.fft.rfft(frames * self.window, axis=-1).astype(np.complex64)
        power = np.abs(spectrum, dtype=np.float64) ** 2
        mel = np.maximum(1e-10, np.dot(self.filters, power.T))
        # transformers' power_to_db as the extractor calls it (reference 1.0, no range limit),
        # written out so that this module needs no transformers: the same operations, the same bits.
        return np.asarray(10.0 * (np.log10(mel) - 0.0), dtype=np.float32).T[None]
