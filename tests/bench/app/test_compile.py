"""--compile: torch.compile of the step passes, recorded in every cell; never a silent eager fallback."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.app.clocks import FakeClock
from bench.app.config import RunConfig
from bench.app.plan import build_plan
from bench.app.runner import NOT_PROBED, Runner, cell_hash
from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control
from bench.core.workloads import get_workloads

pytestmark = pytest.mark.slow  # inductor builds C++ kernels: ~30-60 s cold on 2 cores, then cached


def _blocks(gen, n=4):  # noqa: ANN001, ANN202
    state = gen.start(Control("warm organ chords"), seed=1)
    out = []
    with torch.inference_mode():
        for _ in range(n):
            result, state = gen.step(state, Control("warm organ chords"))
            out.append(result.audio)
    return out


def test_compiled_block_causal_stream_equals_eager():
    preset = get_preset("tiny")
    eager = GENERATORS.create("lmdm-causal", preset, preset.settings)
    compiled = GENERATORS.create("lmdm-causal", preset, preset.settings)
    record = compiled.compile("default")
    assert record == {"compiled": ["dit.run"], "backend": "inductor", "fullgraph": True, "dynamic": False,
                      "kv_caches": "immutable", "cuda_graphs": False}  # CUDA graphs: reduce-overhead on CUDA only
    assert compiled.passes is compiled.functional_passes and eager.passes is not eager.functional_passes
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    a, b = _blocks(eager), _blocks(compiled)  # bootstrap, fused first steps, cached steps, eviction
    # (eager writes its ring in place, compiled concatenates an immutable one: the same stream)
    # what ran is dynamo's: new graphs were captured (none when the inductor cache already holds
    # them would still count here: unique_graphs counts captures, not C++ builds)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) <= 1e-4
    assert max(float(np.abs(x).max()) for x in a) > 1e-3


def test_a_compiled_cell_records_what_ran(tmp_path):
    workload = dataclasses.replace(get_workloads("smoke")[0], warmup_blocks=1)
    runner = Runner(FakeClock(), compile_mode="default")
    result = runner.run_cell("lmdm-causal", get_preset("tiny"), workload, "cpu", torch.float32, tmp_path)
    streams = result.streams
    assert set(streams["execution"]) == {"compiled:default"}
    kernels = set(streams["attention_kernels"])
    assert len(kernels) == 1 and NOT_PROBED not in kernels
    assert result.info["execution"]["compiled"] == ["dit.run"]
    eager = Runner(FakeClock()).run_cell("lmdm-causal", get_preset("tiny"), workload, "cpu",
                                                  torch.float32, tmp_path / "eager")
    eager_streams = eager.streams
    assert set(eager_streams["execution"]) == {"eager"}
    # eager on the CPU dispatches the SDPA kernels by name (flash for unmasked passes, math for masked)
    assert "scaled_dot_product" in next(iter(eager_streams["attention_kernels"]))


def test_compiled_lmm_stream_equals_eager_with_one_graph_per_pass():
    """The LMM's compile mode: its temporal pass and each frame's depth levels at static shapes
    (device-side positions), one graph each for every frame, the eager stream's tokens and audio."""
    preset = get_preset("tiny")
    settings = dataclasses.replace(preset.settings, cfg=True)
    eager = GENERATORS.create("lmm", preset, settings)
    compiled = GENERATORS.create("lmm", preset, settings)
    record = compiled.compile("default")
    assert record == {"compiled": ["lmm temporal frame pass", "lmm depth frame pass (all levels)"],
                      "backend": "inductor", "fullgraph": True, "dynamic": False,
                      "kv_caches": "static (every slot, masked)", "cuda_graphs": False,
                      "eager": "encode, race noise (one draw per frame), decode"}
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    passes = compiled._static
    calls = {"temporal": 0, "depth_frame": 0}
    for name in calls:
        inner = getattr(passes, name)

        def counted(*args, _inner=inner, _name=name):  # noqa: ANN002, ANN202
            calls[_name] += 1
            return _inner(*args)

        setattr(passes, name, counted)
    a, b = _blocks(eager), _blocks(compiled)
    # 2 captures for 4 blocks of 4 frames x 4 levels: a recompilation per position would fail the
    # step (fail_on_recompile_limit_hit) or show here
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 2
    # two compiled calls per frame (its temporal pass, its Q levels), not 1 + Q
    frames = 4 * compiled.block_frames
    assert calls == {"temporal": frames, "depth_frame": frames}
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) <= 1e-5
    assert max(float(np.abs(x).max()) for x in a) > 1e-3


def test_a_compiled_lmm_cell_records_what_ran_and_counts_its_static_passes(tmp_path):
    workload = dataclasses.replace(get_workloads("smoke")[0], warmup_blocks=1)
    result = Runner(FakeClock(), compile_mode="default").run_cell("lmm", get_preset("tiny"), workload, "cpu",
                                                                  torch.float32, tmp_path)
    assert set(result.streams["execution"]) == {"compiled:default"}
    assert result.info["execution"]["kv_caches"] == "static (every slot, masked)"
    null = Runner(FakeClock(), compile_mode="default").run_cell("noise", get_preset("tiny"), workload, "cpu",
                                                                torch.float32, tmp_path / "noise")
    assert set(null.streams["execution"]) == {"eager (nothing to compile)"}  # the null has no model
    ratio = result.flops.set_index(["block_index", "phase"])["ratio"]
    # the FLOPs pass counts what the static passes compute: every slot attended, so more than the
    # filled slots' analytic count in temporal and depth, and exactly it in encode and decode
    assert (ratio.xs("temporal", level="phase") > 1).all() and (ratio.xs("depth", level="phase") > 1).all()
    assert (ratio.xs("encode", level="phase") == 1).all() and (ratio.xs("decode", level="phase") == 1).all()


def test_generators_without_a_compile_mode_refuse_it_and_bad_modes_are_config_errors():
    preset = get_preset("tiny")
    musicgen = GENERATORS.create("musicgen", preset, preset.settings)
    with pytest.raises(ConfigError, match="'musicgen' has no compile mode"):
        musicgen.compile("default")
    assert GENERATORS.create("noise", preset, preset.settings).compile("default") == {"compiled": [], "backend": "none"}
    with pytest.raises(ConfigError, match="compile 'fast'.*off, default, reduce-overhead, max-autotune"):
        build_plan(RunConfig(preset="tiny", workloads=["smoke"], generators=["lmdm-causal"], compile="fast"))


def test_compile_mode_is_part_of_the_cell_identity():
    preset, workload = get_preset("tiny"), get_workloads("smoke")[0]
    eager = cell_hash("lmdm-causal", preset, workload, "cpu", torch.float32)
    assert eager == cell_hash("lmdm-causal", preset, workload, "cpu", torch.float32, "off")
    assert eager != cell_hash("lmdm-causal", preset, workload, "cpu", torch.float32, "default")


def test_a_compiled_lmm_pass_past_its_recompile_limit_fails_instead_of_running_eager(monkeypatch):
    """The compile limits are set once per block around the passes (not at each call): a pass
    that would need another graph raises, and a compiled pass called outside a block refuses."""
    from baselines import lmm_static

    monkeypatch.setattr(lmm_static, "RECOMPILE_LIMIT", 1)
    torch._dynamo.reset()  # the earlier tests' graphs of the same code (what the runner does per cell)
    preset = get_preset("tiny")
    gen = GENERATORS.create("lmm", preset, preset.settings)
    gen.compile("default")
    _blocks(gen, 1)  # one graph per pass
    passes, d = gen._static, preset.lmm.width
    strided = torch.zeros(1, 1, 2 * d)[..., ::2]  # another stride: a second graph would be needed
    with pytest.raises(torch._dynamo.exc.FailOnRecompileLimitHit), torch.inference_mode(), passes._compile_limits():
        passes.temporal(strided, passes.positions[0])
    with pytest.raises(RuntimeError, match="inside StaticTokenPasses.decode_tokens"):
        passes.temporal(torch.zeros(1, 1, d), passes.positions[0])


@pytest.mark.parametrize("generator", ["lmm", "lmdm-causal"])
def test_every_compiled_cell_of_a_run_has_its_own_recompile_limit(generator, tmp_path, monkeypatch):
    """Cells of other shapes in one process (here three context lengths) must not use up a later
    cell's recompile limit: the runner resets dynamo's caches at each compiled cell."""
    from baselines import diffusion, lmm_static

    monkeypatch.setattr(lmm_static, "RECOMPILE_LIMIT", 1)  # one graph per pass and cell
    monkeypatch.setattr(diffusion, "RECOMPILE_LIMIT", 4)  # lmdm-causal: 3-4 pass shapes per cell here
    runner = Runner(FakeClock(), compile_mode="default")
    for workload in get_workloads("context-sweep")[:3]:
        short = dataclasses.replace(workload, warmup_blocks=1, horizon_s=4 * workload.block_s)
        result = runner.run_cell(generator, get_preset("tiny"), short, "cpu", torch.float32, tmp_path / workload.name)
        assert set(result.streams["execution"]) == {"compiled:default"}
