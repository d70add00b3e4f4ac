"""Frame-wise pitch from PESTO, a pretrained self-supervised pitch estimator.

PESTO (Riou et al., ISMIR 2023; package ``pesto-pitch``, model ``mir-1k_g7`` whose weights ship
inside the wheel, so it runs offline on CPU) reads a constant-Q transform (3 bins per semitone,
from 27.5 Hz) one frame at a time and returns, per frame: the pitch in fractional MIDI semitones
(argmax-local weighted average of its 384 pitch bins), and a voiced/unvoiced confidence in
[0, 1] from a small classifier on the CQT energy.

How it is called here (see :class:`PitchTracker`):

- the model is loaded once per (model, step, sample rate) and cached for the process; PESTO
  builds its CQT kernels for the audio's own sample rate, so there is no resampling;
- frames are centred: frame ``i`` is centred on sample ``i * hop`` with ``hop = round(step_ms *
  sample_rate / 1000)`` samples (160 at 16 kHz), so ``times_s = i * hop / sample_rate`` (PESTO's
  own ``timesteps`` assume exactly ``step_ms`` and are in milliseconds); a clip of T samples has
  ``T // hop + 1`` frames;
- long audio is processed in chunks of ``chunk_s`` seconds with a margin of half a CQT kernel on
  each side, so the frames equal those of one pass (tested) while memory stays bounded (one pass
  over 300 s would need about 1 GB of activations);
- clips shorter than one CQT kernel (4096 samples at 16 kHz) are zero-padded at the end (PESTO's
  reflect padding needs at least that much) and the extra frames dropped.

Level normalisation (on by default). PESTO's pitch is level-invariant (its encoder starts with a
per-frame LayerNorm) but its voicing confidence is NOT: it reads CQT energy on an absolute scale.
Measured here (16 kHz, harmonic tones, median confidence): an A4 tone reads 1.0 down to about
-25 dBFS RMS, 0.87 at -30, 0.30 at -35 and 0.11 (the value of digital silence) from -45 dBFS;
white noise reads pitched on 0 % of frames at -20 dBFS, 27 % at -10 and 77 % at -5 dBFS. A
generator's output gain would then move "pitched fraction" both ways. So the tracker feeds PESTO
audio brought to ``reference_dbfs`` (default -20 dBFS, where noise reads 0 % and tones from F#2
to about C6 read pitched) by a slowly varying gain: the gain is ``reference_dbfs`` minus the
local RMS level over ``normalise_window_s`` (0.5 s, centred; interpolated between frames), capped
at ``max_gain_db`` (40 dB, so nothing below -60 dBFS is lifted to the reference). Confidence
then judges spectral shape at one level, and loudness is left to the explicit energy gate of
:mod:`metrics.descriptors.pitch`, which reads the ORIGINAL level. ``reference_dbfs=None`` gives
PESTO's raw behaviour.

Register. Trained on MIR-1K (sung voice), the confidence reads pitched for harmonic tones from
about F#2 (92 Hz) to C6 (1 kHz) at the reference level and unpitched above about D6 and for some
bass notes (C2-D2 read 0). Bass lines and very high leads count as unpitched: compare pitched
fractions between systems and windows, not with an absolute expectation.

Each frame also carries the RMS level (dBFS) of a ``gate_frame_s`` frame around it, for the
energy gate of :mod:`metrics.descriptors.pitch`. torch and pesto are imported only when a track
is computed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from metrics.descriptors.audio import frame_levels_dbfs, mono_audio

log = logging.getLogger(__name__)

DEFAULT_MODEL = "mir-1k_g7"
DEFAULT_STEP_MS = 10.0


@dataclass(frozen=True)
class PitchTrack:
    """Per-frame pitch of one mono clip; every array is (F,)."""

    times_s: np.ndarray  # (F,) frame centres in seconds
    f0_hz: np.ndarray  # (F,) fundamental frequency in Hz (PESTO's estimate, defined on every frame)
    midi: np.ndarray  # (F,) the same pitch in fractional MIDI semitones (A4 = 69)
    confidence: np.ndarray  # (F,) PESTO's voicing confidence in [0, 1]
    level_dbfs: np.ndarray  # (F,) RMS level of the frame (energy gate)
    hop_s: float  # seconds between frames

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    def window(self, start_s: float, end_s: float) -> "PitchTrack":
        """The frames whose centres lie in [start_s, end_s)."""
        keep = (self.times_s >= start_s) & (self.times_s < end_s)  # (F,)
        return PitchTrack(
            times_s=self.times_s[keep], f0_hz=self.f0_hz[keep], midi=self.midi[keep],
            confidence=self.confidence[keep], level_dbfs=self.level_dbfs[keep], hop_s=self.hop_s,
        )


@functools.lru_cache(maxsize=8)
def _load_pesto(model_name: str, step_ms: float, sample_rate: int, fast_layers: bool = True) -> Any:
    """PESTO model for one sample rate, loaded once per process (weights from the wheel); with
    ``fast_layers``, its encoder's layers in faster CPU layouts (:mod:`metrics.descriptors.pesto_layers`)."""
    import pesto  # heavy: imports torch and torchaudio

    model = pesto.load_model(model_name, step_ms, sampling_rate=sample_rate)
    model.eval()
    replaced = 0
    if fast_layers:
        from metrics.descriptors.pesto_layers import use_fast_layers

        replaced = use_fast_layers(model)
    log.info("loaded PESTO %s (pesto-pitch %s), step %g ms, %d Hz, %d layer(s) in fast CPU layouts", model_name,
             pesto.__version__, step_ms, sample_rate, replaced)
    return model


class PitchTracker:
    """PESTO pitch per frame: ``tracker(audio, sample_rate) -> PitchTrack``.

    Construction is cheap; the model loads on the first call (cached per process and sample rate).
    ``fast_layers=False`` runs PESTO's encoder exactly as shipped; the default runs the same weights
    in faster CPU layouts (:mod:`metrics.descriptors.pesto_layers`: pitch within 1e-3 semitones,
    confidence bitwise equal), and says so in :attr:`identity`.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        step_ms: float = DEFAULT_STEP_MS,
        *,
        chunk_s: float = 30.0,
        gate_frame_s: float = 0.04,
        reference_dbfs: float | None = -20.0,
        normalise_window_s: float = 0.5,
        max_gain_db: float = 40.0,
        fast_layers: bool = True,
    ) -> None:
        if not step_ms > 0:
            raise ValueError(f"step_ms must be > 0 milliseconds, got {step_ms}")
        if not chunk_s > 0:
            raise ValueError(f"chunk_s must be > 0 seconds, got {chunk_s}")
        if not gate_frame_s > 0:
            raise ValueError(f"gate_frame_s must be > 0 seconds, got {gate_frame_s}")
        if reference_dbfs is not None and not reference_dbfs <= 0:
            raise ValueError(f"reference_dbfs must be <= 0 dBFS (or None: no normalisation), got {reference_dbfs}")
        if not (normalise_window_s > 0 and max_gain_db >= 0):
            raise ValueError(
                f"normalise_window_s must be > 0 s and max_gain_db >= 0 dB, got {normalise_window_s}, {max_gain_db}"
            )
        self.reference_dbfs = None if reference_dbfs is None else float(reference_dbfs)
        self.normalise_window_s = float(normalise_window_s)
        self.max_gain_db = float(max_gain_db)
        self.model_name = model_name
        self.step_ms = float(step_ms)
        self.chunk_s = float(chunk_s)
        self.gate_frame_s = float(gate_frame_s)
        self.fast_layers = bool(fast_layers)

    @property
    def identity(self) -> str:
        """Model, version and framing (recorded beside every table)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            pkg = version("pesto-pitch")
        except PackageNotFoundError:  # pragma: no cover - depends on the install
            pkg = "not-installed"
        norm = ("raw level" if self.reference_dbfs is None else
                f"level normalised to {self.reference_dbfs:g}dBFS over {self.normalise_window_s:g}s "
                f"(max gain {self.max_gain_db:g}dB)")
        layers = ("; encoder convs spectral (multi-channel) or channels-last, Toeplitz layer as matmul"
                  if self.fast_layers else "")
        return (f"pesto-pitch=={pkg} model={self.model_name} step={self.step_ms:g}ms reduction=alwa centred; "
                f"{norm}; level frame {self.gate_frame_s * 1000:g}ms{layers}")

    def hop_samples(self, sample_rate: int) -> int:
        """Samples between frames (PESTO's own rounding of ``step_ms`` at this rate)."""
        return max(1, int(self.step_ms * sample_rate / 1000 + 0.5))

    def __call__(self, audio: np.ndarray, sample_rate: int) -> PitchTrack:
        return self.track(audio, sample_rate)

    def track(self, audio: np.ndarray, sample_rate: int) -> PitchTrack:
        """Pitch, confidence and level per frame of a mono clip (samples,) or (1, samples)."""
        import torch

        x = mono_audio(audio, sample_rate, source="pitch tracker input")  # (T,)
        sr = int(sample_rate)
        model = _load_pesto(self.model_name, self.step_ms, sr, self.fast_layers)
        hop = self.hop_samples(sr)
        kernel = max(int(k.kernel_width) for k in model.preprocessor.hcqt_kernels.cqt_kernels)
        n_frames = x.shape[0] // hop + 1
        padded = x if x.shape[0] > kernel else np.concatenate([x, np.zeros(kernel + 1 - x.shape[0], np.float32)])
        margin = -(-(kernel // 2) // hop) * hop  # half a kernel, rounded up to whole hops
        chunk_frames = max(1, int(round(self.chunk_s * sr / hop)))
        centres = np.arange(n_frames) * hop  # (F,) samples
        local_dbfs = (frame_levels_dbfs(x, centres, int(round(self.normalise_window_s * sr)))
                      if self.reference_dbfs is not None else None)  # (F,)
        midi = np.empty(n_frames, np.float64)
        conf = np.empty(n_frames, np.float64)
        with torch.inference_mode():
            for f0 in range(0, n_frames, chunk_frames):
                f1 = min(n_frames, f0 + chunk_frames)
                s0 = max(0, f0 * hop - margin)
                s1 = min(padded.shape[0], (f1 - 1) * hop + margin + 1)
                samples = padded[s0:s1]
                if local_dbfs is not None:
                    samples = samples * self._gain(local_dbfs, centres, s0, s1)
                segment = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
                pred, confidence, _, _ = model(segment, sr=sr, convert_to_freq=False, return_activations=True)
                first = (f0 * hop - s0) // hop  # index of frame f0 in this segment's frames
                midi[f0:f1] = pred.numpy()[first:first + f1 - f0]
                conf[f0:f1] = confidence.numpy()[first:first + f1 - f0]
        levels = frame_levels_dbfs(x, centres, int(round(self.gate_frame_s * sr)))
        return PitchTrack(
            times_s=centres / sr,
            f0_hz=440.0 * 2.0 ** ((midi - 69.0) / 12.0),
            midi=midi,
            confidence=conf,
            level_dbfs=levels,
            hop_s=hop / sr,
        )

    def _gain(self, local_dbfs: np.ndarray, centres: np.ndarray, s0: int, s1: int) -> np.ndarray:
        """(s1 - s0,) linear gain bringing the local level to the reference (capped)."""
        assert self.reference_dbfs is not None
        level = np.interp(np.arange(s0, s1), centres, local_dbfs)  # dBFS per sample
        level = np.maximum(level, self.reference_dbfs - self.max_gain_db)
        return (10.0 ** ((self.reference_dbfs - level) / 20.0)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def default_tracker() -> PitchTracker:
    """The process-wide default :class:`PitchTracker` (PESTO ``mir-1k_g7``, 10 ms steps)."""
    return PitchTracker()
