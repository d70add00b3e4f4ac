"""bench.app.peak: the square-matmul peak, and a Ray worker's peak of its own node (best of its measurements)."""

from __future__ import annotations

import pytest
import torch

from bench.app import peak


def test_the_peak_is_the_best_size_and_counts_two_n_cubed_per_product() -> None:
    result = peak.measure_matmul_peak("cpu", torch.float32, sizes=(32, 64), min_time_s=0.01, warmup=1)
    assert set(result.per_size) == {32, 64} and all(v > 0 for v in result.per_size.values())
    assert result.flops_per_s == max(result.per_size.values()) == result.per_size[result.size]
    assert (result.device, result.dtype) == ("cpu", "float32")


def test_a_worker_keeps_the_best_of_its_measurements_and_a_failure_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peak, "_WORKER_BEST", {})
    readings = iter([5e9, 3e9, RuntimeError("CUDA out of memory"), 7e9])

    def fake_measure(device, dtype):  # noqa: ANN001, ANN202
        value = next(readings)
        if isinstance(value, Exception):
            raise value
        return peak.PeakResult(value, 512, str(device), "float32", {512: value})

    monkeypatch.setattr(peak, "measure_matmul_peak", fake_measure)
    first = peak.worker_peak("cpu", torch.float32)
    assert first["flops_per_s"] == 5e9 and first["measurements"] == [5e9]
    second = peak.worker_peak("cpu", torch.float32)  # a slower reading (a busy node) does not lower it
    assert second["flops_per_s"] == 5e9 and second["measurements"] == [5e9, 3e9]
    second["measurements"].append(0.0)  # a caller's copy: the worker's record is not changed through it
    failed = peak.worker_peak("cpu", torch.float32)  # the best earlier measurement stands
    assert failed["flops_per_s"] == 5e9 and failed["measurements"] == [5e9, 3e9]
    assert peak.worker_peak("cpu", torch.float32)["flops_per_s"] == 7e9
    # another dtype has its own record; with nothing measured before, a failure says "not measured" and why
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda device, dtype: (_ for _ in ()).throw(OSError("gone")))
    none = peak.worker_peak("cpu", torch.bfloat16)
    assert none["flops_per_s"] is None and none["dtype"] == "bfloat16" and "not measured: OSError: gone" in none["note"]
