"""CLAP score: agreement between each clip's audio and its OWN prompt, paired by clip id.

    per-clip score = mean over the clip's windows of cos(audio window embedding, prompt embedding)
    CLAP score     = mean of the per-clip scores          (raw, in [-1, 1]; higher is better)

Clips and prompts are paired by id (never by position in a directory listing); a prompt without
audio or audio without a prompt is an error that lists the ids. The checkpoint identity (model,
checkpoint sha256, windowing, loudness normalisation) travels with the score, because CLAP
scores from different checkpoints are not comparable. Per-clip values are kept. The bootstrap
CI resamples clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from metrics.quality.bootstrap import ConfidenceInterval, bootstrap_counts, bootstrap_interval


class PairingError(ValueError):
    """Audio clips and prompts do not pair up by id."""


@dataclass(frozen=True)
class ClapScoreResult:
    value: float  # mean per-clip cosine, in [-1, 1]
    per_clip: dict[str, float]  # clip id -> mean cosine over its windows
    n_clips: int
    identity: str  # embedder pipeline identity (checkpoint hash, windows, loudness)
    ci: ConfidenceInterval | None = None
    replicates: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value, "n_clips": self.n_clips, "identity": self.identity, "per_clip": dict(self.per_clip),
        }
        if self.ci is not None:
            out["ci"] = self.ci.as_dict()
        return out


def pair_ids(audio_ids: Any, prompt_ids: Any) -> list[str]:
    """Sorted ids present on both sides; a :class:`PairingError` naming every unpaired id."""
    a, p = set(audio_ids), set(prompt_ids)
    problems = []
    if p - a:
        missing = sorted(p - a)
        problems.append(f"{len(missing)} prompt(s) without audio: {', '.join(map(str, missing[:10]))}"
                        f"{' ...' if len(missing) > 10 else ''}")
    if a - p:
        missing = sorted(a - p)
        problems.append(f"{len(missing)} audio clip(s) without a prompt: {', '.join(map(str, missing[:10]))}"
                        f"{' ...' if len(missing) > 10 else ''}")
    if problems:
        raise PairingError("; ".join(problems) + ". Every clip id needs exactly one prompt and one audio clip")
    if not a:
        raise PairingError("no clips to score")
    return sorted(a)


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.isfinite(x).all() or (norms == 0).any():
        raise ValueError(f"{what}: embedding is zero or non-finite; cannot take a cosine")
    return x / norms


def clap_score(
    audio_embeddings: Mapping[str, np.ndarray],
    text_embeddings: Mapping[str, np.ndarray],
    *,
    identity: str,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> ClapScoreResult:
    """CLAP score from per-clip audio window embeddings ``(windows, D)`` and prompt embeddings
    ``(D,)``, both keyed by clip id. ``identity`` is the CLAP embedder's identity string."""
    ids = pair_ids(audio_embeddings.keys(), text_embeddings.keys())
    per_clip: dict[str, float] = {}
    for cid in ids:
        a = np.atleast_2d(np.asarray(audio_embeddings[cid], dtype=np.float64))  # (W, D)
        t = np.asarray(text_embeddings[cid], dtype=np.float64).reshape(-1)  # (D,)
        if a.shape[1] != t.shape[0]:
            raise ValueError(f"clip {cid!r}: audio embedding dim {a.shape[1]} != text embedding dim {t.shape[0]}")
        cos = _unit_rows(a, f"clip {cid!r} audio") @ _unit_rows(t[None, :], f"clip {cid!r} prompt")[0]
        per_clip[cid] = float(cos.mean())
    values = np.array([per_clip[c] for c in ids])
    score = float(values.mean())
    ci = reps = None
    if n_boot > 0:
        counts = bootstrap_counts(len(ids), n_boot, seed, 1)  # (B, clips)
        reps = counts @ values / len(ids)
        ci = bootstrap_interval(reps, level=level, seed=seed, unit="clip", estimate=score)
    return ClapScoreResult(value=score, per_clip=per_clip, n_clips=len(ids), identity=identity, ci=ci, replicates=reps)


def clap_score_audio(
    embedder: Any,
    audio: Mapping[str, tuple[np.ndarray, int]],
    prompts: Mapping[str, str],
    *,
    cache: Any = None,
    n_boot: int = 0,
    seed: int = 0,
) -> ClapScoreResult:
    """Embed ``audio`` (id -> (samples, sample_rate)) and ``prompts`` (id -> text) with a loaded
    CLAP embedder and score them. Pairing is checked BEFORE any embedding is computed."""
    ids = pair_ids(audio.keys(), prompts.keys())
    if cache is not None:
        audio_emb = {cid: cache.embed(embedder, audio[cid][0], audio[cid][1], source=str(cid)) for cid in ids}
    else:
        audio_emb = {cid: embedder.embed(audio[cid][0], audio[cid][1], source=str(cid)) for cid in ids}
    texts = embedder.embed_text([prompts[cid] for cid in ids])  # (N, D)
    text_emb = {cid: texts[i] for i, cid in enumerate(ids)}
    return clap_score(audio_emb, text_emb, identity=embedder.identity, n_boot=n_boot, seed=seed)
