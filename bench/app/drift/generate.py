"""The drift streams of one generator: ``n_streams`` long streams through the harness runner.

Stream ``i`` has seed ``stream.seed + i`` and prompt ``prompts[i % len(prompts)]``; it runs through
:meth:`bench.app.runner.Runner.run_stream` (offline scenario, wall clock) and is written to a float32
WAV as it is produced, so memory stays bounded: nothing accumulates but a few integers per block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch

from bench.app.clocks import WallClock
from bench.app.drift.config import DriftWorkload
from bench.app.runner import Runner
from bench.core.presets import Preset
from bench.core.registry import GENERATORS
from bench.core.storage import AudioWriter


def generate_streams(
    generator: str | type, preset: Preset, drift: DriftWorkload, out_dir: Path, device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32, generator_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Generate the drift streams of ``generator`` into ``out_dir/stream<i>.wav``; one row per stream.

    Goes through the harness runner (wall clock, offline scenario, audio appended to the WAV block by
    block). ``generator_kwargs`` are passed to the generator's constructor (for example the onset of
    a :mod:`baselines.degrading` generator).
    """
    out_dir = Path(out_dir)
    runner = Runner(WallClock(), progress=progress, count_flops=False)
    rows = []
    with torch.inference_mode():
        factory = GENERATORS.get(generator) if isinstance(generator, str) else generator
        gen = factory(preset, drift.stream.settings(), device=device, dtype=dtype, **dict(generator_kwargs or {}))
        name = generator if isinstance(generator, str) else (gen.name or factory.__name__)
        for i in range(drift.n_streams):
            writer = AudioWriter(out_dir / f"stream{i}.wav", gen.spec.sample_rate, gen.spec.channels)
            try:
                _, _, row = runner.run_stream(gen, drift.stream_workload(i), i, writer,
                                              {"generator": name, "workload": drift.name})
            except BaseException:
                writer.abort()
                raise
            writer.close()
            rows.append({
                "generator": name, "stream": i, "seed": int(row["seed"]), "prompt": drift.prompt_of(i),
                "audio_path": str(writer.path), "audio_s": float(row["audio_s"]), "n_blocks": int(row["n_blocks"]),
                "sample_rate": int(gen.spec.sample_rate), "channels": int(gen.spec.channels),
                "block_s": float(gen.spec.block_s), "peak_mem_bytes": int(row["peak_mem_bytes"]),
                "peak_mem_kind": row["peak_mem_kind"], "wall_s": float(row["wall_s"]),
            })
    return pd.DataFrame(rows)
