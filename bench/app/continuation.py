"""The continuation stage of ``python run_all.py``: does each regime continue real music?

The drift stage starts its streams from silence; this stage primes every generator with real
music it never trained on and scores what it plays next. For each of the first ``clips`` clips
of the embedded data set's REFERENCE split (held-out pieces), the clip's first ``context_s``
seconds (the run's workload: the same context, block length, steps and sampler as every other
stage) prime a stream that generates ``blocks`` blocks under the clip's short prompt; the clip's
true next seconds are the reference. Each built-in regime that loads trained weights also runs
as its random-initialised twin (same architecture, seeded weights), so the table shows what
training bought; ``lmdm-causal-arc`` has no twin of its own when ``lmdm-causal`` runs, since its
random init is that regime's (same code, same seeded weights: it would be computed twice).
Scores (:class:`metrics.continuation_scores.ContinuationScorer`): pitched fraction, continuation
fidelity (paired - shuffled chroma r, CI over clips), log-mel KAD to the true continuations, level.
Rows ``true continuation`` (the ceiling) come first.

Layout under ``<run>/continuation/``: ``scores.csv|parquet`` (one row per system),
``config.json`` (settings, clip ids, scorer identity, statuses, or why nothing was measured)
and ``examples/<system>.wav`` (context + continuation of the first clip, for listening).
Without the data set (or the music descriptors' packages) the stage writes only ``config.json``
saying "not measured" and what to install or build. One generator's failure is recorded and the others still run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from bench.app.guards import step_deadline
from bench.app.runner import WEIGHTS_FIELDS
from bench.core.errors import ConfigError
from bench.core.presets import Preset, apply_overrides
from bench.core.registry import GENERATORS, NULL_GENERATOR, SAME_RANDOM_INIT_AS
from bench.core.settings import Control
from bench.core.storage import (
    CONTINUATION_DIR, CONTINUATION_TRUE_ROW, STATUS_FAILED, WEIGHTS_RANDOM_INIT, WEIGHTS_TRAINED, STATUS_OK, AudioWriter, safe_name, write_json, write_table,
)
from bench.core.workloads import Workload

log = logging.getLogger(__name__)

TRUE_ROW, TRAINED, RANDOM_INIT = CONTINUATION_TRUE_ROW, WEIGHTS_TRAINED, WEIGHTS_RANDOM_INIT


@dataclass(frozen=True)
class ContinuationSettings:
    """How many held-out clips, how much generated per clip, and the scoring's bootstrap."""

    clips: int = 24
    blocks: int = 2
    twins: bool = True  # also run each trained regime with its seeded random init
    n_boot: int = 500
    seed: int = 0
    pitch_step_ms: float = 40.0  # PESTO step (10 = every frame; 40 reads every 4th at a quarter of the cost)

    def __post_init__(self) -> None:
        if int(self.clips) != self.clips or self.clips < 2:
            raise ConfigError(f"continuation.clips must be an integer >= 2 (fidelity needs 2 pairs), got {self.clips!r}")
        if int(self.blocks) != self.blocks or self.blocks < 1:
            raise ConfigError(f"continuation.blocks must be an integer >= 1, got {self.blocks!r}")
        if self.n_boot < 10:
            raise ConfigError(f"continuation.n_boot must be >= 10, got {self.n_boot!r}")


def _systems(preset: Preset, generators: Sequence[str], twins: bool) -> list[tuple[str, str, Preset]]:
    """(generator, weights label, preset) of every system to run: each generator as configured,
    plus the random-init twin of each built-in regime whose preset names trained weights (but not
    of one in :data:`~bench.core.registry.SAME_RANDOM_INIT_AS` when the regime named there runs too)."""
    systems = []
    for name in generators:
        group = WEIGHTS_FIELDS.get(name)
        weights = getattr(getattr(preset, group), "weights", "") if group else ""
        label = TRAINED if weights else ("-" if name == NULL_GENERATOR or not group else RANDOM_INIT)
        systems.append((name, label, preset))
        if twins and weights and SAME_RANDOM_INIT_AS.get(name) not in generators:
            systems.append((name, RANDOM_INIT, apply_overrides(preset, [f"{group}.weights="])))
    return systems


def _continue(generator: str, preset: Preset, workload: Workload, contexts: Sequence[np.ndarray],
              prompts: Sequence[str], blocks: int, seed: int, device: str, dtype: torch.dtype,
              step_timeout_s: float | None = None) -> list[np.ndarray]:
    """One stream per context: ``blocks`` blocks after priming -> (channels, samples) each. A start
    (priming) or step running longer than ``step_timeout_s`` raises StepTimeout (None: no limit)."""
    gen = GENERATORS.create(generator, preset, workload.settings(), device=device, dtype=dtype)
    channels = gen.spec.channels
    out = []
    with torch.inference_mode():
        for i, (context, prompt) in enumerate(zip(contexts, prompts)):
            control = Control(prompt)
            with step_deadline(step_timeout_s, f"{generator}'s start() on clip {i}"):
                state = gen.start(control, seed=seed + i, context_audio=np.repeat(context[None, :], channels, axis=0))
            pieces = []
            for block in range(blocks):
                with step_deadline(step_timeout_s, f"{generator}'s step() on clip {i}, block {block}"):
                    result, state = gen.step(state, control)
                pieces.append(np.asarray(result.audio, dtype=np.float32))
            gen.stop(state)
            out.append(np.concatenate(pieces, axis=-1))
    return out


def _load_clips(settings: ContinuationSettings, workload: Workload, sample_rate: int, generated_s: float
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[str]]:
    """(contexts, true continuations, prompts, clip ids) of the first reference clips (mono)."""
    from baselines.data.build import load_dataset  # raises DatasetMissingError with the build command

    dataset = load_dataset()
    if dataset.sample_rate != sample_rate:
        raise ConfigError(f"the data set is {dataset.sample_rate} Hz but the preset's generators run at "
                          f"{sample_rate} Hz (the stage runs at the data set's rate, e.g. the cpu preset)")
    clips = dataset.clips("reference")[: settings.clips]
    ctx_n, gen_n = int(round(workload.context_s * sample_rate)), int(round(generated_s * sample_rate))
    audio = [np.asarray(dataset.read(c), dtype=np.float32) for c in clips]
    if len(audio) < 2 or ctx_n + gen_n > audio[0].shape[0]:
        raise ConfigError(f"the continuation stage needs >= 2 reference clips of >= {(ctx_n + gen_n) / sample_rate:g} s "
                          f"(context {workload.context_s:g} s + {generated_s:g} s generated); the data set has "
                          f"{len(audio)} of {audio[0].shape[0] / sample_rate if audio else 0:g} s")
    return ([a[:ctx_n] for a in audio], [a[ctx_n:ctx_n + gen_n] for a in audio],
            [c["short_prompt"] for c in clips], [c["id"] for c in clips])


def _example(folder: Path, name: str, context: np.ndarray, continuation: np.ndarray, rate: int) -> str:
    mono = continuation.mean(axis=0) if continuation.ndim == 2 else continuation
    audio = np.clip(np.concatenate([context, mono]), -1.0, 1.0).astype(np.float32)[None, :]
    writer = AudioWriter(folder / "examples" / f"{safe_name(name)}.wav", rate, 1)
    writer.write(audio)
    writer.close()
    return str(writer.path.relative_to(folder))


def run_continuation_stage(out: str | Path, preset: Preset, workload: Workload, generators: Sequence[str],
                           device: str = "cpu", dtype: torch.dtype = torch.float32,
                           settings: ContinuationSettings | None = None,
                           step_timeout_s: float | None = None) -> list[dict[str, Any]]:
    """Run the stage into ``<out>/continuation/`` (module docstring); returns the failed statuses.
    A generator whose start or step runs longer than ``step_timeout_s`` fails (None: no limit)."""
    from metrics.continuation_scores import ContinuationScorer

    settings = settings or ContinuationSettings()
    folder = Path(out) / CONTINUATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rate = preset.dit.codec.sample_rate
    generated_s = settings.blocks * workload.block_s
    record: dict[str, Any] = {"kind": "continuation_config", "settings": dataclasses.asdict(settings),
                              "workload": workload.name, "context_s": workload.context_s, "generated_s": generated_s,
                              "steps": workload.steps, "sampler": workload.sampler, "cfg": workload.cfg}
    try:
        contexts, truths, prompts, ids = _load_clips(settings, workload, rate, generated_s)
    except (FileNotFoundError, ConfigError) as exc:  # no data set (DatasetMissingError), or not at this rate
        write_json(folder / "config.json", {**record, "measured": False, "reason": f"not measured: {exc}"})
        log.warning("continuation stage: not measured (%s)", exc)
        return []
    t0 = time.perf_counter()
    try:
        scorer = ContinuationScorer(contexts, truths, rate, n_boot=settings.n_boot, seed=settings.seed,
                                    pitch_step_ms=settings.pitch_step_ms)
    except ImportError as exc:  # the music descriptors' packages (pesto-pitch, librosa) are an extra
        reason = (f"not measured: {exc}; install the metrics extra (pip install 'live-music-bench[metrics]') "
                  "or pass --no-continuation")
        write_json(folder / "config.json", {**record, "measured": False, "reason": reason})
        log.warning("continuation stage: %s", reason)
        return []
    rows = [{"generator": TRUE_ROW, "weights": "-", **scorer.score(truths)}]
    examples = {TRUE_ROW: _example(folder, TRUE_ROW, contexts[0], truths[0], rate)}
    statuses = []
    for generator, label, system_preset in _systems(preset, generators, settings.twins):
        name, started = f"{generator} ({label})" if label != "-" else generator, time.perf_counter()
        try:
            made = _continue(generator, system_preset, workload, contexts, prompts, settings.blocks, settings.seed,
                             device, dtype, step_timeout_s)
            rows.append({"generator": generator, "weights": label,
                         **scorer.score([m.mean(axis=0) for m in made])})
            examples[name] = _example(folder, name, contexts[0], made[0], rate)
            statuses.append({"system": name, "generator": generator, "status": STATUS_OK, "error": "",
                             "wall_s": time.perf_counter() - started})
            log.info("continuation %s: pitched %.2f, fidelity %+.3f, KAD %.2f", name, rows[-1]["pitched_fraction"],
                     rows[-1]["chroma_fidelity_difference"], rows[-1]["kad_logmel"])
        except Exception as exc:  # noqa: BLE001 - one failure never stops the other systems
            statuses.append({"system": name, "generator": generator, "status": STATUS_FAILED,
                             "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - started})
            log.error("continuation %s: failed: %s", name, exc)
    write_table(folder, "scores", pd.DataFrame(rows))
    write_json(folder / "config.json", {**record, "measured": True, "clip_ids": ids, "prompts": prompts,
                                        "scorer": scorer.identity, "examples": examples, "statuses": statuses,
                                        "wall_s": time.perf_counter() - t0})
    return [s for s in statuses if s["status"] != STATUS_OK]


__all__ = ["ContinuationSettings", "RANDOM_INIT", "TRAINED", "TRUE_ROW", "run_continuation_stage"]
