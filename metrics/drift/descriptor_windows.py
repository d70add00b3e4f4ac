"""Music descriptors per stream window (:mod:`metrics.descriptors`), for the drift stage.

Per (stream, window), from the window's mono mix-down alone (one window in memory, as for every
other drift metric): the descriptors of :func:`metrics.descriptors.describe` (PESTO pitch, the
Krumhansl-Schmuckler key of the CQT chroma, librosa onsets and tempo), the key's name, and two
measures of key drift against the stream's FIRST window (the anchor, as for ``self_kad_*``; NaN in
window 0, so the band rule's early windows are real comparisons):

- ``key_same_as_first``: 1 when the window's key equals the first window's, 0 when it differs, NaN
  when either has no key (silence). Its mean over streams is the fraction of streams still in their
  opening key; a modulation drops it to 0 within one window.
- ``chroma_corr_first``: Pearson r of the window's mean chroma with the first window's (no key
  decision, so it also moves for a drift between related keys); NaN for constant chroma.

Each window is described on its own (features are not shared across window edges). Against
``describe_windows`` over a whole stream this differs only at the window's edges (docs/descriptors.md:
pitched fraction within 0.03, same key, tempo within 1 bpm) and it keeps memory bounded whatever the
horizon. The cost knob is PESTO's step (:class:`WindowDescriber`'s ``pitch_step_ms``): PESTO reads
each frame on its own, so a 40 ms step reads every 4th frame of its 10 ms track.

After the last window, :func:`stream_stability` summarises each stream's windows with
:func:`metrics.descriptors.stability` (key agreement and changes with their times, tempo and
onset-rate variation).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from metrics.audio_io import AudioError
from metrics.descriptors import DEFAULT_CONFIG, DESCRIPTOR_COLUMNS, DescriptorConfig, PitchTracker, stability
from metrics.descriptors.describe import clip_features, summarise
from metrics.descriptors.pitch import PITCH_CLASS_NAMES
from metrics.descriptors.stability import key_stability_of
from metrics.descriptors.tonality import MODES, pearson_rows
from metrics.drift.descriptor_columns import STABILITY_TABLE_COLUMNS, STREAM_WINDOW_COLUMNS


def key_name(tonic: float, mode: float) -> str:
    """``"C major"`` from a (tonic, mode) pair of floats; ``"none"`` when the tonic is NaN."""
    return "none" if not math.isfinite(tonic) else f"{PITCH_CLASS_NAMES[int(tonic)]} {MODES[int(mode)]}"


def _nan_row() -> dict[str, Any]:
    row: dict[str, Any] = {c: math.nan for c in STREAM_WINDOW_COLUMNS}
    row["key"] = "none"
    return row


class WindowDescriber:
    """Describes stream windows one at a time, keeping each stream's first window as the anchor.

    ``pitch_step_ms`` is PESTO's step (the cost knob); ``config`` the descriptors' thresholds.
    Construction is cheap: PESTO and librosa load on the first window.
    """

    def __init__(self, pitch_step_ms: float = 40.0, config: DescriptorConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.tracker = PitchTracker(step_ms=pitch_step_ms)
        self._anchors: dict[int, tuple[str, np.ndarray | None]] = {}  # stream -> (key, (12,) mean chroma)

    @property
    def identity(self) -> str:
        """Descriptor parameters and pitch model (stored beside the tables)."""
        return f"{self.config.identity}; {self.tracker.identity}; each window described on its own"

    def describe_clip(self, audio: np.ndarray, sample_rate: int, source: str = "audio"
                      ) -> tuple[dict[str, Any], np.ndarray | None]:
        """(descriptor row, (12,) mean chroma or None below the level gate) of a (channels, samples)
        clip, mixed down to mono.

        Raises :class:`~metrics.audio_io.AudioError` for audio the descriptors cannot read (NaN/inf).
        """
        mono = np.asarray(audio, dtype=np.float32)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono  # (samples,)
        features = clip_features(mono, sample_rate, config=self.config, tracker=self.tracker, source=source)
        values: dict[str, Any] = dict(summarise(features, 0.0, math.inf, self.config))
        values["key"] = key_name(values["key_tonic"], values["key_mode"])
        chroma = features.chroma.mean()  # (12,)
        audible = values["level_dbfs"] >= self.config.gate_dbfs  # below the gate: no key, no chroma to compare
        return values, (chroma if audible and np.isfinite(chroma).all() else None)

    def describe_window(self, audio: np.ndarray, sample_rate: int, stream: int, index: int
                        ) -> tuple[dict[str, Any], str]:
        """(the :data:`STREAM_WINDOW_COLUMNS` of one stream window, a note or "").

        Window 0 of a stream becomes its anchor. A window the descriptors cannot read (non-finite
        samples) gets NaN values, key "none" and a note.
        """
        try:
            row, chroma = self.describe_clip(audio, sample_rate, source=f"stream {stream} window {index}")
        except AudioError as exc:
            row, chroma, note = _nan_row(), None, f"stream {stream}: no descriptors ({str(exc).split(';')[0]})"
        else:
            note = ""
        if index == 0:
            self._anchors[stream] = (row["key"], chroma)
        row.update(self._against_anchor(stream, index, row["key"], chroma))
        return row, note

    def _against_anchor(self, stream: int, index: int, key: str, chroma: np.ndarray | None) -> dict[str, float]:
        """``key_same_as_first`` and ``chroma_corr_first`` of a window (NaN for window 0 or no anchor)."""
        anchor = self._anchors.get(stream)
        if index == 0 or anchor is None:
            return {"key_same_as_first": math.nan, "chroma_corr_first": math.nan}
        first_key, first_chroma = anchor
        same = math.nan if "none" in (key, first_key) else float(key == first_key)
        corr = math.nan
        if chroma is not None and first_chroma is not None:
            corr = float(pearson_rows(chroma, first_chroma)[0, 0])
        return {"key_same_as_first": same, "chroma_corr_first": corr}


def describe_reference(clips: Sequence[np.ndarray], sample_rate: int, describer: WindowDescriber) -> pd.DataFrame:
    """One row per reference clip ``(channels, samples)``: ``clip``, ``duration_s``, the descriptors
    and the key's name (what the regimes' windows are compared with in the report)."""
    rows = []
    for j, clip in enumerate(clips):
        try:
            values, _ = describer.describe_clip(clip, sample_rate, source=f"reference clip {j}")
        except AudioError:
            values = _nan_row()
        rows.append({"clip": j, "duration_s": np.asarray(clip).shape[-1] / sample_rate,
                     **{c: values[c] for c in (*DESCRIPTOR_COLUMNS, "key")}})
    return pd.DataFrame(rows, columns=["clip", "duration_s", *DESCRIPTOR_COLUMNS, "key"])


def stream_stability(stream_windows: pd.DataFrame) -> pd.DataFrame:
    """One row per stream (:data:`STABILITY_TABLE_COLUMNS`) from its (stream, window) descriptor rows.

    ``key_change_times_s`` lists every change ("; "-separated seconds, "" for none), each dated at
    the midpoint between the two windows' centres (:func:`metrics.descriptors.stability.key_stability_of`).
    """
    rows = []
    for stream, frame in stream_windows.groupby("stream", sort=True):
        frame = frame.sort_values("window_index")
        keys = key_stability_of(frame["key_tonic"], frame["key_mode"], frame["start_s"], frame["end_s"])
        values = stability(frame)
        rows.append({
            "stream": int(stream), "n_windows": keys.n_windows, "n_windows_with_key": keys.n_with_key,
            "modal_key": keys.modal_key, "key_agreement_fraction": values["key_agreement_fraction"],
            "key_changes": int(keys.n_changes),
            "first_key_change_s": keys.change_times_s[0] if keys.change_times_s else math.nan,
            "key_change_times_s": "; ".join(f"{t:g}" for t in keys.change_times_s),
            "tempo_cv": values["tempo_cv"], "onset_rate_cv": values["onset_rate_cv"],
            "modal_key_tonic": values["modal_key_tonic"], "modal_key_mode": values["modal_key_mode"],
        })
    return pd.DataFrame(rows, columns=list(STABILITY_TABLE_COLUMNS))


__all__ = ["WindowDescriber", "describe_reference", "key_name", "stream_stability"]
