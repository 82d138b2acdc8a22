"""Random-weight CLAP checkpoints with the real architecture and the real loading code path,
for tests, benchmarks and offline demos where the hub cannot be reached. Their scores mean
nothing; their shapes, speed and code paths are the real model's.

    python -m model.random_clap tiny ./tiny-clap
    python -m model.random_clap full ./full-clap      # ClapConfig() defaults: htsat-unfused, 153M
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

_CORPUS = (
    "This is a sound of {}. dog barking rain thunder siren speech music engine car horn bird "
    "song wind water birds chirping footsteps door knock glass breaking applause laughter crying "
    "baby cat meowing cough sneeze train airplane helicopter church bells clock tick keyboard "
    "typing vacuum cleaner washing machine crackling fire insects crickets frog rooster cow pig "
    "hen sheep chainsaw hand saw fireworks pouring snoring drinking sipping toilet flush brushing "
    "teeth mouse click can opener sea waves a the of and in on with is are"
)


def _tokenizer(vocab_size: int):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([_CORPUS] * 4, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        merges = [tuple(line.split()) for line in Path(tmp, "merges.txt").read_text().splitlines()
                  if line and not line.startswith("#")]
    # transformers 5: the vocab_file= form silently yields an empty vocabulary; pass the dicts.
    return RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)


def build(path: str | Path, size: str = "tiny", seed: int = 0, projection_dim: int = 16) -> Path:
    """Save a randomly initialised ClapModel + ClapProcessor to ``path``; returns it. The tiny
    model's shared space has ``projection_dim`` dimensions (512 as the full one's, to measure
    what stored vectors cost without the full model's load)."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    tokenizer = _tokenizer(400)
    if size == "full":
        config = ClapConfig()
    elif size == "tiny":
        config = ClapConfig(
            text_config=dict(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=80, projection_dim=projection_dim),
            audio_config=dict(depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 2, 4], patch_embeds_hidden_size=8,
                              hidden_size=64, projection_dim=projection_dim, enable_fusion=False),
            projection_dim=projection_dim,
        )
    else:
        raise ValueError(f"size must be tiny or full, not {size!r}")
    # htsat-unfused's own preprocessing: no fusion, repeat-padding of short clips.
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    model = ClapModel(config).eval()
    path = Path(path)
    model.save_pretrained(path)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    return path


if __name__ == "__main__":
    print(build(sys.argv[2], sys.argv[1]))
