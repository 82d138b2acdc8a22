"""Building an ONNX export (model/onnx_export.py): CLAP's towers through ``torch.onnx.export``
(the TorchScript exporter, opset 18), the tokenizer, the front end's arrays, the manifest; and the
int8 towers through ONNX Runtime's dynamic quantization. Needs torch and transformers."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from model.log_mel import LogMel
from model.onnx_layout import LAYOUT, Export, record
from soundtag import hub
from soundtag.errors import ModelError, first_line

OPSET = 18


class AudioTower(torch.nn.Module):
    """What the audio graph computes: the projected, unit-norm embedding of log-mel windows."""

    def __init__(self, clap):
        super().__init__()
        self.clap = clap

    def forward(self, input_features):
        # is_longer only switches on feature fusion, which an unfused checkpoint lacks.
        is_longer = torch.zeros((input_features.shape[0], 1), dtype=torch.bool)
        return self.clap.get_audio_features(input_features=input_features, is_longer=is_longer).pooler_output


class TextTower(torch.nn.Module):
    """What the text graph computes: the projected, unit-norm embedding of token ids."""

    def __init__(self, clap):
        super().__init__()
        self.clap = clap

    def forward(self, input_ids, attention_mask):
        return self.clap.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def build(model: str, folder: Path, stamp: str) -> None:
    """Export ``model``'s towers, tokenizer and front end into ``folder`` (replacing what is there),
    its weights named by ``stamp`` (model/weights.py). Works offline from a local folder or a
    cached hub id. Raises ModelError."""
    from transformers import ClapModel, ClapProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    local = hub.is_local(model) or hub.in_cache(model)
    try:
        processor = ClapProcessor.from_pretrained(model, local_files_only=local)
        clap = ClapModel.from_pretrained(model, dtype=torch.float32, local_files_only=local).eval()
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {model}: cannot load: {first_line(exc)}") from None
    extractor = processor.feature_extractor
    if not LogMel.fits(extractor):
        raise ModelError(f"model {model}: its feature extractor ({type(extractor).__name__}, truncation "
                         f"{getattr(extractor, 'truncation', '?')}) has no ONNX front end here; use --backend torch")
    front_end = LogMel.from_extractor(extractor)
    tokenizer = processor.tokenizer
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        noise = np.random.default_rng(0).standard_normal(front_end.size).astype(np.float32)
        features = torch.from_numpy(front_end(noise))[None].repeat(2, 1, 1, 1)
        tokens = tokenizer(["a sound", "the sound of rain"], padding=True, return_tensors="pt")
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The tracer warns about every Python branch on a shape; the shapes here are fixed
            # (a window is always the model's length) except the batch, which stays dynamic.
            warnings.simplefilter("ignore")
            torch.onnx.export(AudioTower(clap), (features,), staging / "audio.traced.onnx", opset_version=OPSET,
                              dynamo=False, input_names=["input_features"], output_names=["audio_embeds"],
                              dynamic_axes={"input_features": {0: "windows"}, "audio_embeds": {0: "windows"}})
            torch.onnx.export(TextTower(clap), (tokens["input_ids"], tokens["attention_mask"]),
                              staging / "text.traced.onnx",
                              opset_version=OPSET, dynamo=False, input_names=["input_ids", "attention_mask"],
                              output_names=["text_embeds"],
                              dynamic_axes={"input_ids": {0: "texts", 1: "tokens"},
                                            "attention_mask": {0: "texts", 1: "tokens"}, "text_embeds": {0: "texts"}})
        for tower in ("audio", "text"):
            _weights_beside(staging / f"{tower}.traced.onnx", staging / f"{tower}.onnx")
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        front_end.save(staging / "front_end.npz")
        manifest = {
            "layout": LAYOUT, "model": model, "weights": stamp, "opset": OPSET,
            "torch": torch.__version__, "logit_scale": float(clap.logit_scale_a.detach().float().exp()),
            "sampling_rate": int(extractor.sampling_rate), "max_length_s": float(extractor.max_length_s),
            "mel": {"bins": int(extractor.feature_size), "fft": front_end.frame, "hop": front_end.hop,
                    "window_samples": front_end.size, "truncation": extractor.truncation,
                    "padding": extractor.padding},
            "pad_token": tokenizer.pad_token, "pad_id": int(tokenizer.pad_token_id), "files": {},
        }
        record(staging, manifest, ["audio.onnx", "audio.onnx.data", "text.onnx", "text.onnx.data", "tokenizer.json",
                                   "front_end.npz"])
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _weights_beside(traced: Path, target: Path) -> None:
    """``traced`` saved as ``target`` with its weights in ``target``.data (see model/onnx_layout.py)."""
    import onnx

    graph = onnx.load(traced)
    onnx.save_model(graph, target, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{target.name}.data", size_threshold=1024)
    Path(f"{target}.data").chmod(0o644)  # onnx writes it 0600, which would hide a shared cache
    traced.unlink()


def quantize(folder: Path, dtype: str) -> None:
    """Add the towers at ``dtype`` (int8: ONNX Runtime's dynamic quantization of the matrix
    products, as torch's ``quantize_dynamic`` does the Linear layers) to the export in ``folder``."""
    if dtype != "int8":
        raise ModelError(f"--dtype {dtype}: the onnx backend runs fp32 and int8 only")
    manifest = json.loads((folder / "manifest.json").read_text())
    export = Export(folder, manifest)
    names = []
    # quantize_dynamic warns through the root logger, which configures logging for the whole process
    # (basicConfig) when nothing did: a quiet handler keeps it from doing that, and its warning out.
    root, quiet = logging.getLogger(), logging.NullHandler()
    level = root.level
    root.addHandler(quiet)
    root.setLevel(logging.ERROR)
    try:
        _quantize_towers(export, dtype, names)
    finally:
        root.removeHandler(quiet)
        root.setLevel(level)
    record(folder, manifest, names)


def _quantize_towers(export: Export, dtype: str, names: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for tower in ("audio", "text"):
        target = export.tower(tower, dtype)
        quantized = target.with_suffix(".quantized.onnx")
        quantize_dynamic(export.tower(tower, "fp32"), quantized, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])
        _weights_beside(quantized, target)
        names += [target.name, f"{target.name}.data"]
