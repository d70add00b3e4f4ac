"""Name -> lazily imported class, for generators, embedders and workloads.

Built-in entries are "module:attribute" strings imported on first use, so listing what exists
never imports torch models or metric libraries. Third-party packages add entries through the
Python entry-point group named by the registry (for generators: ``live_music_bench.generators``)
without touching this repository.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from bench.core.errors import ConfigError, did_you_mean


class Registry:
    """A mapping from names to lazily imported objects, with helpful errors."""

    def __init__(
        self,
        kind: str,
        builtins: dict[str, str],
        entry_point_group: str | None = None,
        extras: dict[str, str] | None = None,
        by_name_only: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self._targets: dict[str, str] = dict(builtins)
        # Extras can be created by name but are left out of names() (and so of "all"): tools such
        # as the drift-validation generators, which are not systems under test.
        self._extras: set[str] = set(extras or {})
        self._targets.update(extras or {})
        # Built-ins that are systems under test but run only when named, never in "all" (too slow
        # for the default run); names() leaves them out too, by_name_only() lists them.
        unknown = [n for n in by_name_only if n not in builtins]
        if unknown:
            raise ValueError(f"by_name_only names {unknown} are not built-in {kind}s")
        self._by_name_only: tuple[str, ...] = tuple(by_name_only)
        self._loaded: dict[str, Any] = {}
        self._group = entry_point_group
        self._entry_points_read = False

    def register(self, name: str, target: Any) -> None:
        """Add ``name`` -> ``target`` (an object, or a "module:attribute" string)."""
        if isinstance(target, str):
            self._targets[name] = target
            self._loaded.pop(name, None)
        else:
            self._targets[name] = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', '?')}"
            self._loaded[name] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (nothing happens when it is not registered)."""
        self._targets.pop(name, None)
        self._loaded.pop(name, None)

    def _read_entry_points(self) -> None:
        if self._entry_points_read or not self._group:
            return
        self._entry_points_read = True
        for ep in metadata.entry_points(group=self._group):
            if ep.name not in self._targets:
                self._targets[ep.name] = ep.value

    def names(self, include_extras: bool = False) -> list[str]:
        """Registered names: what "all" runs; with ``include_extras``, every name (extras and the
        by-name-only entries too)."""
        self._read_entry_points()
        hidden = self._extras | set(self._by_name_only)
        return [n for n in self._targets if include_extras or n not in hidden]

    def by_name_only(self) -> list[str]:
        """Systems under test that "all" leaves out: they run when named (``--generators NAME``)."""
        return [n for n in self._by_name_only if n in self._targets]

    def __contains__(self, name: object) -> bool:
        return name in self.names(include_extras=True)

    def get(self, name: str) -> Any:
        """The object registered as ``name``, imported on first use."""
        self._read_entry_points()
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._targets:
            raise ConfigError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._targets)} "
                f"(known: {', '.join(sorted(self._targets))})"
            )
        module_name, _, attr = self._targets[name].partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"{self.kind} {name!r} points at {self._targets[name]!r}, which cannot be imported: {exc}"
            ) from exc
        self._loaded[name] = obj
        return obj

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the class registered as ``name``."""
        return self.get(name)(*args, **kwargs)


# The null system under test: returns audio at once, measuring the harness's own overhead. Tables
# show it but never rank it; the overhead table divides by it.
NULL_GENERATOR = "noise"
# The null generator with the LMM's phase entries per block: measures the harness's cost per phase
# entry (run by name: --generators lmm,noise-phased; never ranked either).
PHASED_NULL_GENERATOR = "noise-phased"
# The generator the overhead table compares the null generator with (the streaming regime).
REFERENCE_GENERATOR = "lmdm-causal"
# MusicGen (transformers): a system under test run by name only (--generators musicgen); musicgen-small
# is far too slow for the default run on CPUs.
MUSICGEN_GENERATOR = "musicgen"
# Regimes that differ from another only by their trained weights (same code, same seeded init): a
# random-init twin of one is the other's, so the continuation stage runs it once.
SAME_RANDOM_INIT_AS = {"lmdm-causal-arc": REFERENCE_GENERATOR}

GENERATORS = Registry(
    "generator",
    {
        "outpaint": "baselines.outpaint:OutpaintGenerator",
        "lmdm-encdec": "baselines.lmdm_encdec:EncDecGenerator",
        REFERENCE_GENERATOR: "baselines.lmdm_causal:BlockCausalGenerator",
        "lmdm-causal-arc": "baselines.lmdm_causal:ArcBlockCausalGenerator",
        "lmm": "baselines.lmm:LiveMusicModelGenerator",
        NULL_GENERATOR: "baselines.noise:NoiseGenerator",
        MUSICGEN_GENERATOR: "baselines.musicgen:MusicGenGenerator",
    },
    entry_point_group="live_music_bench.generators",
    by_name_only=(MUSICGEN_GENERATOR,),
    # Generators that degrade on a schedule you set: for validating a drift pipeline, not models.
    extras={
        "drift-control": "baselines.degrading:SyntheticMusicGenerator",
        "drift-tilt": "baselines.degrading:TiltDriftGenerator",
        "collapse-silence": "baselines.degrading:SilenceCollapseGenerator",
        "collapse-noise": "baselines.degrading:NoiseCollapseGenerator",
        "tonal-control": "baselines.degrading:TonalMusicGenerator",
        "key-change": "baselines.degrading:KeyChangeGenerator",
        PHASED_NULL_GENERATOR: "baselines.noise:PhasedNoiseGenerator",
    },
)
