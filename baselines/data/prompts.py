"""Text prompts from a clip's metadata: style, composer, instruments, tempo and key.

Two prompts per clip:

- full:  ``"baroque chorale by bach, church organ, moderate tempo, 84 bpm, g minor"``
- short: ``"bach chorale, organ"`` (the form of the benchmark's default prompt)

Models are trained on both (and on the empty prompt, for classifier-free guidance). The key is
estimated from the rendered notes (after transposition) with the Krumhansl-Kessler key
profiles: the duration-weighted pitch-class histogram is correlated with the 24 rotated major and
minor profiles and the best one wins (ties go to the first in C, C#, ... order, major first).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from baselines.data.corpus import NoteEvent

PITCH_NAMES = ("c", "c#", "d", "eb", "e", "f", "f#", "g", "ab", "a", "bb", "b")
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def pitch_class_histogram(events: Sequence[NoteEvent], transpose: int = 0) -> np.ndarray:
    """(12,) total duration (quarter notes) per pitch class, after ``transpose`` semitones."""
    hist = np.zeros(12)
    for e in events:
        hist[(e.pitch + transpose) % 12] += e.duration_q
    return hist


def estimate_key(events: Sequence[NoteEvent], transpose: int = 0) -> str:
    """``"g minor"``-style key name (see module docstring); "" when there are no notes."""
    hist = pitch_class_histogram(events, transpose)
    if hist.sum() <= 0 or np.allclose(hist, hist[0]):
        return ""
    best, best_r = "", -np.inf
    for tonic in range(12):
        for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best_r + 1e-12:
                best, best_r = f"{PITCH_NAMES[tonic]} {mode}", r
    return best


def tempo_word(bpm: float) -> str:
    """slow (< 72), moderate (< 108), lively (< 150), fast."""
    if bpm < 72:
        return "slow"
    if bpm < 108:
        return "moderate"
    if bpm < 150:
        return "lively"
    return "fast"


def full_prompt(style: str, composer: str, instruments: str, bpm: int, key: str) -> str:
    by = f" by {composer}" if composer and composer not in ("traditional", "anonymous") else ""
    trad = ", traditional" if composer == "traditional" else ""
    parts = [f"{style}{by}{trad}", instruments, f"{tempo_word(bpm)} tempo", f"{int(bpm)} bpm"]
    if key:
        parts.append(key)
    return ", ".join(parts)


def short_prompt(short_style: str, instrument_word: str) -> str:
    return f"{short_style}, {instrument_word}"


__all__ = ["estimate_key", "pitch_class_histogram", "tempo_word", "full_prompt", "short_prompt", "PITCH_NAMES"]
