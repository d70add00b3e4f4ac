"""GPU readiness (marker ``gpu``; skipped without CUDA): no host sync inside a step except the
block's audio copy, CUDA-event phase times agree with the wall clock on long phases, bfloat16
streams of every regime. ``scripts/gpu_check.py`` runs these plus a paper-scale run."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np
import pytest
import torch

from bench.app.attainable import _median_call_s
from bench.app.clocks import CudaClock
from bench.core.phases import PHASE_DECODE
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")]
REGIMES = ["outpaint", "lmdm-encdec", "lmdm-causal", "lmm", "musicgen"]


class SyncGuard:
    """A phase recorder for a step run under ``set_sync_debug_mode("error")``: the decode phase,
    which ends with the block's one host copy, is the only place a synchronisation is allowed."""

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name != PHASE_DECODE:
            yield
            return
        torch.cuda.set_sync_debug_mode("default")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("error")


class SyncedWall:
    """Phase times on the host clock with a synchronisation at each phase boundary (the reference
    the CUDA events are compared with; never used in a timed run)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        yield
        torch.cuda.synchronize()
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3


def _stream(name: str, preset_name: str = "tiny", dtype: torch.dtype = torch.float32):  # noqa: ANN202
    preset = get_preset(preset_name)
    gen = GENERATORS.create(name, preset, preset.settings, device="cuda", dtype=dtype)
    return gen, gen.start(Control("warm organ chords"), seed=0)


@pytest.mark.parametrize("name", REGIMES + ["noise", "noise-phased"])
def test_a_step_never_syncs_the_host_before_its_audio_copy(name):
    """Steady blocks, then (ours; MusicGen's T5 reads its padding mask on the host, docs/musicgen.md)
    a block with a new prompt: its tokens are uploaded without waiting for the stream."""
    gen, state = _stream(name)
    control = Control("warm organ chords")
    prompts = [control, control] + ([Control("bright synth arpeggio")] if name != "musicgen" else [])
    with torch.inference_mode():
        _, state = gen.step(state, control)  # first block: allocations, cuBLAS handles
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for prompt in prompts:  # steady blocks (the fused first step, the ring), a new prompt
                result, state = gen.step(state, prompt, SyncGuard())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert np.isfinite(result.audio).all()


@pytest.mark.parametrize("name", ["outpaint", "lmdm-causal"])
def test_cuda_event_phase_times_agree_with_the_synchronised_wall_clock(name):
    gen, state = _stream(name, "cpu")  # the cpu preset's shapes: phases of milliseconds
    control = Control("warm organ chords")
    clock = CudaClock()
    events, walls = [], []
    with torch.inference_mode():
        for k in range(6):
            timer = clock.timer(k)
            _, state = gen.step(state, control, timer)
            events.append({p: t.total_ns / 1e6 for p, t in timer.resolve().items()})
            wall = SyncedWall()
            _, state = gen.step(state, control, wall)
            walls.append(wall.ms)
    for phase in events[-1]:
        event_ms = np.median([e[phase] for e in events[2:] if phase in e])
        wall_ms = np.median([w[phase] for w in walls[2:] if phase in w])
        if wall_ms >= 2.0:  # long phases: launch and sync overheads are small beside them
            assert abs(event_ms - wall_ms) <= 0.15 * wall_ms + 0.2, (phase, event_ms, wall_ms)


@pytest.mark.parametrize("name", REGIMES)
def test_bfloat16_streams_of_every_regime_are_finite(name):
    gen, state = _stream(name, "cpu", torch.bfloat16)
    control = Control("warm organ chords")
    with torch.inference_mode():
        for _ in range(3):
            result, state = gen.step(state, control)
            assert result.audio.dtype == np.float32 and np.isfinite(result.audio).all()
            assert np.abs(result.audio).max() > 0


@pytest.mark.parametrize("name", ["lmdm-encdec", "lmdm-causal", "outpaint"])
def test_cuda_graph_streams_equal_eager(name):
    """``--compile reduce-overhead``: the passes replay as CUDA graphs (a pass that cannot be
    captured raises), and the caches a pass returns survive the next graph's replay (the
    enc-dec prefill's is read by every step): the same audio as eager."""
    eager, _ = _stream(name)
    graphs, _ = _stream(name)
    assert graphs.compile("reduce-overhead")["cuda_graphs"] is True
    control = Control("warm organ chords")
    states = [eager.start(control, seed=1), graphs.start(control, seed=1)]
    with torch.inference_mode():
        for block in range(4):  # bootstrap or first prefill, steady blocks, the ring's eviction
            prompt = Control("bright synth arpeggio") if block == 3 else control  # a new prompt too
            (a, states[0]), (b, states[1]) = eager.step(states[0], prompt), graphs.step(states[1], prompt)
            assert np.abs(a.audio - b.audio).max() <= 1e-3, block
    assert np.abs(a.audio).max() > 1e-3


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_lmm_streams_equal_eager_and_never_sync(mode):
    """The LMM's compile mode on CUDA (static-shape passes; with ``reduce-overhead`` replayed as
    CUDA graphs writing their caches in place): the eager stream's audio, and once recorded (two
    blocks: graph trees record a pass at its second call) no host sync before the audio copy."""
    eager, _ = _stream("lmm")
    compiled, _ = _stream("lmm")
    assert compiled.compile(mode)["cuda_graphs"] is (mode == "reduce-overhead")
    control = Control("warm organ chords")
    states = [eager.start(control, seed=1), compiled.start(control, seed=1)]
    with torch.inference_mode():
        for block in range(5):
            prompt = Control("bright synth arpeggio") if block == 4 else control  # a new prompt too
            a, states[0] = eager.step(states[0], prompt)
            torch.cuda.synchronize()
            if block >= 2:
                torch.cuda.set_sync_debug_mode("error")
            try:
                b, states[1] = compiled.step(states[1], prompt, SyncGuard())
            finally:
                torch.cuda.set_sync_debug_mode("default")
            assert np.abs(a.audio - b.audio).max() <= 1e-3, block
    assert np.abs(a.audio).max() > 1e-3


def test_attainable_replays_time_the_device_not_the_hosts_round_trip():
    """The attainable model's replays on CUDA: a large matmul's time per call agrees with a
    synchronised wall clock over many calls; a tiny op is not charged the host's launch and wait,
    which a per-call synchronised timing includes."""
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        replay_s = _median_call_s(lambda: a @ a, "cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            a @ a
        torch.cuda.synchronize()
        wall_s = (time.perf_counter() - t0) / 50
        assert abs(replay_s - wall_s) <= 0.1 * wall_s, (replay_s, wall_s)
        tiny = torch.ones(4, device="cuda")
        synced = []
        for _ in range(50):
            t0 = time.perf_counter()
            tiny + 1
            torch.cuda.synchronize()
            synced.append(time.perf_counter() - t0)
        assert _median_call_s(lambda: tiny + 1, "cuda") < 0.5 * float(np.median(synced))
