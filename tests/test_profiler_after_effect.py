"""scripts/profiler_after_effect.py: costs before and after a profiled call, and what host-only
profiling records (the attention probe relies on it: the aten SDPA kernel op, without CUPTI)."""

import json

import pytest
import torch

from tests.script_loader import loaded_script


@pytest.fixture(scope="module")
def after_effect():  # noqa: ANN201
    yield from loaded_script("profiler_after_effect")


def test_host_only_profiling_records_the_attention_kernel_op(after_effect, capsys):
    assert after_effect.main(["cpu"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["mode"] == "cpu" and line["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    kernels = [e for e in line["sdpa_events"] if e.startswith("aten::_scaled_dot_product")]
    assert kernels, line["sdpa_events"]  # the op the probe reports, recorded with host activity alone
    for when in ("before", "after"):
        assert 0 < line[when]["op_us"] < 1e4 and 0 < line[when]["entry_us"] < 1e4


def test_the_control_profiles_nothing(after_effect):
    assert after_effect.measure("none")["sdpa_events"] == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a CUDA device")
def test_device_activity_needs_a_cuda_device(after_effect):
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        after_effect.measure("cuda")


def test_interleaved_runs_every_mode_in_fresh_processes_and_summarises(after_effect, capsys):
    lines = after_effect.interleaved(1)
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    modes = ["none", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    assert [x["mode"] for x in printed] == modes == [x["mode"] for x in lines[:-1]]
    summary = lines[-1]
    assert summary["summary"] == "median after / before"
    for mode in modes:  # one round: the ratio is that process's own after / before
        row = next(x for x in lines if x.get("mode") == mode)
        assert summary[mode]["op_us"] == round(row["after"]["op_us"] / row["before"]["op_us"], 3)
