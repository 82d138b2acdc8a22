"""The common way, for the speed benchmark: ``pipeline("zero-shot-audio-classification")`` called
once per clip with every candidate label, as its documentation shows.

    python -m bench.pipeline_baseline MODEL LABELS_FILE OUT_JSON CLIP...

LABELS_FILE holds one label per line. Each clip is read with soundfile, downmixed and resampled
with soxr to the model's rate (the pipeline's own file reading needs an ffmpeg binary). OUT_JSON
gets ``{clip path: {label: score}}`` so the benchmark can check both paths agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(model: str, labels_file: str, out_json: str, clips: list[str]) -> None:
    import numpy as np
    import soundfile as sf
    import soxr
    from transformers import pipeline

    labels = [line.strip() for line in Path(labels_file).read_text().splitlines() if line.strip()]
    pipe = pipeline("zero-shot-audio-classification", model=model, device="cpu")
    rate = pipe.feature_extractor.sampling_rate
    results = {}
    for clip in clips:
        samples, source_rate = sf.read(clip, dtype="float32", always_2d=True)
        mono = samples.mean(axis=1, dtype=np.float32)
        audio = soxr.resample(mono, source_rate, rate, quality="HQ").astype(np.float32, copy=False)
        results[clip] = {r["label"]: r["score"] for r in pipe(audio, candidate_labels=labels)}
    Path(out_json).write_text(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
