"""Test generators whose output degrades on a schedule you control: tools to validate a drift pipeline.

These are NOT models. They synthesise music-like audio (a plucked-harmonic melody over a bass
line, its scale, tempo and timbre chosen by the prompt, its notes by the seed) as a pure function
of stream time, then apply a known degradation from ``onset_s`` on, growing linearly to full
strength over ``ramp_s`` seconds (``gain(t) = clip((t - onset_s) / ramp_s, 0, 1)``; a step when
``ramp_s == 0``):

- ``drift-control`` (:class:`SyntheticMusicGenerator`): no degradation; a drift pipeline must pass it.
- ``drift-tilt`` (:class:`TiltDriftGenerator`): a growing spectral tilt (first-order pre-emphasis
  ``y[n] = x[n] - a x[n-1]``, ``a = 0.9 * gain``: brighter, quieter lows) plus growing white noise
  (standard deviation ``0.03 * gain``): spectral centroid and flatness rise after the onset.
- ``collapse-silence`` (:class:`SilenceCollapseGenerator`): the music fades to digital silence.
- ``collapse-noise`` (:class:`NoiseCollapseGenerator`): the music is cross-faded into loud white
  noise (standard deviation 0.8) hard-clipped to [-1, 1]: flatness, loudness and clipping rise.
- ``tonal-control`` (:class:`TonalMusicGenerator`): TONAL music in one major key (a I-IV-V-I
  progression of triads over a bass line, a melody on the major scale that favours chord tones,
  :func:`render_tonal_music`); no degradation. The pentatonic music above is ambiguous between
  related keys, so a key measure reads changes in it; this one has one clear key.
- ``key-change`` (:class:`KeyChangeGenerator`): the same tonal music, cross-faded over ``ramp_s``
  from ``onset_s`` into the same piece transposed by ``shift_semitones`` (default 6, a tritone: the
  most distant key, C major -> F# major): a modulation the key descriptors must find.

A drift pipeline that works must find each onset (within a window) with the right slope signs,
and must not flag the control. Randomness comes only from the seed (``stable_hash`` of seed, note
or block index, and purpose). Constructor keywords ``onset_s`` and ``ramp_s`` set the schedule
(defaults 20 s and 2 s); pass them through ``GENERATORS.create(name, preset, settings, onset_s=...)``.
The context audio given to ``start`` is ignored: the synthetic music does not listen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from bench.core.contract import (
    NULL_RECORDER,
    PhaseRecorder,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
)
from bench.core.errors import ConfigError
from bench.core.hashing import stable_hash
from bench.core.phases import PHASE_DECODE
from bench.core.settings import Control, StreamSettings

_SCALES = {
    "major-pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}
MUSIC_GAIN = 0.25  # peak of one voice; melody + bass stay below 0.6 full scale
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# I-IV-V-I in semitones above the tonic, one chord per half bar (4 eighths): a window of a few
# seconds holds the whole cadence, which names the key (a single chord would read as its own key).
CADENCE = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7))


def degradation_gain(t_s: np.ndarray | float, onset_s: float, ramp_s: float) -> np.ndarray:
    """Degradation strength in [0, 1] at stream time ``t_s`` (0 before the onset)."""
    t = np.asarray(t_s, dtype=np.float64)
    if ramp_s <= 0:
        return (t >= onset_s).astype(np.float64)
    return np.clip((t - onset_s) / ramp_s, 0.0, 1.0)


@dataclass(frozen=True)
class _Style:
    """What the prompt chooses: tempo, scale, root, timbre."""

    note_s: float
    scale: tuple[int, ...]
    root_midi: int
    brightness: float  # harmonic roll-off exponent (smaller = brighter)

    @classmethod
    def from_prompt(cls, prompt: str) -> "_Style":
        key = " ".join(prompt.lower().split())
        rng = np.random.default_rng(stable_hash("style", key))
        bpm = float(rng.uniform(90.0, 140.0))
        names = sorted(_SCALES)
        return cls(
            note_s=60.0 / bpm / 2.0,  # eighth notes
            scale=_SCALES[names[int(rng.integers(len(names)))]],
            root_midi=int(rng.integers(48, 60)),
            brightness=float(rng.uniform(1.2, 2.0)),
        )


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def render_music(sample_rate: int, seed: int, prompt: str, start_sample: int, n_samples: int) -> np.ndarray:
    """Samples ``[start_sample, start_sample + n_samples)`` of the synthetic music, mono float64.

    A pure function of absolute time: rendering block by block equals rendering at once.
    """
    style = _Style.from_prompt(prompt)
    t = (start_sample + np.arange(n_samples, dtype=np.float64)) / sample_rate  # (S,)
    out = np.zeros(n_samples, dtype=np.float64)
    nyquist = 0.5 * sample_rate
    # two voices: melody (one note per eighth) and bass (one note per 4 eighths)
    for voice, span, octave_shift, level in (("melody", 1, 12, 1.0), ("bass", 4, -12, 0.8)):
        note_len = style.note_s * span
        first, last = int(t[0] // note_len), int(t[-1] // note_len)
        for n in range(first, last + 1):
            lo = max(0, int(math.ceil(n * note_len * sample_rate)) - start_sample)
            hi = min(n_samples, int(math.ceil((n + 1) * note_len * sample_rate)) - start_sample)
            if hi <= lo:
                continue
            rng = np.random.default_rng(stable_hash("note", int(seed), prompt, voice, n))
            degree = style.scale[int(rng.integers(len(style.scale)))]
            octave = 12 * int(rng.integers(0, 2)) if voice == "melody" else 0
            f0 = _midi_hz(style.root_midi + octave_shift + degree + octave)
            velocity = float(rng.uniform(0.6, 1.0))
            local = t[lo:hi] - n * note_len  # seconds since the note began
            envelope = np.minimum(local / 0.01, 1.0) * np.exp(-local / (0.6 * note_len))
            tone = np.zeros(hi - lo)
            for h in range(1, 7):
                if h * f0 >= nyquist:
                    break
                tone += np.sin(2.0 * np.pi * h * f0 * local) / h**style.brightness
            out[lo:hi] += MUSIC_GAIN * level * velocity * envelope * tone / 1.6
    return out


def _harmonic_tone(local_s: np.ndarray, f0_hz: float, brightness: float, nyquist_hz: float) -> np.ndarray:
    """(S,) six partials of ``f0_hz`` (amplitude ``1 / h**brightness``) below the Nyquist frequency."""
    tone = np.zeros(local_s.shape[0])
    for h in range(1, 7):
        if h * f0_hz >= nyquist_hz:
            break
        tone += np.sin(2.0 * np.pi * h * f0_hz * local_s) / h**brightness
    return tone


def _tonal_pitches(voice: str, tonic_midi: int, chord: tuple[int, ...], rng: np.random.Generator) -> list[int]:
    """MIDI pitches of one note of ``voice`` over ``chord`` (semitones above the tonic)."""
    if voice == "melody":  # chord tones 60 % of the time, else any degree of the major scale
        pool = chord if rng.random() < 0.6 else MAJOR_SCALE
        return [tonic_midi + 12 + pool[int(rng.integers(len(pool)))]]
    if voice == "chord":
        return [tonic_midi + c for c in chord]
    return [tonic_midi - 12 + chord[0]]  # bass: the chord's root


def render_tonal_music(sample_rate: int, seed: int, prompt: str, start_sample: int, n_samples: int,
                       transpose: int = 0) -> np.ndarray:
    """Samples ``[start_sample, start_sample + n_samples)`` of tonal music in one major key, mono float64.

    The prompt picks tempo, tonic (its ``root_midi``) and timbre as for :func:`render_music`; the
    seed picks the melody. Voices: a melody (one note per eighth), triads and a bass root (one per
    half bar) following :data:`CADENCE`. ``transpose`` shifts every pitch by that many semitones
    (the key-change generator's new key). A pure function of absolute time, like :func:`render_music`.
    """
    style = _Style.from_prompt(prompt)
    t = (start_sample + np.arange(n_samples, dtype=np.float64)) / sample_rate  # (S,)
    out = np.zeros(n_samples, dtype=np.float64)
    tonic = style.root_midi + int(transpose)
    for voice, span, level in (("melody", 1, 1.0), ("chord", 4, 0.5), ("bass", 4, 0.8)):
        note_len = style.note_s * span
        for n in range(int(t[0] // note_len), int(t[-1] // note_len) + 1):
            lo = max(0, int(math.ceil(n * note_len * sample_rate)) - start_sample)
            hi = min(n_samples, int(math.ceil((n + 1) * note_len * sample_rate)) - start_sample)
            if hi <= lo:
                continue
            rng = np.random.default_rng(stable_hash("tonal-note", int(seed), prompt, voice, n))
            chord = CADENCE[(n * span // 4) % len(CADENCE)]
            pitches = _tonal_pitches(voice, tonic, chord, rng)
            velocity = float(rng.uniform(0.6, 1.0))
            local = t[lo:hi] - n * note_len  # seconds since the note began
            envelope = np.minimum(local / 0.01, 1.0) * np.exp(-local / (0.6 * note_len))
            for pitch in pitches:
                tone = _harmonic_tone(local, _midi_hz(pitch), style.brightness, 0.5 * sample_rate)
                out[lo:hi] += MUSIC_GAIN * level * velocity * envelope * tone / 1.6
    return out


@dataclass
class DegradingState:
    seed: int
    block_index: int = 0
    previous: np.ndarray = field(default_factory=lambda: np.zeros(1))  # (channels,) last sample before tilt


class SyntheticMusicGenerator(StreamingGenerator):
    """``drift-control``: synthetic music, no degradation (see the module docstring)."""

    name: ClassVar[str] = "drift-control"
    degrades: ClassVar[bool] = False

    def __init__(
        self, preset: Any, settings: StreamSettings, device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32, *, onset_s: float = 20.0, ramp_s: float = 2.0,
    ) -> None:
        super().__init__(preset, settings, device, dtype)
        if not (onset_s >= 0 and math.isfinite(onset_s)):
            raise ConfigError(f"onset_s must be a finite number of seconds >= 0, got {onset_s}")
        if not (ramp_s >= 0 and math.isfinite(ramp_s)):
            raise ConfigError(f"ramp_s must be a finite number of seconds >= 0 (0 = a step), got {ramp_s}")
        self.onset_s = float(onset_s)
        self.ramp_s = float(ramp_s)
        codec = preset.dit.codec
        frame_rate = codec.sample_rate / codec.hop
        context_frames, block_frames = settings.frames(frame_rate)
        self._spec = StreamSpec(
            regime=self.name, sample_rate=codec.sample_rate, channels=codec.channels, frame_rate_hz=frame_rate,
            block_frames=block_frames, context_frames=context_frames, block_s=block_frames / frame_rate,
            context_s=context_frames / frame_rate,
        )
        self._block_samples = block_frames * codec.hop

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> DegradingState:
        return DegradingState(seed=int(seed), previous=np.zeros(self._spec.channels))

    def copy_state(self, state: DegradingState) -> DegradingState:
        return DegradingState(state.seed, state.block_index, state.previous.copy())

    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        """No matmuls: the synthesis is elementwise numpy (0 FLOPs in the matmul-level convention)."""
        return {PHASE_DECODE: 0.0}

    def schedule(self, t_s: np.ndarray | float) -> np.ndarray:
        """The true degradation strength at stream time ``t_s`` (0 everywhere for the control)."""
        if not self.degrades:
            return np.zeros_like(np.asarray(t_s, dtype=np.float64))
        return degradation_gain(t_s, self.onset_s, self.ramp_s)

    def _render(self, seed: int, prompt: str, start_sample: int, n_samples: int) -> np.ndarray:
        """(S,) mono music of samples ``[start_sample, start_sample + S)`` (before any degradation)."""
        return render_music(self._spec.sample_rate, seed, prompt, start_sample, n_samples)

    def _degrade(self, music: np.ndarray, gain: np.ndarray, state: DegradingState) -> np.ndarray:
        """(channels, S) music, (S,) gain -> (channels, S) degraded audio. Control: unchanged."""
        return music

    def _noise(self, state: DegradingState, shape: tuple[int, ...], purpose: str) -> np.ndarray:
        rng = np.random.default_rng(stable_hash("degrade", state.seed, state.block_index, purpose))
        return rng.standard_normal(shape)

    def step(
        self, state: DegradingState, control: Control, recorder: PhaseRecorder = NULL_RECORDER
    ) -> tuple[StepResult, DegradingState]:
        start = state.block_index * self._block_samples
        with recorder.phase(PHASE_DECODE):
            mono = self._render(state.seed, control.prompt, start, self._block_samples)
            music = np.repeat(mono[None, :], self._spec.channels, axis=0)  # (C, S)
            t = (start + np.arange(self._block_samples)) / self._spec.sample_rate
            gain = self.schedule(t)
            audio = self._degrade(music, gain, state).astype(np.float32)
        new_state = DegradingState(state.seed, state.block_index + 1, music[:, -1].copy())
        info = StepInfo(
            block_index=state.block_index, phase_calls={PHASE_DECODE: 1}, tokens_processed=0, cache_len=0,
            analytic_flops={PHASE_DECODE: 0.0},
            extra={"degradation_gain": float(gain[-1]), "onset_s": self.onset_s, "ramp_s": self.ramp_s},
        )
        return StepResult(audio=audio, info=info), new_state


class TiltDriftGenerator(SyntheticMusicGenerator):
    """``drift-tilt``: growing spectral tilt and white noise after ``onset_s``."""

    name: ClassVar[str] = "drift-tilt"
    degrades: ClassVar[bool] = True
    tilt_max: ClassVar[float] = 0.9
    noise_std_max: ClassVar[float] = 0.03

    def _degrade(self, music: np.ndarray, gain: np.ndarray, state: DegradingState) -> np.ndarray:
        previous = np.concatenate([state.previous[:, None], music[:, :-1]], axis=1)  # (C, S) x[n-1]
        tilted = music - self.tilt_max * gain * previous
        return tilted + self.noise_std_max * gain * self._noise(state, music.shape, "tilt-noise")


class SilenceCollapseGenerator(SyntheticMusicGenerator):
    """``collapse-silence``: the music fades to digital silence after ``onset_s``."""

    name: ClassVar[str] = "collapse-silence"
    degrades: ClassVar[bool] = True

    def _degrade(self, music: np.ndarray, gain: np.ndarray, state: DegradingState) -> np.ndarray:
        return music * (1.0 - gain)


class NoiseCollapseGenerator(SyntheticMusicGenerator):
    """``collapse-noise``: cross-fade into loud, hard-clipped white noise after ``onset_s``."""

    name: ClassVar[str] = "collapse-noise"
    degrades: ClassVar[bool] = True
    noise_std: ClassVar[float] = 0.8

    def _degrade(self, music: np.ndarray, gain: np.ndarray, state: DegradingState) -> np.ndarray:
        noise = np.clip(self.noise_std * self._noise(state, music.shape, "collapse-noise"), -1.0, 1.0)
        return (1.0 - gain) * music + gain * noise


class TonalMusicGenerator(SyntheticMusicGenerator):
    """``tonal-control``: tonal music in one major key (:func:`render_tonal_music`), no degradation."""

    name: ClassVar[str] = "tonal-control"

    def _render(self, seed: int, prompt: str, start_sample: int, n_samples: int) -> np.ndarray:
        return render_tonal_music(self._spec.sample_rate, seed, prompt, start_sample, n_samples)


class KeyChangeGenerator(TonalMusicGenerator):
    """``key-change``: the tonal music modulates by ``shift_semitones`` at ``onset_s`` (cross-faded
    over ``ramp_s``; a step when it is 0). Before the onset it equals ``tonal-control``."""

    name: ClassVar[str] = "key-change"
    degrades: ClassVar[bool] = True

    def __init__(self, *args: Any, shift_semitones: int = 6, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(shift_semitones, bool) or int(shift_semitones) != shift_semitones \
                or not 1 <= shift_semitones <= 11:
            raise ConfigError(f"shift_semitones must be an integer from 1 to 11, got {shift_semitones!r}")
        self.shift_semitones = int(shift_semitones)

    def _render(self, seed: int, prompt: str, start_sample: int, n_samples: int) -> np.ndarray:
        rate = self._spec.sample_rate
        gain = self.schedule((start_sample + np.arange(n_samples)) / rate)  # (S,) 0 = home key, 1 = new key
        home = render_tonal_music(rate, seed, prompt, start_sample, n_samples)
        if not gain.any():
            return home
        away = render_tonal_music(rate, seed, prompt, start_sample, n_samples, transpose=self.shift_semitones)
        return (1.0 - gain) * home + gain * away


DEGRADING_GENERATORS: dict[str, type[SyntheticMusicGenerator]] = {
    cls.name: cls
    for cls in (SyntheticMusicGenerator, TiltDriftGenerator, SilenceCollapseGenerator, NoiseCollapseGenerator,
                TonalMusicGenerator, KeyChangeGenerator)
}
