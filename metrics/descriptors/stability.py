"""Stability of descriptors over a stream, from the per-window table of ``describe_windows``.

- Key: the modal key is the most frequent window key (ties: the one that appears first);
  ``key_agreement_fraction`` = windows with the modal key / windows with a key (silent windows
  have none and are left out); ``key_changes`` = consecutive windows with a key whose keys differ;
  each change is dated at the midpoint between the two windows' centres. With windows that
  overlap, a window straddling a modulation can read a third key and count a change twice: use
  non-overlapping windows to count modulations.
- Tempo and onset rate: coefficient of variation, sample standard deviation (ddof=1) / mean over
  the windows where the value is finite; NaN with fewer than 2 such windows or a mean of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from metrics.descriptors.audio import level_dbfs, mono_audio
from metrics.descriptors.config import DEFAULT_CONFIG, DescriptorConfig
from metrics.descriptors.describe import window_bounds, window_key
from metrics.descriptors.info import STABILITY_COLUMNS
from metrics.descriptors.pitch import PITCH_CLASS_NAMES
from metrics.descriptors.tonality import MODES, chroma_cqt

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class KeyStability:
    """How steady the estimated key is across windows."""

    modal_tonic: int | None
    modal_mode: str | None
    agreement_fraction: float  # NaN when no window has a key
    n_changes: int
    change_times_s: tuple[float, ...]
    n_windows: int
    n_with_key: int

    @property
    def modal_key(self) -> str:
        return f"{PITCH_CLASS_NAMES[self.modal_tonic]} {self.modal_mode}" if self.modal_tonic is not None else "none"


def coefficient_of_variation(values: Sequence[float] | np.ndarray) -> float:
    """Sample std (ddof=1) / mean of the finite values; NaN with < 2 of them or a zero mean."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.shape[0] < 2:
        return float("nan")
    mean = float(v.mean())
    if mean == 0.0:
        return float("nan")
    return float(v.std(ddof=1) / abs(mean))


def key_stability_of(
    tonics: Sequence[float], modes: Sequence[float], start_s: Sequence[float], end_s: Sequence[float]
) -> KeyStability:
    """Key stability from per-window ``key_tonic`` / ``key_mode`` (NaN = no key) and bounds."""
    t = np.asarray(tonics, dtype=np.float64)
    m = np.asarray(modes, dtype=np.float64)
    mid = (np.asarray(start_s, dtype=np.float64) + np.asarray(end_s, dtype=np.float64)) / 2.0
    if not (t.shape == m.shape == mid.shape):
        raise ValueError(
            f"tonics, modes and window bounds must have one entry per window: {t.shape}, {m.shape}, {mid.shape}"
        )
    defined = np.isfinite(t) & np.isfinite(m)
    keys = (t[defined] + 12 * m[defined]).astype(np.int64)  # (K,) 0..23
    mids = mid[defined]
    if keys.shape[0] == 0:
        return KeyStability(None, None, float("nan"), 0, (), int(t.shape[0]), 0)
    counts = np.bincount(keys, minlength=24)
    best = counts.max()
    modal = int(next(k for k in keys if counts[k] == best))  # first to appear among the most frequent
    changed = np.flatnonzero(keys[1:] != keys[:-1])  # (C,) index i: a change between i and i+1
    return KeyStability(
        modal_tonic=modal % 12,
        modal_mode=MODES[modal // 12],
        agreement_fraction=float(best / keys.shape[0]),
        n_changes=int(changed.shape[0]),
        change_times_s=tuple(float((mids[i] + mids[i + 1]) / 2.0) for i in changed),
        n_windows=int(t.shape[0]),
        n_with_key=int(keys.shape[0]),
    )


def stability(windows: "pd.DataFrame") -> dict[str, float]:
    """Stability descriptors (keys: ``STABILITY_COLUMNS``) of a ``describe_windows`` table."""
    missing = {"start_s", "end_s", "key_tonic", "key_mode", "tempo_bpm", "onset_rate_hz"} - set(windows.columns)
    if missing:
        raise ValueError(f"the windows table lacks columns {sorted(missing)}; pass the output of describe_windows")
    keys = key_stability_of(windows["key_tonic"], windows["key_mode"], windows["start_s"], windows["end_s"])
    out = {
        "key_agreement_fraction": keys.agreement_fraction,
        "key_changes": float(keys.n_changes),
        "modal_key_tonic": float(keys.modal_tonic) if keys.modal_tonic is not None else float("nan"),
        "modal_key_mode": float(MODES.index(keys.modal_mode)) if keys.modal_mode is not None else float("nan"),
        "tempo_cv": coefficient_of_variation(windows["tempo_bpm"]),
        "onset_rate_cv": coefficient_of_variation(windows["onset_rate_hz"]),
    }
    return {k: out[k] for k in STABILITY_COLUMNS}


def key_stability(
    audio: np.ndarray,
    sample_rate: int,
    window_s: float = 10.0,
    hop_s: float = 10.0,
    *,
    config: DescriptorConfig = DEFAULT_CONFIG,
) -> KeyStability:
    """Key stability of a mono stream from chroma alone (no pitch model, no beat tracking).

    The same window keys as ``describe_windows`` (same chroma, frames centred in each window,
    windows below ``config.gate_dbfs`` have no key).
    """
    x = mono_audio(audio, sample_rate, source="key stability input")
    sr = int(sample_rate)
    chroma = chroma_cqt(x, sr, config.chroma_hop_s)
    tonics, modes, starts, ends = [], [], [], []
    for a, b in window_bounds(x.shape[0], sr, window_s, hop_s):
        key = window_key(chroma, level_dbfs(x[a:b]), a / sr, b / sr, config)
        defined = key is not None and key.defined
        tonics.append(float(key.tonic) if defined else float("nan"))
        modes.append(float(MODES.index(key.mode)) if defined else float("nan"))
        starts.append(a / sr)
        ends.append(b / sr)
    return key_stability_of(tonics, modes, starts, ends)
