"""The runner: owns the streaming loop, so every regime is timed the same way.

For one cell (a generator and a workload):

1. prepare (untimed): build the generator;
2. warm up (untimed): a separate stream of ``workload.warmup_blocks`` blocks, discarded;
3. timed streams, one per repeat (seed = workload seed + repeat): ``start``, then
   ``workload.n_blocks`` steps. The timed region is exactly::

       t0 = clock.now_ns(); result, state = gen.step(state, control, timer); t1 = clock.now_ns()

   Nothing else happens inside it: no printing, logging, progress updates, ``.item()`` or
   DataFrame work. Between steps (untimed) the runner resolves the phase timer, appends the audio
   block to its WAV file, reads the KV-cache size and appends raw integers to lists; the
   DataFrames are built after the stream. In the ``realtime`` scenario it also waits until the
   playback model (:func:`metrics.playback.simulate_playback`) allows the next block to start;
4. FLOPs pass (untimed, separate stream): the first block and one steady block (block 1) with a
   :class:`bench.app.flops.FlopRecorder`, beside the analytic FLOPs the step reports.

The prompt of block k is the workload's prompt at stream time ``A_{k-1}`` (audio produced before
block k), so a change at ``t_c`` takes effect at the first block starting at or after ``t_c``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import inspect
import json
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from baselines.sat_dit import resolve_config_path
from baselines.weights import file_identity, resolve_weights
from bench.app.attainable import ATTAINABLE_COLUMNS, AttainableRecorder, ComposedRecorder, attainable_columns
from bench.app.clocks import Clock
from bench.app.guards import check_block, limited_step
from bench.core.contract import StreamingGenerator
from bench.core.hashing import dataclass_fingerprint
from bench.core.settings import Control
from bench.app.flops import FlopRecorder
from bench.core.registry import GENERATORS
from bench.core.storage import SCHEMA_VERSION, AudioWriter
from bench.core.workloads import Workload
from metrics.playback import simulate_playback

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
# The harness code a cell's numbers depend on, relative to the bench package.
_HARNESS_FILES = ("app/runner.py", "app/clocks.py", "core/contract.py", "core/settings.py", "core/workloads.py")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (as written in tables and JSON)."""
    return str(dtype).replace("torch.", "")


def code_hash(generator: str) -> str:
    """sha256 (16 hex) of the generator's package sources and the harness's timing code.

    Like asv's benchmark versions: when the code that produced a cell changes, its hash changes
    and ``--resume`` runs it again.
    """
    digest = hashlib.sha256()
    try:
        cls = GENERATORS.get(generator)
        source = Path(inspect.getsourcefile(cls) or "")
        files = sorted(source.parent.glob("*.py")) if source.name else []
    except Exception as exc:  # noqa: BLE001 - an unimportable generator still gets a (distinct) hash
        digest.update(f"unimportable: {exc}".encode())
        files = []
    bench_root = Path(__file__).resolve().parents[1]
    for path in files + [bench_root / name for name in _HARNESS_FILES]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# The weights field each built-in regime loads (baselines/weights.py resolves it per regime).
WEIGHTS_FIELDS = {"outpaint": "dit", "lmdm-encdec": "dit", "lmdm-causal": "dit", "lmdm-causal-arc": "dit", "lmm": "lmm"}


def weights_identity(generator: str, preset: Any) -> dict[str, Any] | None:
    """The checkpoint ``generator`` loads at ``preset`` with its sha256 (None for seeded weights or a
    generator without a weights field). A file replaced at the same path changes the hash, so a
    resumed run never reuses a cell timed with other weights. ConfigError for a bad ``builtin:``."""
    if generator in CHECKPOINT_DIRS:
        return _directory_identity(*CHECKPOINT_DIRS[generator], preset)
    group = WEIGHTS_FIELDS.get(generator)
    value = getattr(getattr(preset, group, None), "weights", "") if group else ""
    inputs = model_inputs_identity(group, preset)
    if not value:
        return inputs or None
    path = resolve_weights(f"{group}.weights", value, generator)
    return {"field": f"{group}.weights", "value": value, **file_identity(path), **inputs}


# Generators that load a checkpoint DIRECTORY (transformers' save_pretrained): (group, field).
CHECKPOINT_DIRS = {"musicgen": ("musicgen", "checkpoint")}


def _directory_identity(group: str, field: str, preset: Any) -> dict[str, Any] | None:
    """A checkpoint directory's weight and config files with their sha256 (None when unset: random
    weights). Files replaced at the same path change the cell hash."""
    value = getattr(getattr(preset, group, None), field, "")
    if not value:
        return None
    return {"field": f"{group}.{field}", "value": value, "files": _folder_files(value)}


def _folder_files(folder: str) -> list[dict[str, Any]]:
    """Identity (path, sha256, bytes) of a saved model directory's weight and config files."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return []
    return [file_identity(f) for f in sorted(path.glob("*")) if f.suffix in (".safetensors", ".bin", ".json")]


def model_inputs_identity(group: str | None, preset: Any) -> dict[str, Any]:
    """What else shapes a DiT's output besides its weights: a stable-audio-tools model config
    (``dit.arch=sat``, with its sha256) and the prompt conditioning (a local T5 directory, or the
    offline hashing featuriser when absent, then nothing is added so earlier hashes stay valid)."""
    dit = getattr(preset, "dit", None) if group == "dit" else None
    if dit is None:
        return {}
    out: dict[str, Any] = {}
    if getattr(dit, "arch", "native") == "sat" and dit.config:
        out["backbone"] = {"arch": "sat", "config": dit.config, **file_identity(resolve_config_path(dit.config))}
    if getattr(dit, "text_encoder", ""):
        out["text_encoder"] = {"dir": dit.text_encoder, "files": _folder_files(dit.text_encoder)}
    return out


def cell_hash(generator: str, preset: Any, workload: Workload, device: str, dtype: torch.dtype,
              compile_mode: str = "off") -> str:
    """Identity of a cell's result: schema, generator and its code, preset, workload, device, dtype, the
    torch thread count in effect, the compile mode and the sha256 of the weights file the generator loads."""
    weights = weights_identity(generator, preset)
    key = {
        **({"weights": weights} if weights else {}),  # seeded weights: the hash of earlier runs stays valid
        **({"compile": compile_mode} if compile_mode != "off" else {}),  # eager: earlier hashes stay valid
        "schema_version": SCHEMA_VERSION, "generator": generator, "code": code_hash(generator),
        "preset": dataclass_fingerprint(preset), "workload": workload.fingerprint(), "device": str(device),
        "dtype": dtype_name(dtype), "torch_threads": torch.get_num_threads(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# Memory


class _MemoryProbe:
    """Peak memory over a region: the CUDA allocator on GPU, the process's peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_allocator" if device.type == "cuda" else "process_rss_peak"
        self.baseline = 0

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = int(torch.cuda.memory_allocated(self.device))
            return
        try:  # Linux: writing 5 to clear_refs resets this process's peak RSS (VmHWM)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.baseline = _proc_status_bytes("VmRSS")
        except OSError:
            self.kind = "process_rss_peak_lifetime"  # cannot reset: peak since the process began
            self.baseline = 0

    def peak(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.kind == "process_rss_peak":
            return _proc_status_bytes("VmHWM")
        scale = 1 if sys.platform == "darwin" else 1024
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


# ------------------------------------------------------------------------------------------
# Records


@dataclass
class CellResult:
    """The four record tables of a cell, plus facts about the generator."""

    blocks: pd.DataFrame
    phases: pd.DataFrame
    streams: pd.DataFrame
    flops: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"blocks": self.blocks, "phases": self.phases, "streams": self.streams, "flops": self.flops}


@dataclass
class _RawStream:
    """What the timed loop of one stream recorded: clock readings (ns) and per-block raw values."""

    origin_ns: int  # clock reading just before ``start``
    start_ns: int  # ``start`` duration (from origin)
    t0s: list[int]
    t1s: list[int]
    audio_samples: list[int]
    offsets: list[int]  # first sample of each block in the stream's audio
    prompt_idx: list[int]
    kv_bytes: list[int]
    infos: list[Any]
    timings: list[dict]
    peak_mem_bytes: int
    peak_mem_baseline_bytes: int
    peak_mem_kind: str


def _block_and_phase_rows(raw: _RawStream, workload: Workload, sample_rate: int,
                          common: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of the blocks and phases tables of one stream (built after the stream, untimed)."""
    block_rows, phase_rows = [], []
    for k, info in enumerate(raw.infos):
        row = {**common, "block_index": k}
        t0, t1, samples, offset = raw.t0s[k], raw.t1s[k], raw.audio_samples[k], raw.offsets[k]
        block_rows.append({
            **row,
            "prompt_index": raw.prompt_idx[k], "prompt": workload.prompts[raw.prompt_idx[k]][1],
            "latency_ns": t1 - t0, "latency_ms": (t1 - t0) / 1e6,
            "gen_start_ns": t0 - raw.origin_ns, "gen_end_ns": t1 - raw.origin_ns,
            "audio_samples": samples, "audio_offset_samples": offset,
            "audio_s": samples / sample_rate, "audio_start_s": offset / sample_rate,
            "tokens_processed": int(info.tokens_processed), "cache_len": int(info.cache_len),
            "kv_cache_bytes": raw.kv_bytes[k], "transient_kv_bytes": int(info.transient_kv_bytes),
            "analytic_flops": float(sum(info.analytic_flops.values())),
            "reported_block_index": int(info.block_index),
        })
        timings = raw.timings[k]
        for phase in sorted(set(timings) | set(info.phase_calls)):
            timing = timings.get(phase)
            phase_rows.append({
                **row, "phase": phase,
                "calls": timing.calls if timing else 0,
                "reported_calls": int(info.phase_calls.get(phase, 0)),
                "latency_ms": timing.total_ns / 1e6 if timing else 0.0,
                "analytic_flops": float(info.analytic_flops.get(phase, 0.0)),
            })
    return block_rows, phase_rows


SDPA_OP = "scaled_dot_product"  # aten::_scaled_dot_product_{flash,efficient,cudnn,...}_attention*


NOT_PROBED = "not probed (no warm-up block)"


@contextlib.contextmanager
def attention_probe(found: list[str]) -> Iterator[None]:
    """Profile what runs inside (an untimed warm-up block) and append to ``found`` the attention
    kernels it dispatched: the aten ``scaled_dot_product`` variants (flash / efficient / cudnn /
    math, CPU or CUDA), or "none" when no such op ran (no attention, or a compiled graph that
    lowered attention into its own kernels: then that is what ran). Never guessed from flags.

    The profiler records host activity only, on every device: the aten ops are host-side events
    (recorded so on an H200 too), and device activity would start NVIDIA's CUPTI, which PyTorch
    does not always detach afterwards (``TEARDOWN_CUPTI=0`` where CUDA graphs are in use), so the
    later CUDA calls of the process, timed steps included, could pay for its callbacks."""
    from torch.profiler import ProfilerActivity, profile  # only here: the timed path never imports it

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # its CPU-only "gpuGetDeviceCount failed" is no error of ours

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        yield
    found.append(attention_kernel_names(profiled_op_names(prof)))


def attention_kernel_names(event_names: Iterable[str]) -> str:
    """The aten ``scaled_dot_product`` kernels among a profile's event names, comma-separated
    without the ``aten::`` prefix, or "none". Only aten ops count: a compiled graph's own kernels
    are named after the ops they fused (on an H200, inductor's Triton kernels and its autotuner's
    records carried ``_scaled_dot_product_cudnn_attention`` in their names, 20 of them in one
    cell), and the dispatcher ``aten::scaled_dot_product_attention`` is no kernel."""
    names = sorted({name.removeprefix("aten::") for name in event_names
                    if name.startswith("aten::") and SDPA_OP in name and name != "aten::scaled_dot_product_attention"})
    return ",".join(names) or "none"


def profiled_op_names(prof: Any) -> set[str]:
    """The names of every event a finished ``torch.profiler.profile`` recorded.

    Read from the profiler's raw results: ``key_averages()`` first builds a Python object per event,
    seconds for the ~40,000 events of one LMM block (3.0 s against 0.07 s, measured on a 2-core CPU),
    which made the probe cost 1.4-3.6 s per cell. Falls back to ``key_averages()`` where a torch
    version lacks the raw results."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is not None:
        try:
            return {event.name() for event in results.events()}
        except (AttributeError, TypeError):  # another torch's result object
            pass
    return {event.key for event in prof.key_averages()}


class Runner:
    """Runs cells with one clock. ``progress(n)`` is called between steps, never inside one."""

    def __init__(self, clock: Clock, progress: Progress | None = None, count_flops: bool = True,
                 step_timeout_s: float | None = None, cell_timeout_s: float | None = None,
                 compile_mode: str = "off") -> None:
        self.clock = clock
        self.compile_mode = compile_mode  # "off" (eager) or a torch.compile mode (StreamingGenerator.compile)
        self.execution: dict[str, Any] = {"execution": "eager"}  # what the last built generator runs
        self.progress = progress or (lambda n: None)
        self.count_flops = count_flops
        self.step_timeout_s = step_timeout_s  # a step running longer fails the cell (bench.app.guards)
        self.cell_timeout_s = cell_timeout_s  # the steps of one cell running longer in all fail it
        self._cell_deadline: float | None = None  # perf_counter() when the cell's time is up (run_cell)

    def _deadline(self, what: str):  # noqa: ANN202 - a context manager
        """The time limit of the next step (:func:`bench.app.guards.limited_step`)."""
        return limited_step(what, self.step_timeout_s, self._cell_deadline, self.cell_timeout_s)

    # -- pieces ------------------------------------------------------------------------------

    def build(self, generator: str, preset: Any, workload: Workload, device: str | torch.device,
              dtype: torch.dtype) -> StreamingGenerator:
        """The generator, compiled when the run asks for it (its ``compile`` raises when it cannot:
        a benchmark never falls back to eager without saying so)."""
        gen = GENERATORS.create(generator, preset, workload.settings(), device=device, dtype=dtype)
        self.execution = {"execution": "eager"}
        if self.compile_mode != "off":
            # each cell compiles its own passes under its own recompile limit: dynamo counts the
            # graphs of a code object over the whole process, so the earlier cells' shapes (other
            # workloads) would use up a later cell's limit (found: in one run of five workloads the
            # sixth compiled lmm cell and the seventh lmdm-causal one failed, FailOnRecompileLimitHit).
            # The reset also frees the earlier cells' CUDA graph trees; inductor's disk cache stays.
            torch._dynamo.reset()
            record = gen.compile(self.compile_mode)
            # a generator with nothing to compile (the null generator) ran eager, and says so
            ran = f"compiled:{self.compile_mode}" if record.get("compiled") else "eager (nothing to compile)"
            self.execution = {"execution": ran, **record}
        return gen

    @staticmethod
    def controls(workload: Workload) -> list[Control]:
        return [Control(prompt) for _, prompt in workload.prompts]

    def warm_up(self, gen: StreamingGenerator, workload: Workload) -> str:
        """Untimed blocks of a separate stream (same seed), through the clock's timer path. The
        first runs under the profiler; returns the attention kernels it dispatched.

        With CUDA graphs (``--compile reduce-overhead`` on a GPU) the warm-up stream runs twice:
        graph trees run a pass's first call without a graph and record it at the second, so with
        one warm-up stream the passes called once per stream (lmdm-causal's bootstrap) or once per
        block (its fused first step) were still being recorded in the timed stream (measured on an
        H200: 38.7 ms for a first step that replays in 3.9 ms)."""
        if workload.warmup_blocks == 0:
            return NOT_PROBED
        found: list[str] = []
        self._warm_stream(gen, workload, found)
        if self.execution.get("cuda_graphs"):
            self._warm_stream(gen, workload, None)
        self.clock.barrier()
        return found[0] if found else NOT_PROBED

    def _warm_stream(self, gen: StreamingGenerator, workload: Workload, found: list[str] | None) -> None:
        """One untimed warm-up stream. ``found``: profile its first block and append the attention
        kernels there, and count its blocks as progress (None: a second stream, neither)."""
        controls = self.controls(workload)
        state = gen.start(controls[0], workload.seed)
        audio_s = 0.0
        try:
            for k in range(workload.warmup_blocks):
                control = controls[workload.prompt_index_at(audio_s)]
                timer = self.clock.timer(k)
                probe = attention_probe(found) if k == 0 and found is not None else contextlib.nullcontext()
                with self._deadline(f"warm-up block {k}"), probe:
                    result, state = gen.step(state, control, timer)
                timer.resolve()
                check_block(result.audio, gen.spec, k)
                audio_s += result.audio.shape[1] / gen.spec.sample_rate
                if found is not None:  # total_steps counts one warm-up stream
                    self.progress(1)
        finally:
            gen.stop(state)

    def run_stream(self, gen: StreamingGenerator, workload: Workload, repeat: int, writer: AudioWriter | None,
                   labels: dict[str, Any], context_audio: np.ndarray | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """One timed stream, primed with ``context_audio`` ((channels, samples); None = silence).
        Returns (blocks, phases, stream row)."""
        spec, seed = gen.spec, workload.seed + repeat
        raw = self._timed_stream(gen, workload, seed, writer, context_audio)
        common = {**labels, "repeat": repeat, "seed": seed}
        block_rows, phase_rows = _block_and_phase_rows(raw, workload, spec.sample_rate, common)
        stream = {
            **common, "scenario": workload.scenario,
            "prebuffer_s": workload.prebuffer_s, "lookahead_s": workload.effective_lookahead_s,
            "start_ns": raw.start_ns, "start_ms": raw.start_ns / 1e6,
            "n_blocks": workload.n_blocks, "audio_s": sum(raw.audio_samples) / spec.sample_rate,
            "sample_rate": spec.sample_rate, "channels": spec.channels, "spec_block_s": spec.block_s,
            "frame_rate_hz": spec.frame_rate_hz, "peak_mem_bytes": raw.peak_mem_bytes,
            "peak_mem_baseline_bytes": raw.peak_mem_baseline_bytes, "peak_mem_kind": raw.peak_mem_kind,
            "params": int(gen.num_parameters()), "clock": self.clock.name,
            "wall_s": (self.clock.now_ns() - raw.origin_ns) / 1e9,
            "audio_path": str(writer.path.name) if writer is not None else "",
        }
        return pd.DataFrame(block_rows), pd.DataFrame(phase_rows), stream

    def _timed_stream(self, gen: StreamingGenerator, workload: Workload, seed: int,
                      writer: AudioWriter | None, context_audio: np.ndarray | None = None) -> _RawStream:
        """The timed loop of one stream (module docstring); raw integers only, tables come later.
        ``stop`` always runs, also when a step raises or times out."""
        clock, controls = self.clock, self.controls(workload)
        memory = _MemoryProbe(gen.device)
        gc.collect()  # a full collection now rather than during the timed steps (GC stays enabled)
        clock.barrier()
        memory.reset()
        origin = clock.now_ns()
        first = (gen.start(controls[0], seed) if context_audio is None
                 else gen.start(controls[0], seed, context_audio=context_audio))
        state = [first]  # the latest state, for stop() whatever happens
        start_end = clock.now_ns()
        # Raw per-block values, appended between steps.
        raw = _RawStream(origin, start_end - origin, [], [], [], [], [], [], [], [], 0, 0, "")
        try:
            self._timed_blocks(gen, workload, state, raw, controls, writer)
        finally:
            gen.stop(state[0])
        clock.barrier()
        raw.peak_mem_bytes, raw.peak_mem_baseline_bytes, raw.peak_mem_kind = memory.peak(), memory.baseline, memory.kind
        return raw

    def _timed_blocks(self, gen: StreamingGenerator, workload: Workload, holder: list[Any], raw: _RawStream,
                      controls: list[Control], writer: AudioWriter | None) -> None:
        """The steps of one timed stream from the state in ``holder[0]`` (kept up to date); appends to
        ``raw`` between steps. Every block is checked after the clock stopped
        (:func:`~bench.app.guards.check_block`): a bad block fails the cell, never its numbers."""
        clock, spec, realtime = self.clock, gen.spec, workload.scenario == "realtime"
        t0s, t1s, audio_samples, offsets = raw.t0s, raw.t1s, raw.audio_samples, raw.offsets
        prompt_idx, kv_bytes, infos, timings = raw.prompt_idx, raw.kv_bytes, raw.infos, raw.timings
        origin, start_end = raw.origin_ns, raw.origin_ns + raw.start_ns
        audio_done_s, state = 0.0, holder[0]
        for k in range(workload.n_blocks):
            p = workload.prompt_index_at(audio_done_s)
            control = controls[p]
            if realtime and k > 0:
                clock.sleep_until_ns(origin + self._realtime_start_ns(t0s, t1s, audio_samples, spec.sample_rate,
                                                                      workload.prebuffer_s, start_end - origin))
            timer = clock.timer(k)
            clock.barrier()
            with self._deadline(f"block {k}"):  # armed before t0, disarmed after t1
                t0 = clock.now_ns()
                result, state = gen.step(state, control, timer)  # the timed region
                t1 = clock.now_ns()
            holder[0] = state
            t0s.append(t0)
            t1s.append(t1)
            timings.append(timer.resolve())
            check_block(result.audio, spec, k)
            samples = int(result.audio.shape[1])
            offsets.append(writer.write(result.audio) if writer is not None else sum(audio_samples))
            audio_samples.append(samples)
            prompt_idx.append(p)
            kv_bytes.append(int(gen.kv_cache_bytes(state)))
            infos.append(result.info)
            audio_done_s += samples / spec.sample_rate
            self.progress(1)

    @staticmethod
    def _realtime_start_ns(t0s: list[int], t1s: list[int], samples: list[int], sample_rate: int, prebuffer_s: float,
                           start_ns: int) -> int:
        """Earliest start of the next block under the realtime playback model (ns from origin)."""
        latency_s = [(b - a) / 1e9 for a, b in zip(t0s, t1s)] + [0.0]
        audio_s = [s / sample_rate for s in samples] + [1.0]  # the next block's length does not matter
        pb = simulate_playback(latency_s, audio_s, prebuffer_s, "realtime", start_ns / 1e9)
        return int(round(pb.gen_start_s[-1] * 1e9))

    def _attainable(self, ops: AttainableRecorder, phase: str, gen: StreamingGenerator) -> dict[str, float]:
        """The phase's attainable-time columns; NaN under a fake clock, whose latencies are programmed
        (a real replay time next to them would be a ratio of unrelated numbers)."""
        if self.clock.name == "fake":
            return {column: float("nan") for column in ATTAINABLE_COLUMNS}
        return attainable_columns(ops, phase, str(gen.device))

    def flops_pass(self, gen: StreamingGenerator, workload: Workload, labels: dict[str, Any]) -> pd.DataFrame:
        """Measured and analytic FLOPs per phase of the first block and one steady block (block 1),
        with each phase's bytes moved and attainable time on this machine (bench/app/attainable.py)."""
        controls = self.controls(workload)
        holder = [gen.start(controls[0], workload.seed)]
        try:
            return self._flops_blocks(gen, workload, labels, controls, holder)
        finally:
            gen.stop(holder[0])

    def _flops_blocks(self, gen: StreamingGenerator, workload: Workload, labels: dict[str, Any],
                      controls: list[Control], holder: list[Any]) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        audio_s, state = 0.0, holder[0]
        for k in range(min(2, workload.n_blocks)):
            recorder, ops = FlopRecorder(), AttainableRecorder()
            with self._deadline(f"FLOPs-pass block {k}"):
                result, state = gen.step(state, controls[workload.prompt_index_at(audio_s)],
                                         ComposedRecorder(recorder, ops))
            holder[0] = state
            check_block(result.audio, gen.spec, k)
            block_audio_s = result.audio.shape[1] / gen.spec.sample_rate
            audio_s += block_audio_s
            info = result.info
            for phase in sorted(set(recorder.flops) | set(info.analytic_flops)):
                measured = float(recorder.flops.get(phase, 0.0))
                analytic = float(info.analytic_flops.get(phase, 0.0))
                rows.append({
                    **labels, "block_kind": "first" if k == 0 else "steady", "block_index": k, "phase": phase,
                    "calls": int(recorder.calls.get(phase, 0)), "measured_flops": measured,
                    "analytic_flops": analytic, "ratio": measured / analytic if analytic > 0 else float("nan"),
                    "audio_s": block_audio_s, **self._attainable(ops, phase, gen),
                })
            self.progress(1)
        return pd.DataFrame(rows)

    # -- a whole cell ------------------------------------------------------------------------

    def flops_blocks(self, workload: Workload) -> int:
        return min(2, workload.n_blocks) if self.count_flops else 0

    def total_steps(self, workload: Workload) -> int:
        """Progress units of a cell: warm-up + timed + FLOPs-pass steps."""
        return workload.warmup_blocks + workload.repeats * workload.n_blocks + self.flops_blocks(workload)

    def run_cell(self, generator: str, preset: Any, workload: Workload, device: str | torch.device,
                 dtype: torch.dtype, cell_dir: Path | None = None, cell_hash_value: str = "") -> CellResult:
        """Prepare, warm up, time ``workload.repeats`` streams, count FLOPs; audio under ``cell_dir``."""
        labels = {"generator": generator, "workload": workload.name, "workload_hash": workload.fingerprint(),
                  "cell_hash": cell_hash_value}
        self._cell_deadline = None if not self.cell_timeout_s else time.perf_counter() + self.cell_timeout_s
        with torch.inference_mode():
            t_build = time.perf_counter()
            gen = self.build(generator, preset, workload, device, dtype)
            build_s = time.perf_counter() - t_build
            log.debug("%s: built in %.2f s (%d parameters)", generator, build_s, gen.num_parameters())
            self.execution["attention_kernels"] = self.warm_up(gen, workload)
            blocks, phases, streams = [], [], []
            for repeat in range(workload.repeats):
                writer = None
                if cell_dir is not None:
                    writer = AudioWriter(Path(cell_dir) / "audio" / f"repeat{repeat}.wav", gen.spec.sample_rate,
                                         gen.spec.channels)
                try:
                    b, p, s = self.run_stream(gen, workload, repeat, writer, labels)
                except BaseException:
                    if writer is not None:
                        writer.abort()
                    raise
                if writer is not None:
                    writer.close()
                    s["audio_path"] = f"audio/{writer.path.name}"  # relative to the cell folder
                b["audio_path"] = s["audio_path"]
                s["execution"] = self.execution["execution"]
                s["attention_kernels"] = self.execution["attention_kernels"]
                blocks.append(b)
                phases.append(p)
                streams.append(s)
            flops = self.flops_pass(gen, workload, labels) if self.count_flops else pd.DataFrame()
        spec = gen.spec
        info = {"build_s": build_s, "params": gen.num_parameters(), "execution": dict(self.execution), "spec": {
            "regime": spec.regime, "sample_rate": spec.sample_rate, "channels": spec.channels,
            "frame_rate_hz": spec.frame_rate_hz, "block_frames": spec.block_frames,
            "context_frames": spec.context_frames, "block_s": spec.block_s, "context_s": spec.context_s}}
        return CellResult(pd.concat(blocks, ignore_index=True), pd.concat(phases, ignore_index=True),
                          pd.DataFrame(streams), flops, info)
