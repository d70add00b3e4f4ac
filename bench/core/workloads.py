"""Workloads: the identical streaming load every regime receives, defined in SECONDS.

A :class:`Workload` fixes the stream (context, block, horizon, denoising steps, CFG, sampler), the
prompt schedule (stream time -> prompt), the scenario (``offline``: blocks back to back as fast as
possible; ``realtime``: the generator may not run more than the pre-buffer plus one block ahead
of playback), the pre-buffer, the live look-ahead (``lookahead_s``: how much unplayed audio a live
generator may hold when it starts a block; the live playback model of :mod:`metrics.playback`
simulates it from the measured block times, whatever the scenario), warm-up, repeats and seed. It
is frozen, validated in ``__post_init__`` and fingerprinted, and every record carries its fingerprint.

Regimes convert seconds to their own frame rates (``StreamSettings.frames``); the workload never
changes with the regime.

Named workloads (``get_workloads(name)`` returns a list, because a sweep expands to several):

- ``smoke``: tests; the ``tiny`` preset's native stream (0.5 s context, 0.125 s blocks), 8 blocks,
  one prompt change.
- ``default``: the default run; the ``cpu`` preset's stream (4 s context, 1 s blocks, 8 steps).
- ``paper``: paper scale: 192 x 2048 / 44100 = 8.92 s context, 48 x 2048 / 44100 = 2.23 s blocks,
  8 steps, 300 s of horizon.
- ``prompt-switch``: the default stream with a prompt change in the middle.
- ``context-sweep``: the default stream at contexts of 1, 2, 4 and 8 s (one workload each,
  named ``context-sweep-c<seconds>s``), for scaling plots.

Overrides use ``workload.<field>=<value>`` (see :func:`apply_workload_overrides`); the prompt
schedule is written ``workload.prompts=0:bach chorale;16:funk groove`` (seconds:prompt pairs
separated by ``;``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from bench.core.errors import ConfigError, did_you_mean
from bench.core.hashing import dataclass_fingerprint
from bench.core.settings import StreamSettings
from bench.core.presets import coerce_value

SCENARIOS = ("offline", "realtime")
DEFAULT_PROMPT = "bach chorale, organ"
SWITCH_PROMPT = "funk groove, slap bass and drums"


@dataclass(frozen=True)
class Workload:
    """One streaming workload, identical for every regime. All times are in seconds."""

    name: str
    context_s: float
    block_s: float
    horizon_s: float  # stream seconds generated per repeat (rounded UP to whole blocks)
    steps: int = 8
    cfg: bool = False
    sampler: str = "pingpong"
    temperature: float = 1.1
    top_k: int = 40
    prompts: tuple[tuple[float, str], ...] = ((0.0, DEFAULT_PROMPT),)  # (stream time s, prompt)
    scenario: str = "offline"
    prebuffer_s: float = 0.0  # audio seconds buffered before playback starts (0 = first block)
    # Live model: unplayed audio (s) the generator may hold when it starts a block; None = one block.
    # Explicit values: > 0 and >= prebuffer_s; below block_s each block must be computed within it.
    lookahead_s: float | None = None
    warmup_blocks: int = 2  # untimed blocks of a separate stream before the timed ones
    repeats: int = 1  # timed streams per cell (seed + repeat each)
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ \t\n"):
            raise ConfigError(f"workload.name must be non-empty without spaces or slashes, got {self.name!r}")
        self.settings()  # validates context/block/steps/sampler/temperature/top_k
        if not (math.isfinite(self.horizon_s) and self.horizon_s >= self.block_s):
            raise ConfigError(
                f"workload.horizon_s ({self.horizon_s}) must be >= workload.block_s ({self.block_s}): "
                "a stream generates at least one block"
            )
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"workload.scenario must be one of {SCENARIOS}, got {self.scenario!r}")
        if not (math.isfinite(self.prebuffer_s) and self.prebuffer_s >= 0):
            raise ConfigError(f"workload.prebuffer_s must be >= 0 seconds, got {self.prebuffer_s}")
        self._validate_lookahead()
        for field_name, low in (("warmup_blocks", 0), ("repeats", 1), ("seed", 0)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ConfigError(f"workload.{field_name} must be an integer >= {low}, got {value!r}")
        self._validate_prompts()

    def _validate_lookahead(self) -> None:
        look = self.lookahead_s
        if look is None:
            return
        if isinstance(look, bool) or not isinstance(look, (int, float)) or not (math.isfinite(look) and look > 0):
            raise ConfigError(
                f"workload.lookahead_s must be a number of seconds > 0 (or none: one block), got {look!r}")
        if look < self.prebuffer_s:
            raise ConfigError(
                f"workload.lookahead_s ({look}) is shorter than workload.prebuffer_s ({self.prebuffer_s}): the player "
                "holds the pre-buffer unplayed, so a live generator is at least that far ahead; lower "
                "workload.prebuffer_s too, or raise the look-ahead"
            )

    @property
    def effective_lookahead_s(self) -> float:
        """The live model's look-ahead in seconds: ``lookahead_s``, or one block (``block_s``) when unset."""
        return float(self.block_s if self.lookahead_s is None else self.lookahead_s)

    def _validate_prompts(self) -> None:
        if not self.prompts:
            raise ConfigError("workload.prompts must hold at least one (time_s, prompt) pair starting at 0")
        times = []
        for item in self.prompts:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
                raise ConfigError(f"workload.prompts entries must be (time_s, prompt) pairs, got {item!r}")
            times.append(float(item[0]))
        if times[0] != 0.0:
            raise ConfigError(f"workload.prompts must start at time 0.0 (the stream's first prompt), got {times[0]}")
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ConfigError(f"workload.prompts times must be strictly increasing, got {times}")
        if times[-1] >= self.horizon_s:
            raise ConfigError(
                f"workload.prompts change at {times[-1]} s, at or after the horizon ({self.horizon_s} s): "
                "it would never take effect"
            )

    def settings(self) -> StreamSettings:
        """The :class:`StreamSettings` every regime receives."""
        return StreamSettings(
            context_s=self.context_s, block_s=self.block_s, steps=self.steps, cfg=self.cfg,
            sampler=self.sampler, temperature=self.temperature, top_k=self.top_k,
        )

    @property
    def n_blocks(self) -> int:
        """Timed blocks per repeat: ``ceil(horizon_s / block_s)``."""
        return max(1, math.ceil(self.horizon_s / self.block_s - 1e-9))

    def prompt_index_at(self, stream_s: float) -> int:
        """Index in ``prompts`` of the prompt active at stream time ``stream_s``."""
        index = 0
        for i, (t, _) in enumerate(self.prompts):
            if stream_s + 1e-9 >= t:
                index = i
        return index

    def prompt_at(self, stream_s: float) -> str:
        return self.prompts[self.prompt_index_at(stream_s)][1]

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the canonical form: the same workload always gives the same value."""
        return dataclass_fingerprint(self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["prompts"] = [[t, p] for t, p in self.prompts]
        return out


def _default_stream(**kw: Any) -> dict[str, Any]:
    base = dict(context_s=4.0, block_s=1.0, steps=8, prebuffer_s=1.0, warmup_blocks=2)
    base.update(kw)
    return base


PAPER_CONTEXT_S = 192 * 2048 / 44100  # 8.916 s: SAO-small latents at 21.53 Hz, release C = 192
PAPER_BLOCK_S = 48 * 2048 / 44100  # 2.229 s: release B = 48
SWEEP_CONTEXTS_S = (1.0, 2.0, 4.0, 8.0)


def _smoke() -> list[Workload]:
    return [Workload(
        name="smoke", context_s=0.5, block_s=0.125, horizon_s=1.0, steps=3, prebuffer_s=0.125,
        warmup_blocks=1, prompts=((0.0, DEFAULT_PROMPT), (0.5, SWITCH_PROMPT)),
        description="tests: tiny stream, 8 blocks, one prompt change at 0.5 s",
    )]


def _default() -> list[Workload]:
    return [Workload(
        name="default", horizon_s=64.0, **_default_stream(),
        description="default run: 4 s context, 1 s blocks, 8 steps, 64 s (64 blocks: p90 valid)",
    )]


def _paper() -> list[Workload]:
    return [Workload(
        name="paper", context_s=PAPER_CONTEXT_S, block_s=PAPER_BLOCK_S, horizon_s=300.0, steps=8,
        prebuffer_s=PAPER_BLOCK_S, warmup_blocks=2,
        description="paper scale: C=192, B=48 latents at 21.53 Hz (8.92 s / 2.23 s), 8 steps, 300 s",
    )]


def _long() -> list[Workload]:
    return [Workload(
        name="long", horizon_s=16.0, **_default_stream(),
        description="drift contrast: the default stream; timing over 16 s, the drift stage over 3 x 300 s "
                    "continuing held-out music",
    )]


def _prompt_switch() -> list[Workload]:
    return [Workload(
        name="prompt-switch", horizon_s=32.0, prompts=((0.0, DEFAULT_PROMPT), (16.0, SWITCH_PROMPT)),
        **_default_stream(), description="default stream, prompt change at 16 s of 32 s",
    )]


def _context_sweep() -> list[Workload]:
    return [
        Workload(
            name=f"context-sweep-c{c:g}s", horizon_s=16.0, **_default_stream(context_s=c),
            description=f"context sweep: {c:g} s context, 1 s blocks, 8 steps, 16 s",
        )
        for c in SWEEP_CONTEXTS_S
    ]


WORKLOADS: dict[str, Callable[[], list[Workload]]] = {
    "smoke": _smoke,
    "default": _default,
    "paper": _paper,
    "long": _long,
    "prompt-switch": _prompt_switch,
    "context-sweep": _context_sweep,
}


def workload_names() -> list[str]:
    """The names :func:`get_workloads` accepts."""
    return list(WORKLOADS)


def get_workloads(name: str) -> list[Workload]:
    """The workloads named ``name`` (a sweep gives several); ConfigError with suggestions otherwise."""
    if name not in WORKLOADS:
        raise ConfigError(
            f"unknown workload {name!r}{did_you_mean(name, WORKLOADS)} (known workloads: {', '.join(WORKLOADS)})"
        )
    return WORKLOADS[name]()


def parse_prompts(text: str) -> tuple[tuple[float, str], ...]:
    """``"0:bach chorale;16:funk groove"`` -> ((0.0, "bach chorale"), (16.0, "funk groove"))."""
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        time_text, sep, prompt = part.partition(":")
        try:
            t = float(time_text)
        except ValueError:
            t = float("nan")
        if not sep or not math.isfinite(t):
            raise ConfigError(
                f"workload.prompts entry {part!r} must look like <seconds>:<prompt>, "
                "for example workload.prompts=0:bach chorale;16:funk groove"
            )
        out.append((t, prompt.strip()))
    return tuple(out)


def _parse_lookahead(value: Any) -> float | None:
    """``workload.lookahead_s``: seconds, or ``none`` / ``block`` for the default (one block)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "block", "")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"field 'workload.lookahead_s' expects seconds (a float) or 'none', got {value!r}") from None


def apply_workload_overrides(workload: Workload, overrides: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Workload:
    """A copy of ``workload`` with fields replaced: ``{"horizon_s": "60", "prompts": "0:a;8:b"}``.

    Keys are field names (without the ``workload.`` prefix); string values are coerced to the
    field's type. All fields are replaced at once, then the result is validated (so a longer
    horizon and a later prompt change can be set together).
    """
    items = list(overrides.items() if isinstance(overrides, Mapping) else overrides)
    names = [f.name for f in dataclasses.fields(Workload)]
    changes: dict[str, Any] = {}
    for key, value in items:
        if key == "name":
            raise ConfigError("workload.name cannot be overridden (it names the cell); choose --workload instead")
        if key not in names:
            allowed = ", ".join(f"workload.{n}" for n in names if n != "name")
            raise ConfigError(f"unknown field 'workload.{key}'{did_you_mean(key, names)} (allowed: {allowed})")
        if key == "prompts":
            changes[key] = parse_prompts(value) if isinstance(value, str) else tuple((float(t), str(p)) for t, p in value)
        elif key == "lookahead_s":
            changes[key] = _parse_lookahead(value)
        else:
            changes[key] = coerce_value(value, getattr(workload, key), f"workload.{key}")
    return dataclasses.replace(workload, **changes)


__all__ = [
    "Workload", "WORKLOADS", "SCENARIOS", "get_workloads", "workload_names", "apply_workload_overrides",
    "parse_prompts",
]
