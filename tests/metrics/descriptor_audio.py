"""Synthetic known-answer audio for the descriptor tests (no files, no downloads, seeded).

Notes are harmonic tones (partials 1..6 with amplitudes ``0.6 ** (k - 1)``, partials above 0.45 x
the sample rate dropped) under a 10 ms linear attack and an exponential decay, so every note has
an onset and a clear fundamental. Pitches are MIDI numbers (A4 = 69 = 440 Hz).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SAMPLE_RATE = 16_000

MAJOR_SCALE_STEPS = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
HARMONIC_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 11)


def midi_to_hz(midi: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def harmonic_note(
    midis: float | Sequence[float],
    duration_s: float,
    sample_rate: int = SAMPLE_RATE,
    *,
    amplitude: float = 0.25,
    decay_per_s: float = 3.0,
    n_partials: int = 6,
) -> np.ndarray:
    """One note (or a chord, given several MIDI numbers) as (samples,) float32."""
    pitches = [float(midis)] if np.isscalar(midis) else [float(m) for m in midis]
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate  # (T,)
    tone = np.zeros_like(t)
    for midi in pitches:
        f0 = midi_to_hz(midi)
        for k in range(1, n_partials + 1):
            if k * f0 < 0.45 * sample_rate:
                tone += 0.6 ** (k - 1) * np.sin(2.0 * np.pi * k * f0 * t)
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-decay_per_s * t)
    return (amplitude / len(pitches) * tone * envelope).astype(np.float32)


def sequence(
    events: Sequence[float | Sequence[float]], bpm: float, sample_rate: int = SAMPLE_RATE, **note_kwargs: float
) -> np.ndarray:
    """One event (note or chord) per beat at ``bpm``, concatenated: (samples,) float32."""
    beat_s = 60.0 / bpm
    return np.concatenate([harmonic_note(e, beat_s, sample_rate, **note_kwargs) for e in events])


def c_major_scale_midis() -> list[int]:
    """C4 up two octaves to C6 and back down: 29 notes."""
    up = [60 + 12 * octave + step for octave in range(2) for step in MAJOR_SCALE_STEPS] + [84]
    return up + up[-2::-1]


def triad(root_midi: int, minor: bool = False) -> tuple[int, int, int]:
    """Root-position triad."""
    return (root_midi, root_midi + (3 if minor else 4), root_midi + 7)


def cadence(tonic_midi: int, minor: bool = False) -> list[tuple[int, int, int]]:
    """I-IV-V-I (major) or i-iv-V-i (harmonic minor: the dominant is major)."""
    return [
        triad(tonic_midi, minor),
        triad(tonic_midi + 5, minor),
        triad(tonic_midi + 7, False),
        triad(tonic_midi, minor),
    ]


def key_melody(tonic_midi: int, minor: bool, n_notes: int, rng: np.random.Generator) -> list[int]:
    """A random melody from the key's scale (harmonic minor for minor keys), tonic-weighted."""
    steps = HARMONIC_MINOR_STEPS if minor else MAJOR_SCALE_STEPS
    # tonic, third and fifth twice as likely: a melody that implies its key, as real ones do
    weights = np.array([2.0 if i in (0, 2, 4) else 1.0 for i in range(len(steps))])
    picks = rng.choice(len(steps), size=n_notes, p=weights / weights.sum())
    return [tonic_midi + steps[i] for i in picks]


def white_noise(duration_s: float, sample_rate: int = SAMPLE_RATE, *, seed: int = 0, rms: float = 0.1) -> np.ndarray:
    """Gaussian white noise, (samples,) float32."""
    rng = np.random.default_rng(seed)
    return (rms * rng.standard_normal(int(round(duration_s * sample_rate)))).astype(np.float32)
