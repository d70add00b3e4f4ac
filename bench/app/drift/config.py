"""What the drift stage runs and how it scores: :class:`DriftWorkload` (streams, horizon, windows),
:func:`drift_workload_for` (the drift workload of a harness workload, with ``drift.*`` overrides)
and :class:`DriftMetricsConfig` (embedder, reference set, bootstrap, band rule)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from bench.core.errors import ConfigError
from bench.core.hashing import dataclass_fingerprint
from bench.core.presets import coerce_value
from bench.core.workloads import DEFAULT_PROMPT, Workload
from metrics.drift.signal_stats import DEFAULT_SIGNAL_STATS, SignalStatsConfig
from metrics.drift.summary import DEFAULT_BAND_RULE, BandRule
from metrics.drift.windows import WindowSpec

DRIFT_SCHEMA_VERSION = 1
# PESTO's step for the drift descriptors. PESTO reads each frame on its own, so a 40 ms step reads
# every 4th frame of its native 10 ms track (pitched fraction within 0.01 on synthetic music,
# measured in docs/drift.md) at a quarter of the cost; --set drift.descriptor_pitch_step_ms=10 for all.
DEFAULT_PITCH_STEP_MS = 40.0
MIN_PITCH_STEP_MS, MAX_PITCH_STEP_MS = 5.0, 100.0
DRIFT_PROMPTS: tuple[str, ...] = (
    DEFAULT_PROMPT,
    "funk groove, slap bass and drums",
    "ambient pads, slow evolving synth",
    "solo jazz piano, swing",
    "string quartet, pizzicato",
    "techno, four on the floor",
    "acoustic folk guitar, fingerpicking",
    "brass fanfare, marching band",
)


DRIFT_CONTEXTS = ("silence", "reference")
MAX_DRIFT_WORKERS = 256  # worker processes of the drift streams (bench.app.drift.parallel)


@dataclass(frozen=True)
class DriftWorkload:
    """Long-horizon streams: ``n_streams`` x ``stream.horizon_s`` seconds, windows of ``window_s``.

    ``stream`` is the harness workload whose stream (context, block, steps, CFG, sampler, seed,
    horizon) every stream uses; its prompts, repeats, warm-up and scenario are replaced per stream
    (one prompt each, offline, no warm-up: drift measures audio, not time).
    """

    name: str
    stream: Workload
    n_streams: int = 3
    prompts: tuple[str, ...] = DRIFT_PROMPTS
    window_s: float = 5.0
    hop_s: float = 5.0
    description: str = ""
    descriptors: bool = True  # music descriptors per window (metrics.drift.descriptor_windows)
    descriptor_pitch_step_ms: float = DEFAULT_PITCH_STEP_MS  # PESTO step: the descriptors' cost knob
    # how streams start: "silence", or "reference": each stream continues the first context_s seconds
    # of a held-out reference clip (spread over the split) under that clip's short prompt (generate.py)
    context: str = "silence"

    def __post_init__(self) -> None:
        if self.context not in DRIFT_CONTEXTS:
            raise ConfigError(f"drift.context must be one of {', '.join(DRIFT_CONTEXTS)}, got {self.context!r}")
        if not isinstance(self.descriptors, bool):
            raise ConfigError(f"drift.descriptors must be true or false, got {self.descriptors!r}")
        if not (MIN_PITCH_STEP_MS <= self.descriptor_pitch_step_ms <= MAX_PITCH_STEP_MS):
            raise ConfigError(
                f"drift.descriptor_pitch_step_ms must be from {MIN_PITCH_STEP_MS:g} to {MAX_PITCH_STEP_MS:g} ms "
                f"(PESTO's step; 10 is its native step, larger reads every k-th frame), "
                f"got {self.descriptor_pitch_step_ms!r}"
            )
        if isinstance(self.n_streams, bool) or int(self.n_streams) != self.n_streams or self.n_streams < 1:
            raise ConfigError(f"drift.n_streams must be an integer >= 1, got {self.n_streams!r}")
        if not self.prompts or not all(isinstance(p, str) for p in self.prompts):
            raise ConfigError("drift.prompts must be a non-empty tuple of prompt strings")
        if not (self.window_s >= 0.4):
            raise ConfigError(
                f"drift.window_s ({self.window_s}) must be >= 0.4 s: integrated loudness needs one 400 ms gating block"
            )
        if not (self.hop_s > 0):
            raise ConfigError(f"drift.hop_s must be > 0 seconds, got {self.hop_s}")
        if self.stream.horizon_s < self.window_s:
            raise ConfigError(
                f"drift horizon ({self.stream.horizon_s} s) is shorter than one window ({self.window_s} s); "
                "raise drift.horizon_s or lower drift.window_s"
            )

    @property
    def horizon_s(self) -> float:
        """Seconds of audio per stream."""
        return self.stream.horizon_s

    def seed_of(self, stream: int) -> int:
        """The seed of stream ``stream``."""
        return self.stream.seed + stream

    def prompt_of(self, stream: int) -> str:
        """The prompt of stream ``stream`` (the prompts in turn)."""
        return self.prompts[stream % len(self.prompts)]

    def stream_workload(self, stream: int) -> Workload:
        """The harness workload of stream ``stream`` (run as repeat ``stream``: seed = seed + stream)."""
        return dataclasses.replace(
            self.stream, name=f"{self.name}-stream{stream}", prompts=((0.0, self.prompt_of(stream)),),
            scenario="offline", warmup_blocks=0, repeats=self.n_streams,
        )

    def window_spec(self, block_s: float, sample_rate: int) -> WindowSpec:
        """Block-aligned windows for streams of ``block_s`` blocks at ``sample_rate``."""
        return WindowSpec.from_seconds(self.window_s, self.hop_s, block_s, sample_rate)

    def fingerprint(self) -> str:
        """Stable hash of every field."""
        return dataclass_fingerprint(self)

    def to_dict(self) -> dict[str, Any]:
        """The record written to ``manifest.json`` and ``drift/config.json``."""
        return {
            "name": self.name, "n_streams": self.n_streams, "prompts": list(self.prompts),
            "window_s": self.window_s, "hop_s": self.hop_s, "horizon_s": self.horizon_s,
            "seeds": [self.seed_of(i) for i in range(self.n_streams)], "stream": self.stream.to_dict(),
            "fingerprint": self.fingerprint(), "description": self.description,
            "descriptors": self.descriptors, "descriptor_pitch_step_ms": self.descriptor_pitch_step_ms,
            "context": self.context,
        }


# Horizon, streams and window per harness workload (the stream settings come from the workload).
# The smoke workload's 2 s windows are too short for a key (they hold one or two chords) or a tempo
# (fewer than 4 beats), so its descriptors are off unless asked for (drift.descriptors=true).
DRIFT_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": dict(horizon_s=12.0, n_streams=2, window_s=2.0, hop_s=2.0, descriptors=False),
    "default": dict(horizon_s=120.0, n_streams=3, window_s=10.0, hop_s=10.0),  # past ARC-Forcing's ~30 s rollouts
    "paper": dict(horizon_s=300.0, n_streams=8, window_s=10.0, hop_s=10.0),
    # error accumulation well past ARC-Forcing's ~30 s training rollouts, continuing held-out music
    # (from silence the embedded block-causal model shows no measurable drift in 300 s; docs/arc.md)
    "long": dict(horizon_s=300.0, n_streams=3, window_s=10.0, hop_s=10.0, context="reference"),
}
DRIFT_FIELDS = ("horizon_s", "n_streams", "window_s", "hop_s", "prompts", "seed", "descriptors",
                "descriptor_pitch_step_ms", "context")


def _drift_params(workload: Workload, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults for ``workload`` updated with ``overrides`` (text coerced to each field's type)."""
    params: dict[str, Any] = dict(DRIFT_DEFAULTS.get(workload.name, DRIFT_DEFAULTS["default"]))
    params["prompts"] = DRIFT_PROMPTS
    params["seed"] = workload.seed
    params.setdefault("descriptors", True)
    params.setdefault("descriptor_pitch_step_ms", DEFAULT_PITCH_STEP_MS)
    params.setdefault("context", "silence")
    for key, value in (overrides or {}).items():
        if key not in DRIFT_FIELDS:
            raise ConfigError(f"unknown drift field {key!r}; allowed: {', '.join('drift.' + f for f in DRIFT_FIELDS)}")
        if key == "prompts":
            params[key] = tuple(p.strip() for p in value.split(";") if p.strip()) if isinstance(value, str) \
                else tuple(value)
        else:
            params[key] = coerce_value(value, params[key], f"drift.{key}")
    return params


def _context_text(context: str) -> str:
    return "silence" if context == "silence" else "held-out reference music (the data set's reference split)"


def drift_workload_for(workload: Workload, overrides: Mapping[str, Any] | None = None) -> DriftWorkload:
    """The drift workload that goes with harness workload ``workload``.

    Its stream is ``workload``'s; horizon, streams and windows come from :data:`DRIFT_DEFAULTS`
    (``default``'s for workloads without an entry) and ``overrides`` (keys of
    :data:`DRIFT_FIELDS`; strings are coerced; ``prompts`` is ``"a;b;c"``).
    """
    params = _drift_params(workload, overrides)
    horizon_s, n_streams = float(params["horizon_s"]), int(params["n_streams"])
    window_s, hop_s = float(params["window_s"]), float(params["hop_s"])
    stream = dataclasses.replace(workload, horizon_s=horizon_s, prompts=((0.0, params["prompts"][0]),),
                                 seed=int(params["seed"]))
    fallback = "" if workload.name in DRIFT_DEFAULTS else " (defaults of 'default')"
    return DriftWorkload(
        name=f"drift-{workload.name}", stream=stream, n_streams=n_streams, prompts=params["prompts"],
        window_s=window_s, hop_s=hop_s,
        description=(f"{n_streams} streams x {horizon_s:g} s of the '{workload.name}' stream, "
                     f"windows {window_s:g} s every {hop_s:g} s, from {_context_text(str(params['context']))}"
                     f"{fallback}"),
        descriptors=params["descriptors"], descriptor_pitch_step_ms=float(params["descriptor_pitch_step_ms"]),
        context=str(params["context"]),
    )


@dataclass(frozen=True)
class DriftMetricsConfig:
    """How windows are scored (see :mod:`metrics.drift.windowed` and docs/drift.md)."""

    embedder: str = "logmel"  # H3's weight-free default: columns say "logmel"
    clap_checkpoint: str = ""  # local CLAP checkpoint path; "" = no CLAP score (not measured)
    clap_text_dir: str = ""  # local roberta-base config/tokenizer folder for CLAP ("" = H3's weights dir)
    reference: str = "synthetic"  # "synthetic", "dataset", "auto" or a folder (bench.app.drift.reference)
    reference_clips: int = 8
    max_frames_per_window: int = 2000  # pooled over streams; seeded subsample above this
    max_reference_frames: int = 2000  # KAD reference sample (FAD uses every reference frame)
    bootstrap_resamples: int = 200
    confidence: float = 0.95
    seed: int = 0
    band_rule: BandRule = DEFAULT_BAND_RULE
    signal_stats: SignalStatsConfig = DEFAULT_SIGNAL_STATS
