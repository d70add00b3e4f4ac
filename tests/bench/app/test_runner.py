"""The runner with a FakeClock and fake generators: exact, closed-form latencies.

The fake generators defined here are also used by test_cli.py and test_storage.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch

from bench.app.clocks import FakeClock
from bench.core.contract import (
    NULL_RECORDER,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
    block_generator,
)
from bench.core.phases import PHASE_BOOTSTRAP, PHASE_DECODE, PHASE_STEP
from bench.core.settings import Control
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.app.runner import Runner, cell_hash
from bench.core.workloads import Workload, get_workloads
from metrics.playback import simulate_playback

MS = 1_000_000
PHASE_NS = {PHASE_BOOTSTRAP: 7 * MS, PHASE_STEP: 2 * MS, PHASE_DECODE: 1 * MS}
MATMUL = (4, 8, 8)  # (m, k, n) of the matmul each phase runs: 2*m*k*n FLOPs


@dataclass(frozen=True)
class FakeState:
    seed: int
    block_index: int
    prompt: str | None


class FakeGenerator(StreamingGenerator):
    """Bootstraps on the first block and after a prompt change, then ``steps`` steps and a decode.

    Every phase multiplies a (4, 8) by an (8, 8) matrix, so measured FLOPs are known exactly.
    ``fail_at`` raises RuntimeError at that block of a timed stream; ``kill_at`` calls ``kill()``.
    """

    name = "fake"
    fail_at: int | None = None
    kill_at: int | None = None
    kill = staticmethod(lambda: None)
    built: list = []

    def __init__(self, preset, settings, device="cpu", dtype=torch.float32):  # noqa: ANN001
        super().__init__(preset, settings, device, dtype)
        self.sample_rate = 1000
        context_frames, block_frames = settings.frames(80.0)
        self._spec = StreamSpec(self.name, self.sample_rate, 1, 80.0, block_frames, context_frames,
                                block_frames / 80.0, context_frames / 80.0)
        self.weight = torch.ones(MATMUL[1], MATMUL[2])
        type(self).built.append(self)

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def start(self, control, seed, context_audio=None):  # noqa: ANN001
        return FakeState(seed, 0, None)

    def _work(self, recorder, phase):  # noqa: ANN001
        with recorder.phase(phase):
            torch.ones(MATMUL[0], MATMUL[1]) @ self.weight

    def step(self, state, control, recorder=NULL_RECORDER):  # noqa: ANN001
        k = state.block_index
        if self.fail_at is not None and k == self.fail_at:
            raise RuntimeError(f"fake failure at block {k}")
        if self.kill_at is not None and k == self.kill_at:
            type(self).kill()
        calls = {PHASE_STEP: self.settings.steps, PHASE_DECODE: 1}
        bootstrap = state.prompt != control.prompt
        if bootstrap:
            calls[PHASE_BOOTSTRAP] = 1
            self._work(recorder, PHASE_BOOTSTRAP)
        for _ in range(self.settings.steps):
            self._work(recorder, PHASE_STEP)
        self._work(recorder, PHASE_DECODE)
        gen = block_generator(state.seed, k, "fake", "cpu")
        audio = torch.randn(1, self.spec.block_samples, generator=gen).numpy()
        per_call = 2.0 * MATMUL[0] * MATMUL[1] * MATMUL[2]
        info = StepInfo(k, calls, tokens_processed=10 * (k + 1), cache_len=k,
                        analytic_flops={p: c * per_call for p, c in calls.items()})
        return StepResult(audio, info), FakeState(state.seed, k + 1, control.prompt)

    def analytic_flops(self, first_block):  # noqa: ANN001
        per_call = 2.0 * MATMUL[0] * MATMUL[1] * MATMUL[2]
        out = {PHASE_STEP: self.settings.steps * per_call, PHASE_DECODE: per_call}
        if first_block:
            out[PHASE_BOOTSTRAP] = per_call
        return out

    def kv_cache_bytes(self, state):  # noqa: ANN001
        return 100 * state.block_index

    def modules(self):
        return [torch.nn.Linear(3, 2)]  # 8 parameters


class FailingGenerator(FakeGenerator):
    name = "fake-fail"
    fail_at = 3


class SlowFakeGenerator(FakeGenerator):
    """Same fake, a different name (a second regime for pairwise tables)."""

    name = "fake-slow"


FAKES = {"fake": FakeGenerator, "fake-fail": FailingGenerator, "fake-slow": SlowFakeGenerator}


def register_fakes() -> None:
    for name, cls in FAKES.items():
        GENERATORS.register(name, cls)


def unregister_fakes() -> None:
    for name in FAKES:
        GENERATORS.unregister(name)


@pytest.fixture
def fakes():
    register_fakes()
    FakeGenerator.built = []
    yield
    unregister_fakes()


def expected_latency_ns(block_index: int, steps: int, bootstrap: bool) -> int:
    return (PHASE_NS[PHASE_BOOTSTRAP] if bootstrap else 0) + steps * PHASE_NS[PHASE_STEP] + PHASE_NS[PHASE_DECODE]


def smoke(**changes) -> Workload:  # noqa: ANN003
    return dataclasses.replace(get_workloads("smoke")[0], **changes)


def test_block_latency_is_the_sum_of_programmed_phases(fakes, tmp_path):
    w = smoke(prompts=((0.0, "a"),), warmup_blocks=0)
    result = Runner(FakeClock(PHASE_NS)).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    blocks = result.blocks
    assert list(blocks.block_index) == list(range(w.n_blocks))
    expected = [expected_latency_ns(k, w.steps, k == 0) for k in range(w.n_blocks)]
    assert list(blocks.latency_ns) == expected
    # Back to back on a fake clock: each block starts where the previous ended.
    assert list(blocks.gen_start_ns[1:]) == list(blocks.gen_end_ns[:-1])
    phases = result.phases
    steps = phases[phases.phase == PHASE_STEP]
    assert (steps.calls == w.steps).all() and (steps.latency_ms == w.steps * 2.0).all()
    assert (phases.calls == phases.reported_calls).all()
    assert list(blocks.kv_cache_bytes) == [100 * (k + 1) for k in range(w.n_blocks)]
    assert list(blocks.tokens_processed) == [10 * (k + 1) for k in range(w.n_blocks)]
    assert result.streams.params.iloc[0] == 8


def test_warm_up_blocks_are_excluded(fakes, tmp_path):
    seen = []

    def duration(phase, block, call):  # noqa: ANN001
        seen.append((phase, block))
        cold = len(seen) <= (1 + 3 + 1) + (3 + 1)  # the warm-up's phases (bootstrap once): 10 s each
        return 10_000 * MS if cold else PHASE_NS[phase]

    w = smoke(prompts=((0.0, "a"),), warmup_blocks=2)
    result = Runner(FakeClock(duration)).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    assert len(result.blocks) == w.n_blocks
    assert result.blocks.latency_ns.max() < 100 * MS  # no warm-up block leaked into the records
    assert list(result.blocks.reported_block_index) == list(range(w.n_blocks))  # a fresh stream after warm-up
    assert result.blocks.latency_ns.iloc[0] == expected_latency_ns(0, w.steps, True)


def test_prompt_schedule_and_rebootstrap(fakes, tmp_path):
    w = smoke()  # prompt change at 0.5 s, blocks of 0.125 s -> block 4 is the first under the new prompt
    result = Runner(FakeClock(PHASE_NS)).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    b = result.blocks
    assert list(b.prompt_index) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(b.prompt) == [w.prompts[i][1] for i in b.prompt_index]
    boot = [expected_latency_ns(k, w.steps, k in (0, 4)) for k in range(8)]
    assert list(b.latency_ns) == boot


def test_realtime_scenario_waits_as_the_playback_model_says(fakes, tmp_path):
    w = smoke(prompts=((0.0, "a"),), scenario="realtime", prebuffer_s=0.125, warmup_blocks=0)
    clock = FakeClock(PHASE_NS)
    result = Runner(clock).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    b = result.blocks
    pb = simulate_playback(b.latency_ns / 1e9, b.audio_s, w.prebuffer_s, "realtime")
    assert np.allclose(b.gen_start_ns / 1e9, pb.gen_start_s, atol=1e-9)
    # 0.125 s blocks take 13 ms then 7 ms: the generator waits for playback (one block ahead).
    waits = np.array(clock.sleeps_ns[-(w.n_blocks - 1):]) / 1e9
    assert np.allclose(waits, pb.gen_start_s[1:] - pb.gen_end_s[:-1], atol=1e-9)
    assert waits[1:].min() > 0.1 and pb.underruns == 0


def test_flops_pass_measures_what_the_steps_report(fakes, tmp_path):
    w = smoke(prompts=((0.0, "a"),))
    result = Runner(FakeClock(PHASE_NS)).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    f = result.flops
    assert set(f.block_kind) == {"first", "steady"}
    assert np.allclose(f.measured_flops, f.analytic_flops) and (f.measured_flops > 0).all()
    first = f[f.block_kind == "first"].set_index("phase")
    assert first.loc[PHASE_STEP, "calls"] == w.steps and PHASE_BOOTSTRAP in first.index
    assert PHASE_BOOTSTRAP not in set(f[f.block_kind == "steady"].phase)


def test_audio_is_streamed_to_disk_and_matches_the_generator(fakes, tmp_path):
    w = smoke(repeats=2)
    result = Runner(FakeClock(PHASE_NS)).run_cell("fake", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    assert list(result.streams.seed) == [w.seed, w.seed + 1]
    assert len(result.blocks) == 2 * w.n_blocks
    gen = FakeGenerator(get_preset("tiny"), w.settings())
    for repeat in range(2):
        audio, sr = sf.read(tmp_path / "audio" / f"repeat{repeat}.wav", dtype="float32", always_2d=True)
        state = gen.start(Control("a"), w.seed + repeat)
        expected = []
        for _ in range(w.n_blocks):
            res, state = gen.step(state, Control("a"))
            expected.append(res.audio)
        assert sr == gen.sample_rate
        np.testing.assert_array_equal(audio.T, np.concatenate(expected, axis=1))
    rows = result.blocks[result.blocks["repeat"] == 1]
    assert list(rows.audio_offset_samples) == [k * gen.spec.block_samples for k in range(w.n_blocks)]
    assert set(result.blocks.audio_path) == {"audio/repeat0.wav", "audio/repeat1.wav"}


def test_a_failing_stream_leaves_no_audio_file(fakes, tmp_path):
    with pytest.raises(RuntimeError, match="fake failure at block 3"):
        Runner(FakeClock(PHASE_NS)).run_cell("fake-fail", get_preset("tiny"), smoke(), "cpu", torch.float32, tmp_path)
    assert list((tmp_path / "audio").iterdir()) == []


def test_noise_generator_through_the_runner(tmp_path):
    w = smoke(warmup_blocks=1)
    result = Runner(FakeClock()).run_cell("noise", get_preset("tiny"), w, "cpu", torch.float32, tmp_path)
    assert (result.blocks.latency_ns == 0).all()  # the fake clock only moves in phases, noise has 0 s phases
    assert (result.flops.measured_flops == 0).all() and (result.flops.analytic_flops == 0).all()
    audio, _ = sf.read(tmp_path / "audio" / "repeat0.wav")
    assert audio.shape[0] == result.blocks.audio_samples.sum()


def test_cell_hash_changes_with_every_input(fakes):
    tiny, w = get_preset("tiny"), smoke()
    base = cell_hash("fake", tiny, w, "cpu", torch.float32)
    assert base == cell_hash("fake", tiny, w, "cpu", torch.float32)
    assert base != cell_hash("fake-slow", tiny, w, "cpu", torch.float32)
    assert base != cell_hash("fake", get_preset("cpu"), w, "cpu", torch.float32)
    assert base != cell_hash("fake", tiny, smoke(horizon_s=2.0), "cpu", torch.float32)
    assert base != cell_hash("fake", tiny, w, "cpu", torch.bfloat16)


def test_cell_hash_follows_the_content_of_the_weights_file(tmp_path):
    from bench.core.presets import apply_overrides

    weights = tmp_path / "lmm.safetensors"
    weights.write_bytes(b"first")
    preset = apply_overrides(get_preset("tiny"), {"lmm.weights": str(weights)})
    w = smoke()
    before = cell_hash("lmm", preset, w, "cpu", torch.float32)
    noise = cell_hash("noise", preset, w, "cpu", torch.float32)
    assert before == cell_hash("lmm", preset, w, "cpu", torch.float32)
    weights.write_bytes(b"second, replaced at the same path")
    assert cell_hash("lmm", preset, w, "cpu", torch.float32) != before
    assert cell_hash("noise", preset, w, "cpu", torch.float32) == noise  # it loads no weights file


def test_a_malformed_sha256sums_line_is_named(tmp_path):
    from baselines.weights import expected_hashes
    from bench.core.errors import ConfigError

    (tmp_path / "SHA256SUMS").write_text("a" * 64 + "  ok.safetensors\nnot-a-hash\n")
    with pytest.raises(ConfigError, match="line 2 is malformed"):
        expected_hashes(tmp_path)


def test_stop_runs_after_a_bad_block_and_the_stream_leaves_no_audio(fakes, tmp_path):
    stopped = []

    class NaNs(FakeGenerator):
        name = "fake-nan"

        def step(self, state, control, recorder=NULL_RECORDER):  # noqa: ANN001
            result, new = super().step(state, control, recorder)
            if state.block_index == 1:
                result.audio[0, 5] = np.nan
            return result, new

        def stop(self, state):  # noqa: ANN001
            stopped.append(state.block_index)

    GENERATORS.register("fake-nan", NaNs)
    try:
        with pytest.raises(RuntimeError, match="block 1: 1 of 125 samples are NaN/inf"):
            Runner(FakeClock(PHASE_NS)).run_cell("fake-nan", get_preset("tiny"), smoke(warmup_blocks=0), "cpu",
                                                 torch.float32, tmp_path)
    finally:
        GENERATORS.unregister("fake-nan")
    assert stopped == [2] and list((tmp_path / "audio").iterdir()) == []


def test_the_attention_probe_reads_the_same_ops_as_key_averages() -> None:
    from types import SimpleNamespace

    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from bench.app.runner import attention_probe, profiled_op_names

    q = torch.randn(1, 2, 5, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        F.scaled_dot_product_attention(q, q, q)
        torch.softmax(q, dim=-1)
    fast = profiled_op_names(prof)
    assert fast == {event.key for event in prof.key_averages()}  # the same events, without the slow path
    assert {"aten::scaled_dot_product_attention", "aten::_softmax"} <= fast
    # without raw results (another torch), it falls back to key_averages
    bare = SimpleNamespace(profiler=None, key_averages=prof.key_averages)
    assert profiled_op_names(bare) == fast
    found: list[str] = []
    with attention_probe(found):
        F.scaled_dot_product_attention(q, q, q)
    with attention_probe(found):
        torch.softmax(q, dim=-1)
    assert found[0].startswith("_scaled_dot_product") and found[1] == "none"


def test_attention_kernels_are_aten_ops_not_the_compiled_kernels_named_after_them() -> None:
    from bench.app.runner import attention_kernel_names

    # event names of one compiled cell on an H200 (torch 2.11, inductor, CUDA graphs), abridged
    fused = "triton_per_fused__scaled_dot_product_cudnn_attention__unsafe_view_native_layer_norm_select_transpose_view_8"
    names = {
        "aten::_scaled_dot_product_cudnn_attention", "aten::scaled_dot_product_attention", "aten::mm", fused,
        f"CachingAutotuner.benchmark_all_configs_data: kernel_name={fused}, is_backward=False, compile_id=0/3",
    }
    assert attention_kernel_names(names) == "_scaled_dot_product_cudnn_attention"
    assert attention_kernel_names({fused, "aten::mm"}) == "none"  # attention lowered into the graph's kernels
    assert attention_kernel_names({"aten::_scaled_dot_product_flash_attention_for_cpu",
                                   "aten::_scaled_dot_product_attention_math"}) == (
        "_scaled_dot_product_attention_math,_scaled_dot_product_flash_attention_for_cpu")


@pytest.mark.parametrize("cuda_graphs, warm_streams", [(False, 1), (True, 2)])
def test_cuda_graph_runs_warm_up_every_pass_past_its_recording(cuda_graphs, warm_streams) -> None:
    """CUDA graph trees record a pass at its second call: with graphs the warm-up stream runs twice,
    so a pass called once per stream (a bootstrap) is recorded before the timed stream."""
    from baselines.noise import NoiseGenerator

    class CountingNoise(NoiseGenerator):
        starts = 0
        steps = 0

        def start(self, control, seed, context_audio=None):  # noqa: ANN001, ANN202
            CountingNoise.starts += 1
            return super().start(control, seed, context_audio)

        def step(self, state, control, recorder=None):  # noqa: ANN001, ANN202
            CountingNoise.steps += 1
            return super().step(state, control, recorder)

    preset = get_preset("tiny")
    workload = dataclasses.replace(get_workloads("smoke")[0], warmup_blocks=2)
    progressed: list[int] = []
    runner = Runner(FakeClock(), progress=progressed.append)
    runner.execution = {"execution": "compiled:reduce-overhead", "cuda_graphs": cuda_graphs}
    kernels = runner.warm_up(CountingNoise(preset, preset.settings), workload)
    assert (CountingNoise.starts, CountingNoise.steps) == (warm_streams, 2 * warm_streams)
    assert sum(progressed) == workload.warmup_blocks  # the progress total counts one warm-up stream
    assert kernels == "none"  # profiled once, in the first stream's first block: no attention in noise
