"""Note events -> mono audio through a General MIDI SoundFont, with tinysoundfont.

The SoundFont is ``TimGM6mb.sf2``, shipped inside the ``pretty_midi`` wheel (licence: see
``baselines/data/licence.py``). tinysoundfont (a pip wheel of the C library TinySoundFont)
renders it deterministically: one MIDI channel per part (channel 9, the GM drum channel, is
skipped), note-on/off at sample-exact times, stereo float32 at ``RENDER_RATE`` Hz, then averaged
to mono and decimated to the data set's rate with a polyphase filter (``scipy.signal.
resample_poly``, which also removes the renderer's aliasing above the new Nyquist frequency).

An :class:`Ensemble` maps parts to GM programs: part 0 is the top staff; with more parts than
programs the last program repeats (the lowest instrument doubles the low voices).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from baselines.data.corpus import NoteEvent

RENDER_RATE = 32000  # Hz the synthesiser runs at (decimated to the data set's rate afterwards)
TAIL_S = 1.0  # seconds rendered after the last note-off (release tails)
SYNTH_GAIN_DB = -6.0  # headroom inside the synthesiser (the output is normalised afterwards)
DRUM_CHANNEL = 9


@dataclass(frozen=True)
class Ensemble:
    """GM programs (0-based) from the top part down, and the words prompts use for it."""

    programs: tuple[int, ...]
    prompt: str  # full prompt words ("church organ")
    short: str  # short prompt word ("organ")

    def program_of(self, part: int) -> int:
        return self.programs[min(part, len(self.programs) - 1)]


ENSEMBLES: dict[str, Ensemble] = {
    "church organ": Ensemble((19,), "church organ", "organ"),
    "choir": Ensemble((52,), "choir", "choir"),
    "string quartet": Ensemble((40, 40, 41, 42), "string quartet", "strings"),
    "string ensemble": Ensemble((48,), "string ensemble", "strings"),
    "brass ensemble": Ensemble((56, 60, 57, 58), "brass ensemble", "brass"),
    "woodwind quartet": Ensemble((73, 68, 71, 70), "woodwind quartet", "woodwinds"),
    "piano": Ensemble((0,), "piano", "piano"),
    "harpsichord": Ensemble((6,), "harpsichord", "harpsichord"),
    "recorder consort": Ensemble((74,), "recorder consort", "recorders"),
    "harp": Ensemble((46,), "harp", "harp"),
    "nylon guitar": Ensemble((24,), "nylon string guitar", "guitar"),
    "fiddle": Ensemble((110,), "solo fiddle", "fiddle"),
    "flute": Ensemble((73,), "solo flute", "flute"),
    "accordion": Ensemble((21,), "accordion", "accordion"),
    "tin whistle": Ensemble((78,), "tin whistle", "whistle"),
    "banjo": Ensemble((105,), "banjo", "banjo"),
}


def soundfont_path() -> Path:
    """``TimGM6mb.sf2`` inside the installed pretty_midi package."""
    try:
        import pretty_midi
    except ImportError as exc:  # pragma: no cover - the data extra is installed by `make`
        raise ImportError(
            "the data set needs pretty_midi (for its General MIDI SoundFont): pip install -e '.[data]'"
        ) from exc
    path = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"pretty_midi ships no SoundFont at {path}; reinstall pretty_midi==0.2.11.post0")
    return path


@lru_cache(maxsize=1)
def soundfont_sha256() -> str:
    return hashlib.sha256(soundfont_path().read_bytes()).hexdigest()


def _channel(part: int) -> int:
    """MIDI channel of a part: 0..15 without the drum channel, wrapping after 15 parts."""
    channels = [c for c in range(16) if c != DRUM_CHANNEL]
    return channels[part % len(channels)]


def render_events(
    events: Sequence[NoteEvent],
    ensemble: Ensemble,
    bpm: float,
    transpose: int,
    velocities: Sequence[int],
    sample_rate: int,
    max_seconds: float,
) -> np.ndarray:
    """Render note events -> (samples,) float32 mono at ``sample_rate``.

    Onsets are in quarter notes (``bpm`` quarter notes per minute); pitches shift by ``transpose``
    semitones (notes leaving 0..127 are dropped); part ``p`` plays ``ensemble.program_of(p)`` at
    ``velocities[p]``. Notes starting at or after ``max_seconds`` are not played; the output is
    ``min(end of the last note, max_seconds) + TAIL_S`` long.
    """
    try:
        import tinysoundfont
    except ImportError as exc:  # pragma: no cover - installed by the Makefile
        raise ImportError(
            "the data set renders with tinysoundfont: pip install --no-deps tinysoundfont==0.3.7 "
            "(--no-deps: its pyaudio dependency is only for live playback and needs PortAudio headers)"
        ) from exc
    if bpm <= 0:
        raise ValueError(f"bpm must be > 0, got {bpm}")
    samples_per_q = 60.0 / bpm * RENDER_RATE
    limit = int(round(max_seconds * RENDER_RATE))
    actions: list[tuple[int, int, int, int, int]] = []  # (sample, on?, channel, key, velocity)
    end = 0
    for e in events:
        key = e.pitch + transpose
        start = int(round(e.onset_q * samples_per_q))
        if not 0 <= key <= 127 or start >= limit:
            continue
        stop = min(max(start + 1, int(round((e.onset_q + e.duration_q) * samples_per_q))), limit)
        channel = _channel(e.part)
        velocity = int(velocities[min(e.part, len(velocities) - 1)])
        actions.append((start, 1, channel, key, velocity))
        actions.append((stop, 0, channel, key, 0))
        end = max(end, stop)
    if not actions:
        raise ValueError("no playable notes (all outside the MIDI range or after max_seconds)")
    # at equal times, note-offs (0) come before note-ons (1), so a repeated note re-strikes
    actions.sort()
    synth = tinysoundfont.Synth(gain=SYNTH_GAIN_DB, samplerate=RENDER_RATE)
    sfid = synth.sfload(str(soundfont_path()))
    parts = sorted({e.part for e in events})
    for part in parts:
        synth.program_select(_channel(part), sfid, 0, ensemble.program_of(part))
    total = end + int(round(TAIL_S * RENDER_RATE))
    chunks: list[np.ndarray] = []
    cursor = 0
    for sample, on, channel, key, velocity in actions:
        if sample > cursor:
            chunks.append(np.frombuffer(synth.generate_simple(sample - cursor), dtype=np.float32).copy())
            cursor = sample
        if on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if total > cursor:
        chunks.append(np.frombuffer(synth.generate_simple(total - cursor), dtype=np.float32).copy())
    stereo = np.concatenate(chunks).reshape(-1, 2)  # (samples, 2) interleaved
    mono = stereo.astype(np.float64).mean(axis=1)
    return resample_to(mono, RENDER_RATE, sample_rate).astype(np.float32)


def resample_to(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (float64), exact identity when the rates match."""
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float64)
    from scipy.signal import resample_poly  # lazy: about 1 s to import, and only resampling needs it

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(np.asarray(audio, dtype=np.float64), rate_out // g, rate_in // g)


def normalise(audio: np.ndarray, target_rms: float, peak_limit: float) -> tuple[np.ndarray, float]:
    """Scale to ``target_rms`` unless that pushes the peak above ``peak_limit`` (then scale to
    the peak limit). Returns (audio, gain)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if rms <= 0 or peak <= 0:
        raise ValueError("cannot normalise silent audio")
    gain = min(target_rms / rms, peak_limit / peak)
    return (audio * gain).astype(np.float32), gain


__all__ = [
    "Ensemble", "ENSEMBLES", "RENDER_RATE", "soundfont_path", "soundfont_sha256", "render_events",
    "resample_to", "normalise",
]
