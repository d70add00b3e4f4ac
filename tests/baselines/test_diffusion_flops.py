"""Analytic FLOPs per phase equal FlopCounterMode's measured count exactly (no tolerance), and paper-scale sizes."""

import dataclasses

import pytest

from baselines.dit import parameter_count
from bench.core.settings import Control
from bench.app.flops import FlopRecorder
from bench.core.presets import get_preset
from bench.core.registry import GENERATORS

REGIMES = ["outpaint", "lmdm-encdec", "lmdm-causal"]


def _check_blocks(name, preset, cfg, blocks=3, steps=None):
    p = get_preset(preset)
    settings = dataclasses.replace(p.settings, cfg=cfg, steps=steps or p.settings.steps)
    gen = GENERATORS.create(name, p, settings)
    state = gen.start(Control("organ"), seed=0)
    for block in range(blocks):
        recorder = FlopRecorder()
        result, state = gen.step(state, Control("organ"), recorder)
        info = result.info
        analytic = gen.analytic_flops(first_block=block == 0)
        assert info.analytic_flops == analytic
        assert set(analytic) == set(recorder.flops) == set(info.phase_calls)
        assert dict(recorder.calls) == info.phase_calls
        for phase, flops in analytic.items():
            measured = recorder.flops[phase]
            assert flops == measured, (phase, flops, measured, flops - measured)  # README: equal exactly
        assert info.tokens_processed == gen.tokens_per_block(block == 0)


@pytest.mark.parametrize("name", REGIMES)
@pytest.mark.parametrize("cfg", [False, True])
def test_analytic_matches_measured_at_tiny(name, cfg):
    _check_blocks(name, "tiny", cfg)


@pytest.mark.parametrize("name,cfg", [("outpaint", False), ("lmdm-encdec", True), ("lmdm-causal", False)])
def test_analytic_matches_measured_at_cpu(name, cfg):
    _check_blocks(name, "cpu", cfg, blocks=2, steps=3)  # the cpu preset's shapes; fewer steps for speed


def test_token_passes_follow_the_regime_formulas():
    p = get_preset("cpu")
    c, b, t = 128, 32, 8
    gens = {n: GENERATORS.create(n, p, p.settings, device="meta") for n in REGIMES}
    assert gens["outpaint"].tokens_per_block(False) == t * (c + b + 1)
    assert gens["lmdm-encdec"].tokens_per_block(False) == c + t * (b + 1)
    assert gens["lmdm-causal"].tokens_per_block(True) == (c + b + 1) + (t - 1) * (b + 1)
    assert gens["lmdm-causal"].tokens_per_block(False) == (2 * b + 1) + (t - 1) * (b + 1)


def test_sao_small_on_meta_parameter_count_and_flop_ordering():
    p = get_preset("sao-small")
    gens = {n: GENERATORS.create(n, p, p.settings, device="meta") for n in REGIMES}
    counts = {gen.num_parameters() for gen in gens.values()}
    assert counts == {parameter_count(p.dit)}
    assert 250e6 < parameter_count(p.dit) < 400e6  # SAO-small: 341M published incl. T5 and VAE
    steady = {n: sum(g.analytic_flops(False).values()) for n, g in gens.items()}
    assert steady["outpaint"] > steady["lmdm-encdec"] > steady["lmdm-causal"]
    assert (gens["lmdm-causal"].context_frames, gens["lmdm-causal"].block_frames) == (192, 48)
