"""EnCodec 24 kHz encoder latents, one 128-d frame per 320 samples (75 frames per second).

The architecture comes from the ``encodec`` package (``EncodecModel.encodec_model_24khz(
pretrained=False)``: it never downloads); the weights from an explicit local
``encodec_24khz-d7cc33bc.th`` (sha256 prefix checked). Features are the encoder output before
quantisation, transposed to (frames, 128): statistics are taken over the latent dimension, not
the time axis (frechet-audio-distance computed them over time until 2026).

Input: 24 kHz mono (channels averaged; ``scipy.signal.resample_poly``); the 24 kHz model does
no loudness normalisation and no segmenting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from metrics.embedders.base import RESAMPLER, EmbedderError, TorchEmbedder
from metrics.weights import load_torch_model


def build_encodec_24khz() -> Any:
    """The EnCodec 24 kHz architecture with random weights (eval mode)."""
    try:
        from encodec import EncodecModel
    except ImportError as exc:
        raise EmbedderError(f"the EnCodec embedder needs encodec (`pip install -e '.[metrics]'`): {exc}") from exc
    return EncodecModel.encodec_model_24khz(pretrained=False).eval()


class EncodecEmbedder(TorchEmbedder):
    """EnCodec 24 kHz encoder frames (see module docstring)."""

    name: ClassVar[str] = "encodec-24khz"
    pretrained: ClassVar[bool] = True
    needs_weights: ClassVar[bool] = True
    sample_rate = 24000
    feature_dim = 128
    min_samples = 320

    @property
    def identity(self) -> str:
        return self._identity(
            model="encodec_24khz.encoder(pre-quantisation)",
            ckpt_sha256=self.checkpoint_sha256 or "not-loaded",
            sr=24000,
            window="seanet",
            hop=320,
            pooling="none(frames,75Hz)",
            channels=self.channels,
            resample=RESAMPLER,
            loudness="none",
        )

    def load(self, path: str | Path | None = None, *, directory: str | Path | None = None) -> "EncodecEmbedder":
        model, sha = load_torch_model("encodec-24khz", path, directory, build_encodec_24khz, "EnCodec 24 kHz")
        self.model = model.to(self.device).eval()
        self.checkpoint_sha256 = sha
        self._loaded = True
        return self

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(mono.astype(np.float32))[None, None, :].to(self.device)  # (1, 1, T)
            z = self.model.encoder(x)  # (1, 128, frames)
        return z[0].transpose(0, 1).cpu().numpy()
