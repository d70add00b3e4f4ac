"""The drift streams of one generator: ``n_streams`` long streams through the harness runner.

Stream ``i`` has seed ``stream.seed + i`` and prompt ``prompts[i % len(prompts)]`` and starts from
silence, or (``drift.context = "reference"``) continues the first ``context_s`` seconds of a held-out
reference clip (spread over the split: :func:`reference_contexts`) under that clip's short prompt; it
runs through
:meth:`bench.app.runner.Runner.run_stream` (offline scenario, wall clock) and is written to a float32
WAV as it is produced, so memory stays bounded: nothing accumulates but a few integers per block.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from bench.app.clocks import WallClock
from bench.app.drift.config import DriftWorkload
from bench.app.gc_heap import frozen_startup_heap
from bench.app.runner import Runner
from bench.core.errors import ConfigError
from bench.core.presets import Preset
from bench.core.registry import GENERATORS
from bench.core.storage import AudioWriter


def reference_contexts(drift: DriftWorkload, sample_rate: int) -> list[tuple[str, str, np.ndarray]]:
    """(clip id, short prompt, mono context of ``context_s`` seconds) for streams ``0 .. n-1``: the
    data set's reference clips ``floor(i * clips / n)``, so the streams continue different pieces. Raises the data set's missing-data error (with the build
    command), or ConfigError when the data set's rate is not the generator's or it has too few clips."""
    from baselines.data.build import load_dataset  # the embedded data set (bench.app is the top layer)

    dataset = load_dataset()
    if dataset.sample_rate != sample_rate:
        raise ConfigError(f"drift.context=reference: the data set is {dataset.sample_rate} Hz but the generator runs at "
                          f"{sample_rate} Hz (use a preset at the data set's rate, e.g. cpu, or drift.context=silence)")
    clips = dataset.clips("reference")
    if len(clips) < drift.n_streams:
        raise ConfigError(f"drift.context=reference needs one reference clip per stream: {drift.n_streams} streams, "
                          f"{len(clips)} clips")
    n = int(round(drift.stream.context_s * sample_rate))
    # spread over the split (clips of one piece are neighbours): clip floor(i * len / n) for stream i
    chosen = [clips[i * len(clips) // drift.n_streams] for i in range(drift.n_streams)]
    out = []
    for clip in chosen:
        audio = np.asarray(dataset.read(clip), dtype=np.float32)
        if audio.shape[0] < n:
            raise ConfigError(f"reference clip {clip['id']} is {audio.shape[0] / sample_rate:g} s, shorter than the "
                              f"{drift.stream.context_s:g} s context")
        out.append((str(clip["id"]), str(clip["short_prompt"]), audio[:n]))
    return out


def resolve_factory(generator: str | type) -> Any:
    """The class (factory) of ``generator``: a registry name looked up, a class returned as is."""
    return GENERATORS.get(generator) if isinstance(generator, str) else generator


def open_generator(
    generator: str | type, preset: Preset, drift: DriftWorkload, device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32, generator_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, str]:
    """(generator instance, its name) for the drift streams: built from a registry name or a class,
    at ``drift``'s stream settings; ``generator_kwargs`` go to its constructor."""
    factory = resolve_factory(generator)
    gen = factory(preset, drift.stream.settings(), device=device, dtype=dtype, **dict(generator_kwargs or {}))
    return gen, (generator if isinstance(generator, str) else (gen.name or factory.__name__))


def generate_stream(gen: Any, name: str, drift: DriftWorkload, stream: int, out_dir: Path, runner: Runner,
                    context: tuple[str, str, np.ndarray] | None = None) -> dict[str, Any]:
    """Generate stream ``stream`` of ``gen`` into ``out_dir/stream<stream>.wav``; its row of the
    streams table. ``context`` is the stream's (clip id, prompt, mono audio) from
    :func:`reference_contexts`, or None to start from silence. Call under ``torch.inference_mode()``.
    A failure removes the partial WAV and propagates."""
    writer = AudioWriter(Path(out_dir) / f"stream{stream}.wav", gen.spec.sample_rate, gen.spec.channels)
    workload, context_audio, clip = drift.stream_workload(stream), None, ""
    if context is not None:
        clip, prompt, mono = context
        workload = dataclasses.replace(workload, prompts=((0.0, prompt),))
        context_audio = np.repeat(mono[None, :], gen.spec.channels, axis=0)
    try:
        _, _, row = runner.run_stream(gen, workload, stream, writer, {"generator": name, "workload": drift.name},
                                      context_audio)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {
        "generator": name, "stream": stream, "seed": int(row["seed"]), "prompt": workload.prompts[0][1],
        "context": drift.context, "context_clip": clip,
        "audio_path": str(writer.path), "audio_s": float(row["audio_s"]), "n_blocks": int(row["n_blocks"]),
        "sample_rate": int(gen.spec.sample_rate), "channels": int(gen.spec.channels),
        "block_s": float(gen.spec.block_s), "peak_mem_bytes": int(row["peak_mem_bytes"]),
        "peak_mem_kind": row["peak_mem_kind"], "wall_s": float(row["wall_s"]),
    }


@frozen_startup_heap()  # the runner's collection before each stream walks only what the streams made
def generate_streams(
    generator: str | type, preset: Preset, drift: DriftWorkload, out_dir: Path, device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32, generator_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None, step_timeout_s: float | None = None,
) -> pd.DataFrame:
    """Generate the drift streams of ``generator`` into ``out_dir/stream<i>.wav``, one after another
    in this process; one row per stream.

    Goes through the harness runner (wall clock, offline scenario, audio appended to the WAV block by
    block). ``generator_kwargs`` are passed to the generator's constructor (for example the onset of
    a :mod:`baselines.degrading` generator). A step running longer than ``step_timeout_s`` raises
    :class:`bench.app.guards.StepTimeout` (None: no limit). :mod:`bench.app.drift.parallel` runs
    the same streams in worker processes.
    """
    runner = Runner(WallClock(), progress=progress, count_flops=False, step_timeout_s=step_timeout_s)
    with torch.inference_mode():
        gen, name = open_generator(generator, preset, drift, device, dtype, generator_kwargs)
        contexts = reference_contexts(drift, gen.spec.sample_rate) if drift.context == "reference" else None
        rows = [generate_stream(gen, name, drift, i, Path(out_dir), runner, contexts[i] if contexts else None)
                for i in range(drift.n_streams)]
    return pd.DataFrame(rows)
