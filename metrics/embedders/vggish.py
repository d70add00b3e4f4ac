"""VGGish embeddings (raw 128-d, no PCA, no final ReLU), one per 0.96 s example.

frechet-audio-distance fetches VGGish's code from GitHub through torch.hub at run time, which
fails offline, so the network and its front end are written here from VGGish's published
parameters, with parameter names matching the converted checkpoint ``vggish-10086976.pth``
(harritaylor/torchvggish: ``features.{0,3,6,8,11,13}`` convolutions, ``embeddings.{0,2,4}``
linear layers), loaded from an explicit local file.

Front end (VGGish's parameters): 16 kHz mono (channels averaged;
``scipy.signal.resample_poly``, where torchvggish uses resampy, so numbers are close to but not
bit-identical with torchvggish), 25 ms periodic-Hann frames (400 samples) every 10 ms, 512-point
FFT magnitude, 64 mel bands 125-7500 Hz (HTK mel; triangles in the mel domain; DC bin unused),
``log(mel + 0.01)``; examples of 96 frames (0.96 s), non-overlapping; an incomplete last
example is dropped. Features: the 128-d output of the last linear layer WITHOUT the final ReLU
and without the PCA/quantisation post-processing (frechet-audio-distance's defaults
``use_pca=False, use_activation=False``). No loudness normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from metrics.embedders.base import RESAMPLER, EmbedderError, TorchEmbedder
from metrics.embedders.logmel import hz_to_mel_htk, periodic_hann
from metrics.weights import load_torch_model

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
N_FFT = 512
N_MELS = 64
F_LOW_HZ, F_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96


def vggish_mel_matrix() -> np.ndarray:
    """(257, 64) mel weights: triangles defined on the mel axis, DC bin zeroed."""
    bins_mel = hz_to_mel_htk(np.linspace(0.0, SAMPLE_RATE / 2.0, N_FFT // 2 + 1))  # (257,)
    edges = np.linspace(hz_to_mel_htk(F_LOW_HZ), hz_to_mel_htk(F_HIGH_HZ), N_MELS + 2)
    lo, centre, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (bins_mel[:, None] - lo) / (centre - lo)
    falling = (hi - bins_mel[:, None]) / (hi - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_examples(mono: np.ndarray) -> np.ndarray:
    """(T,) 16 kHz -> (N, 96, 64) float32 log-mel examples."""
    n_frames = 1 + (mono.shape[0] - WINDOW) // HOP
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(mono[idx] * periodic_hann(WINDOW)[None, :], n=N_FFT, axis=1))  # (F, 257)
    logmel = np.log(spec @ vggish_mel_matrix() + LOG_OFFSET)  # (F, 64)
    n_examples = logmel.shape[0] // EXAMPLE_FRAMES
    return logmel[: n_examples * EXAMPLE_FRAMES].reshape(n_examples, EXAMPLE_FRAMES, N_MELS).astype(np.float32)


def build_vggish() -> Any:
    """The VGGish network (random weights), parameter names as in vggish-10086976.pth."""
    import torch.nn as nn

    class VGGishNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels = 1
            for spec in (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool"):
                if spec == "pool":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(channels, int(spec), 3, padding=1), nn.ReLU()]
                    channels = int(spec)
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 6 * 4, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 128)
            )

        def forward(self, x: Any) -> Any:  # (B, 1, 96, 64) -> (B, 128)
            x = self.features(x)  # (B, 512, 6, 4)
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels-last flatten, as the TF original
            return self.embeddings(x)

    return VGGishNet().eval()


class VGGishEmbedder(TorchEmbedder):
    """Raw VGGish embeddings per 0.96 s example (see module docstring)."""

    name: ClassVar[str] = "vggish"
    pretrained: ClassVar[bool] = True
    needs_weights: ClassVar[bool] = True
    sample_rate = SAMPLE_RATE
    feature_dim = 128
    min_samples = WINDOW + HOP * (EXAMPLE_FRAMES - 1)  # 0.975 s: one full example

    @property
    def identity(self) -> str:
        return self._identity(
            model="vggish(raw,no-pca,no-final-relu)",
            ckpt_sha256=self.checkpoint_sha256 or "not-loaded",
            sr=SAMPLE_RATE,
            window=f"hann{WINDOW}/fft{N_FFT}",
            hop=f"{HOP}(stft);example=96frames/0.96s",
            mels=f"{N_MELS}htk{F_LOW_HZ:g}-{F_HIGH_HZ:g}",
            pooling="none(per-example)",
            channels=self.channels,
            resample=RESAMPLER,
            loudness="none",
        )

    def load(self, path: str | Path | None = None, *, directory: str | Path | None = None) -> "VGGishEmbedder":
        model, sha = load_torch_model("vggish", path, directory, build_vggish, "VGGish")
        self.model = model.to(self.device).eval()
        self.checkpoint_sha256 = sha
        self._loaded = True
        return self

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        import torch

        examples = vggish_examples(mono)  # (N, 96, 64)
        if examples.shape[0] == 0:
            raise EmbedderError("no complete 0.96 s example")
        with torch.no_grad():
            out = self.model(torch.from_numpy(examples)[:, None].to(self.device))
        return out.cpu().numpy()
