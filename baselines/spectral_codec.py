"""Log-magnitude band codec: phase-free latents a small model can learn, decoded by a phase vocoder.

Why: the MDCT latents (``baselines.codec.MDCTCodec``) carry the signal's phase, so a stationary
tone's coefficients change sign and size from frame to frame, and the 2M-parameter DiTs trained
on them emit noise. Here a latent frame is the compressed magnitude spectrum of one STFT frame on
a mel-like band axis: a sustained note is a constant vector, silence is the zero vector, and the
phase is rebuilt at decode time. Measurements and the choice against other candidates:
``docs/codec.md`` (``scripts/codec_study.py``).

Framing (the MDCT's, so the streaming regimes use it unchanged). Hop ``N``, window ``L = 2N``
(sine window for analysis and synthesis, so ``w^2`` overlap-adds to 1). Latent frame ``i`` is the
spectrum of samples ``[i*N, (i+2)*N)``; output segment ``i`` (samples ``[i*N, (i+1)*N)``) is the
overlap-add of frame ``i-1``'s second half and frame ``i``'s first half, so a block of frames is
decoded with the frame before it (``previous``).

Encode, per channel and frame: the DFT of the windowed frame at bins ``0 .. K-1`` (bin spacing
``sample_rate / L``; ``K`` covers ``0 .. max_hz``), as a matmul with a fixed basis; magnitudes
``|X|`` (a sinusoid of amplitude ``A`` at a bin centre reads ``A``); triangular bands, one DFT bin
wide below ``linear_below_hz`` and widening in proportion to frequency above it (a mel-like
axis: 194 bands for 0-8 kHz at hop 500); each band is the RMS of its bins' magnitudes (weighted
mean power, so noise keeps its energy); ``latent = scale * log1p(band / floor)``: silence is
exactly 0, the data set's frames have mean ~1.2, std ~0.85 and 99th percentile ~3.3.

Decode, per channel: ``band = floor * expm1(clamp(latent, 0, max_latent) / scale)``; bin power
by linear interpolation of band power between band centres (a matmul; exact below
``linear_below_hz``); then a phase vocoder with identity phase locking
(:func:`vocoder_phase`). In each frame every local maximum of the bin magnitudes is a peak; its
frequency is refined by a parabola through ``magnitude ** 0.38`` at the peak and its two
neighbours (within 0.003 bins for a lone sinusoid); every bin belongs to its nearest peak. A
peak's phase (at the frame centre) is the phase, in the frame before, of the bin where the peak
now is, advanced by ``N`` samples at the mean of the two frames' peak frequencies; the bins of a
peak's region take its phase (a windowed sinusoid has one phase across its main lobe), plus pi
in the window's first side lobe. Synthesis is the inverse DFT of ``magnitude * exp(i * phase)``
as two matmuls with fixed bases (the even and odd parts of the centred frame: half the work of
a full inverse), windowed, then overlap-added.

Streaming and state. The phase of a frame depends on every frame before it, so the decoder
continues from the phase of ``previous``: it remembers the phase of the last frame of each
:meth:`SpectralCodec.encode` (the analysed phase of the real audio) and of each decode (the
synthesised one), keyed by that frame's float32 bytes (a small LRU table). The regimes pass the
last latent frame of the previous call as ``previous``, so decoding block by block equals
decoding the whole sequence up to float rounding (measured on a reference clip: 3e-7 at most,
for samples of RMS 0.15), and the first generated block continues the real context's phase. A
``previous`` never seen starts from phase 0 at that frame (``None`` is a silent frame).
:meth:`SpectralCodec.decode_with_state` is the same decoder with the state explicit, for
callers that keep it themselves.

FLOPs. ``decode_flops`` counts the three matmuls (band power -> bin power, then the even and
odd synthesis), which is exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts (no
FFT is used); peak picking, the phase recursion, ``cos``, ``sin`` and the overlap-add are
element-wise, O(frames * bins), and are counted neither by it nor here.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from baselines.codec import Codec
from bench.core import spectral_layout
from bench.core.errors import ConfigError
from bench.core.presets import CodecConfig

log = logging.getLogger(__name__)

PHASE_CACHE_ENTRIES = 64  # remembered (frame -> phase) pairs; a stream needs one at a time


@dataclass(frozen=True)
class SpectralCodecConfig:
    """Settings of :class:`SpectralCodec` (to become fields of ``CodecConfig``: docs/codec.md)."""

    sample_rate: int = 16000
    channels: int = 1
    hop: int = 500  # samples per latent frame; the window is 2 * hop
    max_hz: float = 8000.0  # highest frequency kept (<= sample_rate / 2)
    linear_below_hz: float = 1000.0  # bands are single DFT bins below this, proportionally wider above
    floor: float = 1e-4  # magnitude floor of the log compression (amplitude of a sinusoid; -80 dB)
    scale: float = 0.5  # latent = scale * log1p(band_magnitude / floor)
    max_amplitude: float = 4.0  # decode clamps band magnitudes to [0, max_amplitude] (+12 dB over full scale)

    def __post_init__(self) -> None:
        # rate, channels, hop and the kept band are checked where the presets check them (one rule set)
        CodecConfig(self.sample_rate, self.channels, self.hop, kind="spectral", max_hz=self.max_hz,
                    linear_below_hz=self.linear_below_hz)
        if not self.max_hz > 0:  # CodecConfig reads 0 as Nyquist; here the band is always explicit
            raise ConfigError(f"SpectralCodecConfig.max_hz must be > 0 Hz (make_codec passes CodecConfig.top_hz), "
                              f"got {self.max_hz!r}")
        if not (self.floor > 0 and self.scale > 0 and self.max_amplitude > self.floor):
            raise ConfigError(
                f"SpectralCodecConfig.floor and .scale must be > 0 and max_amplitude > floor, got "
                f"floor={self.floor!r}, scale={self.scale!r}, max_amplitude={self.max_amplitude!r}"
            )

    @property
    def max_latent(self) -> float:
        """The largest latent value decode uses (that of ``max_amplitude``); larger ones are clamped."""
        return self.scale * math.log1p(self.max_amplitude / self.floor)

    @property
    def bin_hz(self) -> float:
        """Spacing of the DFT bins (sample_rate / window)."""
        return spectral_layout.bin_hz(self.sample_rate, self.hop)

    @property
    def bins(self) -> int:
        """DFT bins kept: 0 .. max_hz."""
        return spectral_layout.kept_bins(self.sample_rate, self.hop, self.max_hz)

    @property
    def bands(self) -> int:
        return spectral_layout.band_count(self.sample_rate, self.hop, self.max_hz, self.linear_below_hz)

    @property
    def latent_dim(self) -> int:
        return self.channels * self.bands

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop


def band_layout(config: SpectralCodecConfig) -> tuple[int, int]:
    """(k_b, steps) of ``config``'s band axis (``bench.core.spectral_layout.band_layout``)."""
    return spectral_layout.band_layout(config.sample_rate, config.hop, config.max_hz, config.linear_below_hz)


def band_centres(config: SpectralCodecConfig) -> torch.Tensor:
    """(B,) float64 band centres in DFT bins: 0, 1, ..., k_b, then geometric up to the last bin."""
    k_b, steps = band_layout(config)
    linear = torch.arange(k_b + 1, dtype=torch.float64)
    if steps == 0:
        return linear
    last = config.bins - 1
    ratio = (last / k_b) ** (1.0 / steps)
    geometric = k_b * ratio ** torch.arange(1, steps + 1, dtype=torch.float64)
    geometric[-1] = last
    return torch.cat([linear, geometric])


def band_matrices(config: SpectralCodecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangular bands, float64: ``pool`` (K, B) takes bin values to band weighted means and
    ``unpool`` (B, K) takes band values to bins by linear interpolation between band centres. The
    codec applies both to POWER (squared magnitudes). ``unpool[b, k]`` is band ``b``'s triangle at
    bin ``k`` (the triangles sum to 1 at every bin); ``pool`` is the same triangles normalised per
    band. Below the break every band is one bin and both are the identity."""
    centres = band_centres(config)  # (B,)
    k = torch.arange(config.bins, dtype=torch.float64)[None, :]  # (1, K)
    left = torch.cat([centres[:1] - 1.0, centres[:-1]])[:, None]  # (B, 1)
    right = torch.cat([centres[1:], centres[-1:] + 1.0])[:, None]
    c = centres[:, None]
    rising = (k - left) / (c - left)
    falling = (right - k) / (right - c)
    tri = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (B, K)
    tri[0, k[0] <= centres[0]] = 1.0  # flat below the first centre and above the last
    tri[-1, k[0] >= centres[-1]] = 1.0
    pool = (tri / tri.sum(dim=1, keepdim=True)).T.contiguous()  # (K, B)
    return pool, tri.contiguous()


@dataclass(frozen=True)
class SynthesisState:
    """What decoding continues from: the frame before the block and its phase per bin (at the
    frame centre, radians in [0, 2 pi)): the analysed phase after an encode, each bin's peak phase
    after a decode. The next frame's peaks continue the phase of the bin they sit on."""

    frame: torch.Tensor  # (latent_dim,) the latent frame
    phase: torch.Tensor  # (channels, bins)


class SpectralCodec(Codec):
    """Log-magnitude band codec (module docstring). Latent layout: channel-major, ``bands`` each."""

    def __init__(self, config: SpectralCodecConfig, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.config = config
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self.hop = config.hop
        self.bins = config.bins
        self.bands = config.bands
        self.latent_dim = config.latent_dim
        self._phase_cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.phase_misses = 0  # decodes whose ``previous`` was never seen (phase restarted at 0)
        self._bases64 = _bases(config)
        self._place(device, dtype)

    def _place(self, device: torch.device | str, dtype: torch.dtype) -> None:
        analysis, synth_even, synth_odd, pool, unpool = self._bases64
        self.analysis = analysis.to(device=device, dtype=dtype)  # (L, 2K): frame -> [Re X, Im X]
        self.synth_even = synth_even.to(device=device, dtype=dtype)  # (K, N): Re X -> even part, windowed
        self.synth_odd = synth_odd.to(device=device, dtype=dtype)  # (K, N): Im X -> odd part, windowed
        self.pool = pool.to(device=device, dtype=dtype)  # (K, B) bin power -> band mean power
        self.unpool = unpool.to(device=device, dtype=dtype)  # (B, K) band power -> bin power

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "SpectralCodec":
        self._place(device, dtype or self.analysis.dtype)
        self._phase_cache.clear()
        return self

    # ------------------------------------------------------------------------------------ encode
    def analyse(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, F * hop) audio -> bin magnitudes and centre phases, each (C, F, K)."""
        channels, samples = audio.shape
        if channels != self.channels:
            raise ValueError(f"codec expects {self.channels} channel(s), got audio of shape {tuple(audio.shape)}")
        if samples % self.hop:
            raise ValueError(f"audio length {samples} is not a whole number of hops ({self.hop} samples)")
        n = self.hop
        padded = torch.nn.functional.pad(audio.to(self.analysis), (0, n))  # (C, (F+1) N)
        spectrum = padded.unfold(-1, 2 * n, n) @ self.analysis  # (C, F, 2K)
        re, im = spectrum[..., : self.bins], spectrum[..., self.bins:]
        return torch.sqrt(re * re + im * im), torch.remainder(torch.atan2(im, re), 2 * math.pi)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        latents, state = self.encode_with_state(audio)
        if state is not None:
            self._remember(state)
        return latents

    def encode_with_state(self, audio: torch.Tensor) -> tuple[torch.Tensor, SynthesisState | None]:
        """(C, F * hop) -> latents (F, latent_dim) and the state a decode would continue from."""
        magnitude, phase = self.analyse(audio)  # (C, F, K)
        frames = magnitude.shape[1]
        bands = torch.sqrt((magnitude * magnitude) @ self.pool)  # (C, F, B) RMS magnitude of each band
        latents = self.config.scale * torch.log1p(bands / self.config.floor)
        latents = latents.permute(1, 0, 2).reshape(frames, self.latent_dim)
        if frames == 0:
            return latents, None
        return latents, SynthesisState(latents[-1].clone(), phase[:, -1].clone())

    # ------------------------------------------------------------------------------------ decode
    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """(F, latent_dim) -> (C, F * hop); continues the remembered phase of ``previous``."""
        state = None
        if previous is not None:
            phase = self._phase_cache.get(_key(previous))
            if phase is None:
                self.phase_misses += 1
                log.debug("decode: previous frame not seen before; its phase starts at 0")
                phase = torch.zeros(self.channels, self.bins, device=self.analysis.device, dtype=self.analysis.dtype)
            state = SynthesisState(previous, phase)
        audio, new_state = self.decode_with_state(latents, state)
        self._remember(new_state)
        return audio

    def decode_with_state(self, latents: torch.Tensor,
                          state: SynthesisState | None) -> tuple[torch.Tensor, SynthesisState]:
        """(F, latent_dim) and the state before them -> audio (C, F * hop) and the state after.

        ``state=None`` is a silent frame before the block (the start of a stream)."""
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"latents must have shape (frames, {self.latent_dim}), got {tuple(latents.shape)}")
        latents = latents.to(self.analysis)
        if state is None:
            previous = torch.zeros_like(latents[:1])  # (1, D): silence
            phase0 = torch.zeros(self.channels, self.bins, device=latents.device, dtype=latents.dtype)
        else:
            previous = state.frame.reshape(1, -1).to(latents)
            phase0 = state.phase.to(latents)
        seq = torch.cat([previous, latents], dim=0)  # (F+1, D)
        magnitude = self.bin_magnitudes(seq)  # (C, F+1, K)
        phase, last_phase = vocoder_phase(magnitude, phase0)  # (C, F+1, K), (C, K)
        return self.overlap_add(magnitude, phase), SynthesisState(seq[-1].clone(), last_phase.clone())

    def bin_magnitudes(self, seq: torch.Tensor) -> torch.Tensor:
        """Latent frames (F, D) -> bin magnitudes (C, F, K): bands decompressed, power interpolated."""
        bands = seq.reshape(seq.shape[0], self.channels, self.bands).permute(1, 0, 2)  # (C, F, B)
        bands = torch.clamp(bands, min=0.0, max=self.config.max_latent)  # model outputs may stray
        band_mag = self.config.floor * torch.expm1(bands / self.config.scale)
        return torch.sqrt((band_mag * band_mag) @ self.unpool)

    def overlap_add(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Spectra of frames -1 .. F-1 (C, F+1, K) -> audio segments 0 .. F-1 (C, F * hop)."""
        channels, rows, _ = magnitude.shape
        # centred frame u(m) = even(m) + odd(m): cosines are even in m, sines odd, the window symmetric
        even = (magnitude * torch.cos(phase)) @ self.synth_even  # (C, F+1, N) windowed, m = 0.5 .. N - 0.5
        odd = (magnitude * torch.sin(phase)) @ self.synth_odd
        second_half = even[:, :-1] + odd[:, :-1]  # frames -1 .. F-2 at m > 0
        first_half = (even[:, 1:] - odd[:, 1:]).flip(-1)  # frames 0 .. F-1 at m < 0, in time order
        return (second_half + first_half).reshape(channels, (rows - 1) * self.hop)

    def decode_flops(self, frames: int) -> float:
        rows = self.channels * (frames + 1)  # the frames and the one before
        return 2.0 * rows * self.bands * self.bins + 2 * (2.0 * rows * self.bins * self.hop)

    def silence_frame(self) -> torch.Tensor:
        """(latent_dim,) the latent of silence (all zeros)."""
        return torch.zeros(self.latent_dim, device=self.analysis.device, dtype=self.analysis.dtype)

    def _remember(self, state: SynthesisState) -> None:
        key = _key(state.frame)
        self._phase_cache[key] = state.phase
        self._phase_cache.move_to_end(key)
        while len(self._phase_cache) > PHASE_CACHE_ENTRIES:
            self._phase_cache.popitem(last=False)


def vocoder_phase(magnitude: torch.Tensor, peak_phase0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase-vocoder phases for bin magnitudes (C, F, K), given the peak phases of frame 0 (C, K).

    Returns the synthesis phases (C, F, K) and the last frame's peak phases (C, K): the phase of
    each bin's peak, before the side-lobe sign (what the next block continues from). Peaks, their
    refined frequencies and every bin's peak are computed for all frames at once; only the
    recursion over frames (a gather and an add per frame) is sequential.
    """
    peak, freq_bins = nearest_peaks(magnitude)  # (C, F, K) peak bin of each bin, its frequency in bins
    prev_freq = torch.gather(freq_bins[:, :-1], -1, peak[:, 1:])  # (C, F-1, K) last frame's frequency there
    # phase advance over a hop (half a window) at the mean frequency f (in bins): pi f, mod 2 pi. The
    # recursion runs in float64 and is reduced mod 2 pi once at the end: exact to ~1e-12 rad per frame
    advance = (math.pi * torch.remainder(0.5 * (prev_freq + freq_bins[:, 1:]), 2.0)).double()
    peak_phase = [peak_phase0.double()]
    for peak_j, advance_j in zip(peak[:, 1:].unbind(1), advance.unbind(1)):
        peak_phase.append(torch.gather(peak_phase[-1], -1, peak_j) + advance_j)
    phases = torch.remainder(torch.stack(peak_phase, dim=1), 2 * math.pi).to(magnitude.dtype)  # (C, F, K)
    # the sine window's spectrum is positive over its main lobe (|d| < 1.5 bins) and negative over the
    # first side lobe (1.5 < |d| < 2.5): those bins take the opposite phase. Farther bins keep the
    # peak's phase: alternating them too lost energy wherever peaks are far apart (smooth bands, noise)
    distance = (torch.arange(magnitude.shape[-1], device=magnitude.device) - freq_bins).abs()  # (C, F, K) bins
    flip = torch.where((distance > 1.5) & (distance < 2.5), math.pi, 0.0)
    return phases + flip, phases[:, -1]


PEAK_POWER = 0.38  # parabola through magnitude ** 0.38: frequency error < 0.003 bins for the sine window


def nearest_peaks(magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For (..., K) magnitudes: the index of each bin's nearest local maximum (..., K) int64 and that
    peak's frequency in bins (..., K), refined by a parabola through ``magnitude ** PEAK_POWER`` at
    the peak and its two neighbours (measured on the sine window: at most 0.003 bins off for a
    lone sinusoid; a parabola through log magnitudes is up to 0.044 bins off)."""
    k = magnitude.shape[-1]
    level = torch.pow(magnitude, PEAK_POWER)
    very_low = torch.full_like(level[..., :1], -1.0)
    left = torch.cat([very_low, level[..., :-1]], dim=-1)
    right = torch.cat([level[..., 1:], very_low], dim=-1)
    is_peak = (level > left) & (level >= right)
    index = torch.arange(k, device=magnitude.device).expand(level.shape)
    below = torch.where(is_peak, index, torch.full_like(index, -k)).cummax(dim=-1).values  # last peak <= bin
    above = torch.where(is_peak, index, torch.full_like(index, 2 * k)).flip(-1).cummin(dim=-1).values.flip(-1)
    peak = torch.where(index - below <= above - index, below, above).clamp(0, k - 1)
    # parabola through (-1, a), (0, b), (1, g): vertex at 0.5 (a - g) / (a - 2b + g)
    a = torch.cat([level[..., :1], level[..., :-1]], dim=-1)
    g = torch.cat([level[..., 1:], level[..., -1:]], dim=-1)
    curvature = a - 2 * level + g
    offset = torch.where(curvature < 0, 0.5 * (a - g) / torch.where(curvature < 0, curvature, -1.0),
                         torch.zeros_like(level))
    freq = index.to(level.dtype) + offset.clamp(-0.5, 0.5)
    return peak, torch.gather(freq, -1, peak)


def _bases(config: SpectralCodecConfig) -> tuple[torch.Tensor, ...]:
    """float64 analysis (L, 2K), synthesis even and odd parts (K, N) each, pool (K, B), unpool (B, K)."""
    n, n2 = config.hop, 2 * config.hop
    t = torch.arange(n2, dtype=torch.float64)
    window = torch.sin(math.pi * (t + 0.5) / n2)  # (L,) sine window: w^2 overlap-adds to 1 at hop L/2
    centred = t - (n2 - 1) / 2  # phases are measured at the frame centre
    omega = 2 * math.pi * torch.arange(config.bins, dtype=torch.float64) / n2  # (K,) rad / sample
    arg = centred[:, None] * omega[None, :]  # (L, K)
    gain = 2.0 / window.sum()  # a sinusoid of amplitude A at a bin centre reads |X| = A
    analysis = torch.cat([window[:, None] * torch.cos(arg), -window[:, None] * torch.sin(arg)], dim=1) * gain
    weight = torch.full((config.bins,), 2.0, dtype=torch.float64)  # one-sided spectrum
    weight[0] = 1.0
    if 2 * (config.bins - 1) == n2:
        weight[-1] = 1.0  # Nyquist
    inverse = weight[:, None] / (n2 * gain)  # (K, 1) inverse real DFT of the gain-scaled spectrum
    half = arg[n:].T  # (K, N): omega_k * m for m = 0.5 .. N - 0.5 (the frame's second half)
    synth_even = inverse * torch.cos(half) * window[None, n:]  # u(+-m) = even(m) +- odd(m)
    synth_odd = -inverse * torch.sin(half) * window[None, n:]
    pool, unpool = band_matrices(config)
    return analysis, synth_even, synth_odd, pool, unpool


def _key(frame: torch.Tensor) -> bytes:
    return frame.detach().reshape(-1).to("cpu", torch.float32).contiguous().numpy().tobytes()


__all__ = ["SpectralCodec", "SpectralCodecConfig", "SynthesisState", "band_centres", "band_layout", "band_matrices",
           "nearest_peaks", "vocoder_phase"]
