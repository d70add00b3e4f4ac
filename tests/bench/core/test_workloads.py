"""Workloads: named ones, validation, fingerprints, prompt schedules, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from bench.core.errors import ConfigError
from bench.core.presets import get_preset
from bench.core.workloads import (
    PAPER_BLOCK_S, PAPER_CONTEXT_S, SWEEP_CONTEXTS_S, Workload, apply_workload_overrides, get_workloads,
    parse_prompts, workload_names,
)


def test_every_named_workload_validates_and_has_unique_names():
    names = []
    for name in workload_names():
        for w in get_workloads(name):
            assert w.settings().context_blocks >= 1 and w.n_blocks >= 1
            names.append(w.name)
    assert len(names) == len(set(names))
    assert {"smoke", "default", "paper", "prompt-switch"} <= set(names)


def test_default_is_the_cpu_presets_stream_and_smoke_the_tiny_ones():
    (default,) = get_workloads("default")
    native = get_preset("cpu").settings
    assert (default.context_s, default.block_s, default.steps) == (native.context_s, native.block_s, native.steps)
    (smoke,) = get_workloads("smoke")
    tiny = get_preset("tiny").settings
    assert (smoke.context_s, smoke.block_s) == (tiny.context_s, tiny.block_s)


def test_paper_workload_is_the_release_stream():
    (paper,) = get_workloads("paper")
    assert paper.settings().context_blocks == 4 and paper.steps == 8 and paper.horizon_s >= 120
    assert paper.settings().frames(44100 / 2048) == (192, 48)  # C = 192, B = 48 latents at 21.53 Hz
    assert (paper.context_s, paper.block_s) == (PAPER_CONTEXT_S, PAPER_BLOCK_S)


def test_context_sweep_changes_only_the_context():
    sweep = get_workloads("context-sweep")
    assert [w.context_s for w in sweep] == list(SWEEP_CONTEXTS_S)
    stripped = {dataclasses.replace(w, name="x", context_s=1.0, description="") for w in sweep}
    assert len(stripped) == 1


def test_prompt_switch_changes_prompt_mid_stream():
    (w,) = get_workloads("prompt-switch")
    assert len(w.prompts) == 2 and 0 < w.prompts[1][0] < w.horizon_s
    assert w.prompt_at(0.0) == w.prompts[0][1] and w.prompt_at(w.prompts[1][0]) == w.prompts[1][1]
    assert w.prompt_index_at(w.prompts[1][0] - 1e-3) == 0


def test_n_blocks_rounds_up():
    w = Workload(name="w", context_s=1.0, block_s=0.5, horizon_s=2.2)
    assert w.n_blocks == 5
    assert dataclasses.replace(w, horizon_s=2.0).n_blocks == 4


def test_fingerprint_is_stable_and_sensitive():
    (w,) = get_workloads("default")
    (again,) = get_workloads("default")
    assert w.fingerprint() == again.fingerprint() and len(w.fingerprint()) == 16
    for change in ({"horizon_s": 65.0}, {"seed": 1}, {"cfg": True}, {"prompts": ((0.0, "other"),)},
                   {"lookahead_s": 2.0}):
        assert dataclasses.replace(w, **change).fingerprint() != w.fingerprint()


@pytest.mark.parametrize("change, field", [
    ({"context_s": 1.5}, "context_s"),
    ({"horizon_s": 0.5}, "horizon_s"),
    ({"scenario": "batch"}, "scenario"),
    ({"prebuffer_s": -1.0}, "prebuffer_s"),
    ({"repeats": 0}, "repeats"),
    ({"warmup_blocks": -1}, "warmup_blocks"),
    ({"steps": 0}, "steps"),
    ({"prompts": ((1.0, "late start"),)}, "prompts"),
    ({"prompts": ((0.0, "a"), (5.0, "b"), (3.0, "c"))}, "prompts"),
    ({"prompts": ((0.0, "a"), (99.0, "b"))}, "prompts"),
    ({"name": "has space"}, "name"),
    ({"lookahead_s": 0.0}, "lookahead_s"),
    ({"lookahead_s": -1.0}, "lookahead_s"),
    ({"lookahead_s": float("inf")}, "lookahead_s"),
    ({"lookahead_s": 0.5}, "lookahead_s"),  # shorter than the 1 s pre-buffer the player holds
])
def test_impossible_workloads_fail_naming_the_field(change, field):
    (w,) = get_workloads("prompt-switch")
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(w, **change)


def test_overrides_coerce_and_validate():
    (w,) = get_workloads("default")
    out = apply_workload_overrides(w, {"horizon_s": "8", "cfg": "true", "steps": "4", "scenario": "realtime"})
    assert (out.horizon_s, out.cfg, out.steps, out.scenario) == (8.0, True, 4, "realtime")
    out = apply_workload_overrides(w, {"prompts": "0:bach chorale;4.5:funk, groove"})
    assert out.prompts == ((0.0, "bach chorale"), (4.5, "funk, groove"))
    (switch,) = get_workloads("prompt-switch")  # change at 16 s: a 4 s horizon needs an earlier change, set together
    out = apply_workload_overrides(switch, [("horizon_s", "4"), ("prompts", "0:a;2:b")])
    assert out.horizon_s == 4.0 and out.prompts == ((0.0, "a"), (2.0, "b"))
    with pytest.raises(ConfigError, match=r"'workload.horizn_s'; did you mean 'horizon_s'\?"):
        apply_workload_overrides(w, {"horizn_s": "8"})
    with pytest.raises(ConfigError, match="'workload.steps' expects a int"):
        apply_workload_overrides(w, {"steps": "many"})
    with pytest.raises(ConfigError, match="name"):
        apply_workload_overrides(w, {"name": "x"})
    with pytest.raises(ConfigError, match="<seconds>:<prompt>"):
        parse_prompts("soon:jazz")


def test_lookahead_defaults_to_one_block_and_is_overridable():
    for name in workload_names():
        for w in get_workloads(name):
            assert w.lookahead_s is None and w.effective_lookahead_s == w.block_s  # default: one block
            assert "lookahead_s" in w.to_dict()
    (w,) = get_workloads("default")
    out = apply_workload_overrides(w, {"lookahead_s": "3"})
    assert out.lookahead_s == 3.0 and out.effective_lookahead_s == 3.0 and out.fingerprint() != w.fingerprint()
    assert apply_workload_overrides(out, {"lookahead_s": "none"}).fingerprint() == w.fingerprint()
    # the default follows the block when the block is overridden (it is not frozen at the old block length)
    assert apply_workload_overrides(w, {"block_s": "0.5"}).effective_lookahead_s == 0.5
    # shorter than a block: allowed when the pre-buffer is too (each block must be computed within it)
    short = apply_workload_overrides(w, [("prebuffer_s", "0"), ("lookahead_s", "0.5")])
    assert short.effective_lookahead_s == 0.5
    with pytest.raises(ConfigError, match="workload.lookahead_s.*prebuffer_s"):
        apply_workload_overrides(w, {"lookahead_s": "0.5"})
    with pytest.raises(ConfigError, match="'workload.lookahead_s' expects seconds"):
        apply_workload_overrides(w, {"lookahead_s": "soon"})


def test_unknown_workload_suggests_a_name():
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        get_workloads("defualt")
