"""The OpenVINO backend: the same scores as the pipeline's on the full-size random CLAP in fp32
(tests/test_clap.py holds the tiny one), bf16 where the CPU has it and refused plainly where it has
not, int8 from the export's quantized towers, each its own fingerprint."""

from __future__ import annotations

import numpy as np
import pytest

from model import openvino_towers
from model.classifier import load_classifier, score
from model.random_clap import build
from soundtag.errors import ModelError
from soundtag.taxonomy import taxonomy_from_csv

pytest.importorskip("openvino", reason="openvino does not install on this platform")

LABELS = "dog barking,rain,thunder,siren,speech,music,engine,bird song,wind,church bells"


def _windows(count=6):
    rng = np.random.default_rng(7)
    t = np.arange(48000 * 10) / 48000
    return [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(len(t)))
            .astype(np.float32) for _ in range(count)]


def _scores(classifier, windows):
    audio = classifier.embed_windows(classifier.prepare(windows))
    return audio, score(audio, classifier.label_embeddings(taxonomy_from_csv(LABELS)), classifier.logit_scale)[0]


@pytest.fixture(scope="module")
def full_clap(tmp_path_factory):
    return build(tmp_path_factory.mktemp("models") / "full-clap", "full")


@pytest.mark.slow
def test_fp32_scores_equal_the_torch_backend_within_1e_4_on_the_full_size_checkpoint(full_clap, export_dir):
    windows = _windows()
    torch_audio, expected = _scores(load_classifier(str(full_clap), export_dir, backend="torch", device="cpu",
                                                    keep_prompts=False), windows)
    openvino = load_classifier(str(full_clap), export_dir, backend="openvino", keep_prompts=False)
    audio, scores = _scores(openvino, windows)
    assert openvino.backend == "openvino" and openvino.revision.endswith(":fp32")
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    np.testing.assert_allclose(audio, torch_audio, atol=1e-4)


@pytest.mark.skipif(not openvino_towers.cpu_has_bf16(), reason="this CPU has no bf16 instructions")
def test_bf16_runs_where_the_cpu_has_it_as_its_own_fingerprint(tiny_clap, export_dir):
    windows = _windows()
    fp32_audio, fp32 = _scores(load_classifier(str(tiny_clap), export_dir, backend="openvino", keep_prompts=False),
                               windows)
    bf16 = load_classifier(str(tiny_clap), export_dir, backend="openvino", dtype="bf16", keep_prompts=False)
    audio, scores = _scores(bf16, windows)
    assert bf16.revision.endswith(":bf16-openvino")
    difference = np.abs(audio - fp32_audio).max()
    # bf16 keeps 8 bits of mantissa: embeddings move by about 1e-3, not by nothing and not wildly.
    assert 1e-6 < difference < 5e-2
    assert np.isclose(scores.sum(axis=1), 1).all()


def test_bf16_is_refused_plainly_on_a_cpu_without_it(tiny_clap, export_dir, monkeypatch):
    monkeypatch.setattr(openvino_towers, "cpu_has_bf16", lambda: False)
    with pytest.raises(ModelError, match=r"^--dtype bf16: this CPU has no bf16 instructions .*; use --dtype fp32$"):
        load_classifier(str(tiny_clap), export_dir, backend="openvino", dtype="bf16")


def test_int8_runs_the_exports_quantized_towers(tiny_clap, export_dir):
    onnx = load_classifier(str(tiny_clap), export_dir, backend="onnx", dtype="int8", keep_prompts=False)
    openvino = load_classifier(str(tiny_clap), export_dir, backend="openvino", dtype="int8", keep_prompts=False)
    assert openvino.revision.endswith(":int8-openvino") and onnx.revision.endswith(":int8-onnx")
    windows = _windows(2)
    np.testing.assert_allclose(_scores(openvino, windows)[0], _scores(onnx, windows)[0], atol=1e-2)


def test_a_second_start_imports_the_compiled_towers_from_the_exports_cache(tiny_clap, export_dir, monkeypatch):
    """OpenVINO keeps what it compiled beside the export; the next process imports it (the same
    scores) instead of compiling again."""
    import openvino

    compiled = []
    original = openvino.Core.compile_model
    monkeypatch.setattr(openvino.Core, "compile_model",
                        lambda self, *args, **kwargs: compiled.append(original(self, *args, **kwargs)) or compiled[-1])
    windows = _windows(2)
    first = load_classifier(str(tiny_clap), export_dir, backend="openvino", keep_prompts=False)
    audio, scores = _scores(first, windows)
    assert any(first.towers._cache.iterdir())
    again = load_classifier(str(tiny_clap), export_dir, backend="openvino", keep_prompts=False)
    compiled.clear()
    np.testing.assert_array_equal(_scores(again, windows)[1], scores)
    assert [c.get_property("LOADED_FROM_CACHE") for c in compiled] == [True, True]  # audio and text towers
