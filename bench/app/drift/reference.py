"""The drift stage's reference set: the clips window metrics (FAD, KAD) measure distance to.

Choices (``DriftMetricsConfig.reference``; every table names the one used):

- ``"dataset"``: the first ``reference_clips`` clips of the REFERENCE split of the embedded data set
  (:mod:`baselines.data`, built with ``python -m baselines.data build``), cut to one window and
  passed through the preset's DiT codec (encode + decode), so the reference has the band limit of
  what the regimes can emit;
- ``"synthetic"`` (the API's default: needs nothing built): :func:`baselines.degrading.render_music`
  clips (seeds 10000+, the drift prompts) through the same codec; distances to it measure "how far
  from codec-limited plucked-harmonic music", not musical quality;
- ``"auto"`` (the drift stage's default): ``"dataset"`` when it is built at the streams' sample
  rate, else ``"synthetic"`` (logged);
- any other value: a folder of reference audio files at the streams' sample rate, used as is.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from baselines.codecs import make_codec
from baselines.data import load_dataset
from baselines.degrading import render_music
from bench.app.drift.config import DriftMetricsConfig, DriftWorkload
from bench.core.errors import ConfigError
from bench.core.presets import Preset
from metrics.audio_io import list_audio_files, read_audio

log = logging.getLogger(__name__)

REFERENCE_SEED = 10_000
Clips = tuple[list[np.ndarray], str]  # clips (channels, samples) and the sentence that names them


def _codec_round_trip(preset: Preset, monos: Sequence[np.ndarray]) -> Clips:
    """Each mono clip -> (channels, n) through the preset's DiT codec (encode + decode)."""
    codec_cfg = preset.dit.codec
    codec = make_codec(codec_cfg)
    out = []
    for mono in monos:
        n = max(1, mono.shape[0] // codec.hop) * codec.hop
        audio = torch.from_numpy(np.repeat(np.asarray(mono[:n], dtype=np.float32)[None, :], codec_cfg.channels, axis=0))
        with torch.no_grad():
            out.append(codec.decode(codec.encode(audio)).numpy().astype(np.float32))  # (C, n)
    how = f"through the preset '{preset.name}' DiT codec ({codec_cfg.describe()})"
    return out, how


def synthetic_reference_clips(preset: Preset, drift: DriftWorkload, clip_samples: int, clips: int) -> Clips:
    """Synthetic reference clips ``(channels, samples)`` and the sentence that names them."""
    rate = preset.dit.codec.sample_rate
    monos = [render_music(rate, REFERENCE_SEED + j, drift.prompt_of(j), 0, clip_samples) for j in range(clips)]
    out, how = _codec_round_trip(preset, monos)
    name = (
        f"synthetic: {clips} clips x {out[0].shape[1] / rate:g} s of baselines.degrading.render_music "
        f"(seeds {REFERENCE_SEED}-{REFERENCE_SEED + clips - 1}, drift prompts) {how}; not a real music data set"
    )
    return out, name


def dataset_reference_clips(preset: Preset, clip_samples: int, clips: int) -> Clips:
    """The first ``clips`` reference-split clips of the embedded data set, one window long, through
    the preset's codec. Raises ``baselines.data.DatasetMissingError`` when it is not built."""
    dataset = load_dataset()
    if dataset.sample_rate != preset.dit.codec.sample_rate:
        raise ConfigError(
            f"the data set is at {dataset.sample_rate} Hz but preset '{preset.name}' streams at "
            f"{preset.dit.codec.sample_rate} Hz; use reference='synthetic' or a folder at the streams' rate"
        )
    chosen = list(dataset.clips("reference"))[:clips]
    if len(chosen) < 2:
        raise ConfigError(f"the data set's reference split has {len(chosen)} clip(s); the drift reference needs >= 2")
    monos = [dataset.read(c)[:clip_samples] for c in chosen]
    out, how = _codec_round_trip(preset, monos)
    name = (
        f"dataset: {len(out)} reference-split clips x {out[0].shape[1] / dataset.sample_rate:g} s of the embedded "
        f"data set (manifest sha256 {dataset.manifest_sha256()[:12]}) {how}"
    )
    return out, name


def reference_clips_from_dir(folder: str, sample_rate: int) -> Clips:
    """Every audio file in ``folder`` (validated by :mod:`metrics.audio_io`) at ``sample_rate``."""
    files = list_audio_files(folder)
    clips = [read_audio(p, expected_sample_rate=sample_rate).samples for p in files]
    return clips, f"folder {folder}: {len(files)} files"


def reference_clips(preset: Preset, drift: DriftWorkload, metrics_config: DriftMetricsConfig,
                    clip_samples: int, sample_rate: int) -> Clips:
    """The reference clips that ``metrics_config.reference`` chooses (module docstring)."""
    kind, clips = metrics_config.reference, metrics_config.reference_clips
    if kind == "auto":
        try:
            return dataset_reference_clips(preset, clip_samples, clips)
        except (FileNotFoundError, ConfigError) as exc:
            log.info("drift reference: the data set is not usable (%s); using the synthetic reference", exc)
            kind = "synthetic"
    if kind == "dataset":
        return dataset_reference_clips(preset, clip_samples, clips)
    if kind == "synthetic":
        return synthetic_reference_clips(preset, drift, clip_samples, clips)
    return reference_clips_from_dir(kind, sample_rate)
