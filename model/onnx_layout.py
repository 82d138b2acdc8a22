"""The folder an ONNX export is kept in, and the manifest that says it is whole:

    EXPORT_DIR/<model key>/<weights stamp>/
        audio.onnx      log-mel features (windows, 1, frames, mels) → unit-norm audio embeddings
        text.onnx       input_ids, attention_mask → unit-norm (projected) text embeddings
        audio-int8.onnx, text-int8.onnx   the same, dynamically quantized, made when int8 is asked for
        *.onnx.data     each graph's weights, beside it: ONNX Runtime maps them instead of copying
                        them out of the graph's protobuf (the full text tower: 3.6 s and 420 MB
                        peak to open, against 10.6 s and 780 MB, on a loaded 2-core machine)
        tokenizer.json  the checkpoint's tokenizer, for the `tokenizers` library
        front_end.npz   the feature extractor's Hann window and mel filterbank (model/log_mel.py)
        manifest.json   logit scale, sample rate, window length, mel parameters, the weights'
                        stamp (model/weights.py), and each file's size, mtime and sha256

Written by model/onnx_build.py, found by model/onnx_export.py, read by model/onnx_towers.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from model.weights import file_sha256

# Export format: a folder written by another version of this layout is built again.
LAYOUT = 2


@dataclass(frozen=True)
class Export:
    """An exported model's folder and its manifest."""

    folder: Path
    manifest: dict

    def tower(self, name: str, dtype: str) -> Path:
        """The ONNX file of tower ``name`` (audio, text) at ``dtype`` (fp32, int8)."""
        return self.folder / (f"{name}.onnx" if dtype == "fp32" else f"{name}-{dtype}.onnx")


def whole(folder: Path, dtype: str) -> Export | None:
    """The export in ``folder`` if its manifest lists the towers at ``dtype`` and every listed file
    is there with its recorded bytes, else None. A file's sha256 is computed again only when its
    size or mtime changed since it was recorded (hashing 600 MB at each start would cost seconds)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    export = Export(folder, manifest)
    files = manifest.get("files", {})
    towers = [export.tower(name, dtype).name for name in ("audio", "text")]
    needed = {*towers, *(f"{tower}.data" for tower in towers), "tokenizer.json", "front_end.npz"}
    if manifest.get("layout") != LAYOUT or not needed <= files.keys():
        return None
    for name in needed:
        recorded, path = files[name], folder / name
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size != recorded["size"]:
            return None
        if stat.st_mtime_ns != recorded["mtime_ns"] and file_sha256(path) != recorded["sha256"]:
            return None
    return export


def record(folder: Path, manifest: dict, names: list[str]) -> None:
    """Write ``manifest`` into ``folder`` with the size, mtime and sha256 of its files ``names``."""
    for name in names:
        stat = (folder / name).stat()
        manifest["files"][name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                   "sha256": file_sha256(folder / name)}
    partial = folder / "manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(folder / "manifest.json")
