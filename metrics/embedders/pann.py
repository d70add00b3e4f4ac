"""PANN Cnn14 (16 kHz) features per frame, through frechet-audio-distance's model code.

frechet-audio-distance pools each file to ONE 2048-d vector and concatenates those vectors into
a 1-D array, so its "Gaussians" are scalars (its open issue #37). Here the same network
(``frechet_audio_distance.models.pann.Cnn14_16k``, eval mode, weights from an explicit local
``Cnn14_16k_mAP=0.438.pth``) is run up to its last convolution block, averaged over frequency,
and the clip-level head's first layer (``fc1`` + ReLU) is applied to EVERY time step instead of
to the clip's max+mean pooled vector. Result: one 2048-d frame per 32 spectrogram hops
(320 ms; 3.125 frames/s), and FAD over frames is a real multivariate Frechet distance.

Front end (the model's own): 16 kHz mono (channels averaged; ``scipy.signal.resample_poly``),
512-sample Hann STFT, hop 160, 64 mel bands 50-8000 Hz, log; no loudness normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from metrics import numba_cache
from metrics.embedders.base import RESAMPLER, EmbedderError, TorchEmbedder, require_offline_hub
from metrics.weights import load_torch_model

CNN14_16K_ARGS = dict(
    sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000, classes_num=527
)
POOLS = ((2, 2), (2, 2), (2, 2), (2, 2), (2, 2), (1, 1))  # the pools Cnn14_16k's forward uses per block


def build_cnn14_16k() -> Any:
    """A randomly initialised ``Cnn14_16k`` from frechet-audio-distance (eval mode)."""
    require_offline_hub("frechet-audio-distance (it imports laion-clap)")
    numba_cache.librosa()  # the package imports librosa: its numba cache is compiled by one process at a time
    try:
        from frechet_audio_distance.models.pann import Cnn14_16k
    except ImportError as exc:
        raise EmbedderError(
            f"the PANN embedder needs frechet-audio-distance (`pip install -e '.[metrics]'`): {exc}"
        ) from exc
    return Cnn14_16k(**CNN14_16K_ARGS).eval()


def pre_head_frames(model: Any, waveform: Any) -> Any:
    """(B, T) waveform -> (B, T', 2048): Cnn14_16k's forward up to (not including) the time pooling."""
    x = model.spectrogram_extractor(waveform)  # (B, 1, frames, freq bins)
    x = model.logmel_extractor(x)  # (B, 1, frames, 64)
    x = model.bn0(x.transpose(1, 3)).transpose(1, 3)
    blocks = (model.conv_block1, model.conv_block2, model.conv_block3, model.conv_block4, model.conv_block5,
              model.conv_block6)
    for block, pool in zip(blocks, POOLS):
        x = block(x, pool_size=pool, pool_type="avg")  # dropout is a no-op in eval mode
    return x.mean(dim=3).transpose(1, 2)  # (B, T', 2048)


class PannCnn14Embedder(TorchEmbedder):
    """Per-frame PANN Cnn14 (16 kHz) features (see module docstring)."""

    name: ClassVar[str] = "pann-cnn14-16k"
    pretrained: ClassVar[bool] = True
    needs_weights: ClassVar[bool] = True
    sample_rate = 16000
    feature_dim = 2048
    min_samples = 8000  # 0.5 s: at least one frame after five 2x time poolings

    @property
    def identity(self) -> str:
        return self._identity(
            model="frechet_audio_distance.Cnn14_16k",
            ckpt_sha256=self.checkpoint_sha256 or "not-loaded",
            sr=16000,
            window="hann512",
            hop="160(stft)x32=320ms",
            pooling="none(per-frame fc1+relu)",
            channels=self.channels,
            resample=RESAMPLER,
            loudness="none",
        )

    def load(self, path: str | Path | None = None, *, directory: str | Path | None = None) -> "PannCnn14Embedder":
        """Load ``Cnn14_16k_mAP=0.438.pth`` (verified against the manifest) or a custom file."""
        model, sha = load_torch_model("pann-cnn14-16k", path, directory, build_cnn14_16k, "Cnn14_16k",
                                      extract=lambda raw: raw.get("model", raw))  # PANN nests it under "model"
        self.model = model.to(self.device).eval()
        self.checkpoint_sha256 = sha
        self._loaded = True
        return self

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            wave = torch.from_numpy(mono.astype(np.float32))[None, :].to(self.device)
            frames = pre_head_frames(self.model, wave)  # (1, T', 2048)
            return F.relu(self.model.fc1(frames))[0].cpu().numpy()
