"""The attainable-time model: what it records per phase, its closed form, and its place in a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.app.attainable import AttainableRecorder, MachineModel, PhaseOps, attainable_columns
from bench.app.clocks import WallClock
from bench.app.flops import count_flops
from bench.app.runner import Runner
from bench.core.presets import get_preset
from bench.core.workloads import get_workloads


def _work(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    y = layer(x)  # addmm: replayed
    y = torch.relu(y)  # elementwise: bytes at bandwidth
    return y.view(-1).t() if y.dim() == 1 else y.transpose(0, 1)  # views: free


def test_capture_separates_replayed_matmuls_from_memory_bound_ops_and_counts_flops():
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(8, 16)
    recorder = AttainableRecorder()
    with torch.no_grad(), recorder.phase("p"):
        _work(x, layer)
    ops = recorder.phases["p"]
    assert sum(ops.replayed.values()) == 1
    (func, args, _), = ops.replayed
    assert func.overloadpacket.__name__ == "addmm"
    assert [a.shape for a in args] == [(32,), (8, 16), (16, 32)]
    # relu reads and writes 8 x 32 float32; the transpose and the weight's .t() move nothing
    assert ops.other_bytes == 2 * 8 * 32 * 4
    assert ops.replayed_bytes == (32 + 8 * 16 + 16 * 32 + 8 * 32) * 4
    with torch.no_grad():
        assert ops.flops == count_flops(_work, x, layer) == 2 * 8 * 16 * 32


def _other_bytes(fn) -> int:  # noqa: ANN001
    recorder = AttainableRecorder()
    with torch.inference_mode(), recorder.phase("p"):
        fn()
    ops = recorder.phases["p"]
    assert not ops.replayed
    return ops.other_bytes


def test_gathers_and_writes_at_a_position_are_charged_the_rows_they_touch():
    """An embedding lookup or index_select reads its indices and the selected rows, not the whole
    table (a 1024-token table charged whole at every token made the LMM's depth phase look bound
    by memory traffic it never does); a cache write at a position writes the rows it is given."""
    table = torch.randn(1024, 64)  # 256 KiB
    tokens = torch.tensor([3, 900])  # int64
    row = 64 * 4
    # read 2 indices + 2 rows, write 2 rows
    assert _other_bytes(lambda: torch.nn.functional.embedding(tokens, table)) == 2 * 8 + 2 * row + 2 * row
    level = torch.tensor([5])
    assert _other_bytes(lambda: table.index_select(0, level)) == 8 + row + row
    cache = torch.zeros(2, 4, 16, 32)  # (B, H, slots, Dh)
    k, slot = torch.randn(2, 4, 1, 32), torch.tensor([7])
    # read index + the new keys, write that many bytes into the cache (not the 16 slots)
    assert _other_bytes(lambda: cache.index_copy_(2, slot, k)) == 8 + 2 * k.numel() * 4
    src = torch.randn(8, 32)
    dst = torch.empty(8, 32)
    assert _other_bytes(lambda: dst.copy_(src)) == 2 * 8 * 32 * 4  # read src, write dst
    assert _other_bytes(lambda: dst.zero_()) == 8 * 32 * 4  # a write only
    # an elementwise op reads its inputs whole and writes its output; an expanded operand
    # (stride 0) is charged the memory it spans, read once
    wide = torch.randn(1, 32).expand(8, 32)
    assert _other_bytes(lambda: src + wide) == (8 * 32 + 32 + 8 * 32) * 4
    assert _other_bytes(lambda: torch.relu(src)) == 2 * 8 * 32 * 4


def test_attainable_time_is_replay_times_calls_plus_bytes_over_bandwidth():
    machine = MachineModel()
    machine._bandwidth["cpu"] = 1e9  # bytes/s, set: the closed form below
    ops = PhaseOps(other_bytes=3_000_000)
    ops.replayed["a"] += 4
    ops.replayed["b"] += 1
    machine._replay.update({("a", False): 0.002, ("b", False): 0.010, ("a", True): 0.003, ("b", True): 0.011})
    parts = machine.attainable_s(ops, "cpu")
    assert parts["replayed_s"] == pytest.approx(4 * 0.002 + 0.010)
    assert parts["memory_bound_s"] == pytest.approx(3e-3)
    assert parts["attainable_s"] == pytest.approx(0.021)
    assert parts["attainable_cold_s"] == pytest.approx(4 * 0.003 + 0.011 + 3e-3)


def test_a_broadcast_operand_is_replayed_with_its_own_layout():
    # under inference mode (as runs step), a linear layer on rows that do not fold into one matrix
    # runs as a bmm whose weight is broadcast over the batch (stride 0; stable-audio-tools' DiT
    # at paper scale does it); its replay must make and copy that overlapping layout, warm and cold
    # (both raised before)
    layer = torch.nn.Linear(32, 64, bias=False)
    x = torch.randn(7, 2, 32).transpose(0, 1)  # (2, 7, 32)
    recorder = AttainableRecorder()
    with torch.inference_mode(), recorder.phase("p"):
        layer(x)
    ops = recorder.phases["p"]
    (func, args, _), = ops.replayed
    weight = args[1]
    assert func.overloadpacket.__name__ == "bmm" and weight.shape == (2, 32, 64) and weight.stride[0] == 0
    made = weight.make()
    assert made.shape == weight.shape and made.stride() == weight.stride and torch.equal(made[0], made[1])
    assert weight.nbytes == 32 * 64 * 4  # the memory it spans, not shape x element size
    machine = MachineModel()
    machine._bandwidth["cpu"] = 1e9
    parts = machine.attainable_s(ops, "cpu")
    assert 0 < parts["replayed_s"] < 1 and 0 < parts["attainable_cold_s"] - parts["memory_bound_s"] < 1


def test_measured_machine_numbers_are_physical():
    machine = MachineModel()
    bandwidth = machine.bandwidth_bytes_per_s("cpu")
    assert 1e8 < bandwidth < 1e13  # between 0.1 GB/s and 10 TB/s
    recorder = AttainableRecorder()
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    with recorder.phase("mm"):
        a @ b
    replay = machine.replay_s(next(iter(recorder.phases["mm"].replayed)))
    assert 2 * 256**3 / replay < 1e13  # no CPU here does 10 TFLOP/s in float32
    assert replay > 0


def test_a_cold_replay_cycles_operand_copies_beyond_the_caches(monkeypatch):
    import bench.app.attainable as attainable

    recorder = AttainableRecorder()
    x, w = torch.randn(8, 512), torch.randn(512, 1024)  # 2 MiB of weight for a few rows
    with recorder.phase("mm"):
        x @ w
    key = next(iter(recorder.phases["mm"].replayed))
    seen: list[int] = []
    real = key[0]

    def spy(*args, **kwargs):
        seen.append(args[1].data_ptr())  # the weight operand of this call
        return real(*args, **kwargs)

    spied = (spy, key[1], key[2])
    machine = MachineModel()
    assert machine.replay_s(spied) > 0
    warm_weights, warm_calls = set(seen), len(seen)
    seen.clear()
    assert machine.replay_s(spied, cold=True) > 0
    # warm: one weight tensor for every call; cold: enough copies to exceed COLD_BYTES (or the
    # copy cap), every one called while timed
    copies = min(attainable.COLD_MAX_COPIES, -(-attainable.COLD_BYTES // (8 * 512 * 4 + 512 * 1024 * 4)))
    assert len(warm_weights) == 1 and warm_calls >= 6
    assert len(set(seen)) == copies and len(seen) >= 2 * copies


def test_a_run_reports_each_phase_attainable_time_and_the_fraction_reached(tmp_path):
    workload = dataclasses.replace(get_workloads("smoke")[0], warmup_blocks=1)
    result = Runner(WallClock()).run_cell("lmdm-causal", get_preset("tiny"), workload, "cpu", torch.float32, tmp_path)
    flops = result.flops
    steady = flops[flops.block_kind == "steady"].set_index("phase")
    assert set(steady.index) >= {"first_step", "step", "decode"}
    assert (steady.loc[["first_step", "step"], "attainable_ms"] > 0).all()
    assert (steady.loc[["first_step", "step"], "replayed_calls"] > 0).all()
    # the replayed part is the matmuls and attention; their FLOPs are what the phase counts
    assert np.allclose(steady.attainable_ms, steady.attainable_replayed_ms + steady.attainable_memory_ms)
    # the cold replays are modelled for every phase (their mechanism: the spy test above; how
    # they compare with warm ones is a timing, measured in benchmarks, not asserted here)
    assert (steady.loc[["first_step", "step"], "attainable_cold_ms"] > 0).all()
    assert np.isfinite(steady.attainable_cold_ms).all()
    assert (steady.bytes_moved > 0).all()


def test_no_attainable_model_under_a_fake_clock_or_without_a_recorded_phase(tmp_path):
    from bench.app.clocks import FakeClock

    workload = get_workloads("smoke")[0]
    result = Runner(FakeClock()).run_cell("lmdm-causal", get_preset("tiny"), workload, "cpu", torch.float32, tmp_path)
    assert result.flops.attainable_ms.isna().all()
    assert attainable_columns(AttainableRecorder(), "absent", "cpu")["attainable_ms"] == 0.0
