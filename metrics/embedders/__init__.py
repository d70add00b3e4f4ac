"""Embedders for the quality metrics, looked up by name (lazy imports, "did you mean" errors).

Built-in names:

- ``logmel``: the weight-free default (log-mel spectrogram frames; NOT a pretrained model).
- ``clap-laion-music``: LAION-CLAP, HTSAT-base, ``music_audioset_epoch_15_esc_90.14.pt``.
- ``vggish``: VGGish (harritaylor/torchvggish weights), raw 128-d embeddings.
- ``pann-cnn14-16k``: PANN Cnn14 at 16 kHz through frechet-audio-distance's model code,
  per-frame features.
- ``encodec-24khz``: EnCodec 24 kHz encoder latents (75 frames per second).

Third-party packages add embedders under the entry-point group ``live_music_bench.embedders``.
"""

from __future__ import annotations

from typing import Any

from bench.core.registry import Registry
from metrics.embedders.base import Embedder, EmbedderError

EMBEDDERS = Registry(
    "embedder",
    {
        "logmel": "metrics.embedders.logmel:LogMelEmbedder",
        "clap-laion-music": "metrics.embedders.clap:ClapEmbedder",
        "vggish": "metrics.embedders.vggish:VGGishEmbedder",
        "pann-cnn14-16k": "metrics.embedders.pann:PannCnn14Embedder",
        "encodec-24khz": "metrics.embedders.encodec:EncodecEmbedder",
    },
    entry_point_group="live_music_bench.embedders",
)

DEFAULT_EMBEDDER = "logmel"


def create_embedder(name: str = DEFAULT_EMBEDDER, **kwargs: Any) -> Embedder:
    """Construct (cheaply; no weights are read) the embedder registered as ``name``."""
    return EMBEDDERS.create(name, **kwargs)


__all__ = ["EMBEDDERS", "DEFAULT_EMBEDDER", "Embedder", "EmbedderError", "create_embedder"]
