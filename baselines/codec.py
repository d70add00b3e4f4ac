"""Codecs: audio <-> continuous latents (diffusion regimes) or RVQ tokens (the LMM).

Two weight-free codecs implement the :class:`Codec` contract; ``CodecConfig.kind`` picks one
(``baselines.codecs.make_codec``). ``spectral`` (``baselines/spectral_codec.py``, the ``cpu`` preset's) keeps
log-magnitude bands of 0-8 kHz and rebuilds phase; ``mdct`` (below) is exact and linear. The MDCT
needs no downloaded weights: a modified discrete cosine transform (MDCT, sine
window, hop ``N``, frame ``2N``) that keeps the lowest ``latent_bins`` bins of each channel. It is
linear, deterministic and critically sampled: with ``latent_bins == hop`` it reconstructs the
audio exactly (time-domain alias cancellation), with fewer bins it is an ideal-ish low-pass.
Real codecs (the SAO autoencoder, SpectroStream) implement the same :class:`Codec` contract.

Frame convention (what makes streaming decoding exact): latent frame ``i`` is the MDCT of audio
samples ``[i*N, (i+2)*N)``. Output segment ``i`` (samples ``[i*N, (i+1)*N)``) is the overlap-add
of frame ``i-1``'s second half and frame ``i``'s first half, so decoding a block of frames needs
the previous frame (``previous``), which the streaming regimes always have (the last context
frame). Decoding block by block with ``previous`` equals decoding the whole sequence at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from bench.core.presets import CodecConfig


class Codec(ABC):
    """Audio <-> continuous latents. Shapes: audio (channels, samples); latents (frames, dim)."""

    sample_rate: int
    channels: int
    hop: int  # samples per frame
    latent_dim: int

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop

    @abstractmethod
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """(channels, frames * hop) -> (frames, latent_dim)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """(frames, latent_dim) -> (channels, frames * hop); ``previous`` is the frame before."""

    @abstractmethod
    def decode_flops(self, frames: int) -> float:
        """Analytic FLOPs of ``decode`` on ``frames`` frames (matmul-level)."""

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Codec":
        return self


class MDCTCodec(Codec):
    """Low-pass MDCT codec (see module docstring). Latent layout: channel-major, ``bins`` each."""

    def __init__(self, config: CodecConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.config = config
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self.hop = config.hop
        self.bins = config.latent_bins
        self.latent_dim = config.latent_dim
        n = config.hop
        t = torch.arange(2 * n, dtype=torch.float64)
        k = torch.arange(self.bins, dtype=torch.float64)
        window = torch.sin(math.pi * (t + 0.5) / (2 * n))
        # Orthonormal MDCT basis restricted to the kept bins: (2N, bins)
        basis = math.sqrt(2.0 / n) * window[:, None] * torch.cos(
            math.pi / n * (t[:, None] + 0.5 + n / 2) * (k[None, :] + 0.5)
        )
        self._basis64 = basis
        self.basis = basis.to(device=device, dtype=dtype)  # (2N, bins)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "MDCTCodec":
        self.basis = self._basis64.to(device=device, dtype=dtype or self.basis.dtype)
        return self

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        channels, samples = audio.shape
        if channels != self.channels:
            raise ValueError(f"codec expects {self.channels} channel(s), got audio of shape {tuple(audio.shape)}")
        if samples % self.hop:
            raise ValueError(f"audio length {samples} is not a whole number of hops ({self.hop} samples)")
        n = self.hop
        frames = samples // n
        padded = torch.nn.functional.pad(audio.to(self.basis), (0, n))  # (C, (F+1) N)
        windows = padded.unfold(-1, 2 * n, n)  # (C, F, 2N)
        coeffs = windows @ self.basis  # (C, F, bins)
        return coeffs.permute(1, 0, 2).reshape(frames, self.latent_dim)

    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        frames = latents.shape[0]
        n = self.hop
        if previous is None:
            previous = torch.zeros_like(latents[:1])
        seq = torch.cat([previous.reshape(1, -1), latents], dim=0)  # (F+1, D)
        coeffs = seq.reshape(frames + 1, self.channels, self.bins).permute(1, 0, 2).to(self.basis)
        synth = coeffs @ self.basis.T  # (C, F+1, 2N)
        audio = synth[:, :-1, n:] + synth[:, 1:, :n]  # (C, F, N): overlap of frame i-1 and i
        return audio.reshape(self.channels, frames * n)

    def decode_flops(self, frames: int) -> float:
        return 2.0 * self.channels * (frames + 1) * self.bins * 2 * self.hop


class ResidualVQ:
    """Residual vector quantiser over codec latents: ``levels`` codebooks of ``size`` entries.

    Default codebooks are seeded Gaussians whose scale halves per level (a stand-in until a fitted
    one is loaded with :meth:`load_codebooks`); quantisation is greedy nearest neighbour per level.
    """

    def __init__(self, dim: int, levels: int, size: int, seed: int = 0, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        gen = torch.Generator().manual_seed(seed)
        scales = torch.tensor([0.5**level for level in range(levels)])[:, None, None]
        self.codebooks = (torch.randn(levels, size, dim, generator=gen) * scales).to(device=device, dtype=dtype)
        self.levels, self.size, self.dim = levels, size, dim

    def load_codebooks(self, codebooks: torch.Tensor) -> None:
        if codebooks.shape != self.codebooks.shape:
            raise ValueError(f"codebooks must have shape {tuple(self.codebooks.shape)}, got {tuple(codebooks.shape)}")
        self.codebooks = codebooks.to(self.codebooks)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "ResidualVQ":
        self.codebooks = self.codebooks.to(device=device, dtype=dtype or self.codebooks.dtype)
        return self

    def quantize(self, latents: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """(frames, dim) -> tokens (frames, levels) int64."""
        levels = self.levels if levels is None else levels
        residual = latents.to(self.codebooks)
        tokens = []
        for level in range(levels):
            book = self.codebooks[level]  # (size, dim)
            idx = torch.cdist(residual, book).argmin(dim=-1)  # (frames,)
            tokens.append(idx)
            residual = residual - book[idx]
        return torch.stack(tokens, dim=-1)

    def dequantize(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (frames, q) with q <= levels -> latents (frames, dim): sum of the codewords."""
        q = tokens.shape[-1]
        gathered = self.codebooks[torch.arange(q, device=tokens.device), tokens]  # (frames, q, dim)
        return gathered.sum(dim=-2)
