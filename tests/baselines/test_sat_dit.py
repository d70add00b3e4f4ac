"""dit.arch=sat: stable-audio-tools' DiT, equal to stable-audio-tools' own code, in every diffusion regime.

The parity tests build stable-audio-tools' ``DiffusionTransformer`` (its code is installed by
``make install`` with ``--no-deps``: see the Makefile) from the same config, randomise every weight,
save its state dict the way its training wrapper names it, load that file through
``dit.weights`` and require equal outputs. They skip only where the package is not installed, and
fail instead when ``CI`` is set.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from baselines.sat_dit import SatDiT, build_sat_dit, load_sat_spec, parse_sat_config
from bench.core.errors import ConfigError
from bench.core.presets import apply_overrides, get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control
from tests.baselines.diffusion_reference import max_abs_diff, record_velocities, reference_stream

TOL = 1e-5


def sat_config(io: int, width: int = 64, depth: int = 2, heads: int = 2, cond: int = 16, *, glob: int | None = None,
               concat: bool = False, add: bool = False, **extra) -> dict:  # noqa: ANN003
    """A stable-audio-tools model config (the fields a DiT reads)."""
    diffusion_cfg = {"io_channels": io, "embed_dim": width, "depth": depth, "num_heads": heads,
                     "cond_token_dim": cond, "global_cond_dim": cond if glob is None else glob,
                     "transformer_type": "continuous_transformer", "attn_kwargs": {"qk_norm": "ln"}, **extra}
    diffusion = {"cross_attention_cond_ids": ["prompt"], "global_cond_ids": ["seconds_total"],
                 "diffusion_objective": "rf_denoiser", "type": "dit", "config": diffusion_cfg}
    if concat:
        diffusion["input_concat_ids"] = ["inpaint_mask", "inpaint_masked_input"]
        diffusion_cfg["input_concat_dim"] = 1 + io
    if add:
        diffusion_cfg["input_add_dims"] = [["inpaint_mask", 1], ["inpaint_masked_input", io]]
    return {"model_type": "diffusion_cond", "sample_rate": 8000, "model": {"io_channels": io, "diffusion": diffusion}}


def _write(tmp_path: Path, doc: dict, name: str = "model_config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


# ------------------------------------------------------------------ stable-audio-tools' own code
def sat_reference_class(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """stable-audio-tools' DiffusionTransformer. Its package imports pytorch_lightning (for LoRA
    training callbacks) at import time; that one module is stubbed for the import, nothing else."""
    if importlib.util.find_spec("pytorch_lightning") is None:
        stub = types.ModuleType("pytorch_lightning")
        stub.Callback = type("Callback", (), {})
        stub.callbacks = types.SimpleNamespace(ModelCheckpoint=type("ModelCheckpoint", (), {}))
        monkeypatch.setitem(sys.modules, "pytorch_lightning", stub)
    try:
        from stable_audio_tools.models.dit import DiffusionTransformer
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"stable-audio-tools' code must be installed in CI (make install does it): {exc}")
        pytest.skip(f"stable-audio-tools' code is not installed ({exc}); `make install` installs it with --no-deps")
    return DiffusionTransformer


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and buffer random (its init zeroes branch outputs), RoPE frequencies kept."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not name.endswith("inv_freq"):
                scale = 1.0 / tensor.shape[1] ** 0.5 if tensor.dim() > 1 else 0.1  # O(1) activations
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * scale
                             + (1.0 if name.endswith(("gamma", "norm.weight")) else 0.0))
    return model.eval()


def _sat_pair(tmp_path, monkeypatch, doc, seed=0):  # noqa: ANN001, ANN202
    """(stable-audio-tools' model, ours loaded from its saved state dict, our config)."""
    reference_cls = sat_reference_class(monkeypatch)
    spec_cfg = doc["model"]["diffusion"]["config"]
    reference = _randomised(reference_cls(diffusion_objective="rf_denoiser", **spec_cfg), seed)
    weights = tmp_path / "model.safetensors"
    # the training wrapper's names (model.model.*) plus a conditioner tensor that must be ignored
    tensors = {f"model.model.{k}": v.contiguous() for k, v in reference.state_dict().items()}
    tensors["conditioner.conditioners.seconds_total.embedder.weight"] = torch.zeros(3)
    save_file(tensors, str(weights))
    io = spec_cfg["io_channels"]
    preset = get_preset("tiny")
    config = apply_overrides(preset.dit, {"arch": "sat", "config": _write(tmp_path, doc), "weights": str(weights),
                                          "codec.latent_bins": io})
    return reference, build_sat_dit(config), config


def _full_window_outputs(reference, ours: SatDiT, seed: int = 1, n: int = 2, s: int = 20, nc: int = 5):  # noqa: ANN001
    spec = ours.spec
    gen = torch.Generator().manual_seed(seed)
    noisy = torch.randn(n, s, spec.io_channels, generator=gen)
    mask = (torch.arange(s) < s // 2).float()[None, :, None].expand(n, -1, -1)
    masked = torch.randn(n, s, spec.io_channels, generator=gen) * mask
    t = torch.rand(n, generator=gen)
    cond = torch.randn(n, nc, spec.cond_token_dim, generator=gen)
    kwargs = {"cross_attn_cond": cond, "cfg_scale": 1.0}
    if spec.global_cond_dim:
        kwargs["global_embed"] = cond[:, -1]
    if spec.input_concat:
        kwargs["input_concat_cond"] = torch.cat([mask, masked], dim=-1).transpose(1, 2)
    with torch.no_grad():
        theirs = reference(noisy.transpose(1, 2), t, **kwargs).transpose(1, 2)  # (N, S, D)
        cos, sin = ours.rope(ours.window_positions(0, s, 0, token=True), torch.float32)
        mine = ours(noisy, mask, masked, t, cond, cos, sin)
    return theirs, mine


@pytest.mark.parametrize("shape", [
    dict(width=64, heads=2),  # head dim 32: RoPE over the whole head
    dict(width=128, heads=2, concat=True),  # head dim 64: partial RoPE (32 of 64 dims); inpainting channels
    dict(width=128, heads=4, cond=32, glob=0, project_cond_tokens=False),  # unprojected 32-d context: 1 KV head
    dict(width=64, heads=2, ff_kwargs={"mult": 2, "no_bias": True}),
], ids=["full-rope", "partial-rope-inpaint", "gqa-no-global", "ff-no-bias"])
def test_outputs_and_parameter_count_equal_stable_audio_tools(tmp_path, monkeypatch, shape):
    doc = sat_config(io=8, **shape)
    reference, ours, _ = _sat_pair(tmp_path, monkeypatch, doc)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    assert set(ours.state_dict()) == set(reference.state_dict())
    theirs, mine = _full_window_outputs(reference, ours)
    assert theirs.abs().mean() > 0.3  # a real signal (every branch randomised), not zeros
    assert float((theirs - mine).abs().max()) <= TOL


def test_sao_small_builtin_config_has_stable_audio_tools_parameter_count(monkeypatch):
    reference_cls = sat_reference_class(monkeypatch)
    spec_cfg = json.loads(Path(load_sat_spec("builtin:sao-small").source).read_text())["model"]["diffusion"]["config"]
    with torch.device("meta"):
        reference = reference_cls(diffusion_objective="rf_denoiser", **spec_cfg)
    preset = apply_overrides(get_preset("sao-small"), ["dit.arch=sat", "dit.config=builtin:sao-small"])
    ours = build_sat_dit(preset.dit, "meta")
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert abs(count - 341e6) < 1e6  # Stable Audio Open Small's published 341M


# ------------------------------------------------------------------------------ the regimes
def _sat_preset(tmp_path, rope_mode: str = "fixed", **shape):  # noqa: ANN001, ANN003, ANN202
    preset = get_preset("tiny")
    io = preset.dit.codec.latent_dim
    path = _write(tmp_path, sat_config(io=io, **shape))
    return apply_overrides(preset, [f"dit.rope_mode={rope_mode}", "dit.arch=sat", f"dit.config={path}"])


def _stream(gen, prompts, seed=3):  # noqa: ANN001, ANN202
    velocities = record_velocities(gen)
    state = gen.start(Control(prompts[0]), seed=seed)
    audio = []
    for prompt in prompts:
        result, state = gen.step(state, Control(prompt))
        audio.append(result.audio)
    return velocities, audio


@pytest.mark.parametrize("regime,reference,rope_mode", [
    ("outpaint", "outpaint", "fixed"), ("lmdm-encdec", "encdec", "fixed"),
    ("lmdm-causal", "causal", "fixed"), ("lmdm-causal", "causal", "offset"),
])
@pytest.mark.parametrize("add", [False, True], ids=["plain", "input-add"])
def test_cached_regimes_equal_uncached_recomputation(tmp_path, regime, reference, rope_mode, add):
    preset = _sat_preset(tmp_path, rope_mode, width=64, heads=2, add=add)
    gen = GENERATORS.create(regime, preset, dataclasses.replace(preset.settings, cfg=True))
    assert isinstance(gen.dit, SatDiT)
    prompts = ["warm organ chords"] * 6 + ["bright bells"]  # W = 4: eviction, re-rotation, a prompt change
    velocities, audio = _stream(gen, prompts)
    ref_v, ref_audio = reference_stream(gen, reference, prompts, seed=3)
    assert len(velocities) == len(ref_v) == 7 * gen.steps
    assert max_abs_diff(velocities, ref_v) <= TOL
    assert max_abs_diff(audio, ref_audio) <= TOL
    assert all(np.isfinite(a).all() and np.abs(a).max() > 0 for a in audio)


@pytest.mark.parametrize("regime", ["outpaint", "lmdm-encdec", "lmdm-causal"])
def test_analytic_flops_equal_flop_counter(tmp_path, regime):
    from bench.app.flops import FlopRecorder

    preset = _sat_preset(tmp_path, width=128, heads=2, concat=True)  # partial RoPE, inpainting channels
    gen = GENERATORS.create(regime, preset, dataclasses.replace(preset.settings, cfg=True))
    state = gen.start(Control("organ"), seed=0)
    for block in range(2):
        recorder = FlopRecorder()
        result, state = gen.step(state, Control("organ"), recorder)
        analytic = gen.analytic_flops(first_block=block == 0)
        assert result.info.analytic_flops == analytic
        assert set(analytic) == set(recorder.flops)
        for phase, flops in analytic.items():
            assert flops == recorder.flops[phase], (phase, flops, recorder.flops[phase])


def test_token_sits_before_the_window_like_stable_audio_tools(tmp_path):
    """The window layout keeps the token last; its RoPE position is the window's origin and the rows
    follow it, exactly stable-audio-tools' prepended positions 0, 1, ..., S."""
    preset = _sat_preset(tmp_path)
    dit = build_sat_dit(preset.dit)
    assert dit.window_positions(0, 4, 0, token=True).tolist() == [1, 2, 3, 4, 0]
    assert dit.window_positions(8, 12, 4, token=True).tolist() == [9, 10, 11, 12, 4]
    assert dit.window_positions(0, 3, 0, token=False).tolist() == [1, 2, 3]


# ------------------------------------------------------------------------- checkpoints and errors
def test_split_qkv_checkpoint_loads_as_the_fused_projection(tmp_path, monkeypatch):
    """LMDM's cache form stores to_q and to_kv; loading concatenates them into to_qkv."""
    doc = sat_config(io=8)
    reference, ours, config = _sat_pair(tmp_path, monkeypatch, doc)
    split = {}
    for key, value in reference.state_dict().items():
        if key.endswith("self_attn.to_qkv.weight"):
            stem, width = key[: -len("to_qkv.weight")], value.shape[1]
            split[stem + "to_q.weight"], split[stem + "to_kv.weight"] = value[:width], value[width:]
        else:
            split[key] = value
    path = tmp_path / "split.safetensors"
    save_file({k: v.contiguous() for k, v in split.items()}, str(path))
    loaded = build_sat_dit(dataclasses.replace(config, weights=str(path)))
    for key, value in ours.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_lightning_ckpt_loads_like_safetensors(tmp_path, monkeypatch):
    reference, ours, config = _sat_pair(tmp_path, monkeypatch, sat_config(io=8))
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in reference.state_dict().items()}}, str(path))
    loaded = build_sat_dit(dataclasses.replace(config, weights=str(path)))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_input_add_embedding_adds_the_conditioning_rows(tmp_path):
    """LMDM's input_add: project_in(x + preprocess(x)) + W_add [mask, masked], in closed form."""
    preset = _sat_preset(tmp_path, add=True)
    dit = build_sat_dit(preset.dit)
    gen = torch.Generator().manual_seed(0)
    d = dit.latent_dim
    noisy, masked = torch.randn(1, 5, d, generator=gen), torch.randn(1, 5, d, generator=gen)
    mask = torch.ones(1, 5, 1)
    pre = dit.preprocess_conv.weight[:, :, 0]
    expected = (noisy + noisy @ pre.T) @ dit.transformer.project_in.weight.T
    expected = expected + torch.cat([mask, masked], -1) @ dit.to_input_add_embed.weight.T
    assert torch.allclose(dit.embed(noisy, mask, masked), expected, atol=1e-6)


def test_mismatched_checkpoint_and_config_errors_name_the_problem(tmp_path, monkeypatch):
    _, _, config = _sat_pair(tmp_path, monkeypatch, sat_config(io=8))
    wider = dataclasses.replace(config, config=_write(tmp_path, sat_config(io=8, width=128), "wide.json"))
    with pytest.raises(ConfigError, match="wrong shapes"):
        build_sat_dit(wider)
    with pytest.raises(ConfigError, match="does not exist"):
        build_sat_dit(dataclasses.replace(config, weights=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ConfigError, match="io_channels=16"):
        build_sat_dit(dataclasses.replace(config, config=_write(tmp_path, sat_config(io=16), "io.json")))
    with pytest.raises(ConfigError, match="needs dit.config"):
        build_sat_dit(dataclasses.replace(config, config=""))


@pytest.mark.parametrize("change,message", [
    (lambda c: c["model"]["diffusion"]["config"].update(global_cond_type="adaLN"), "global_cond_type"),
    (lambda c: c["model"]["diffusion"]["config"].update(num_memory_tokens=4), "unsupported DiT option"),
    (lambda c: c["model"]["diffusion"].update(diffusion_objective="v"), "rectified-flow"),
    (lambda c: c["model"]["diffusion"].update(input_concat_ids=["inpaint_mask"]), "input_concat_dim"),
    (lambda c: c["model"]["diffusion"].update(input_concat_ids=["melody"]), "only produce"),
    (lambda c: c["model"]["diffusion"]["config"].update(embed_dim=32, num_heads=2), "head dim 16"),
    (lambda c: c["model"]["diffusion"]["config"].update(attn_kwargs={"qk_norm": "rms"}), "qk_norm"),
])
def test_unsupported_configs_are_refused_with_the_key_named(change, message):
    doc = sat_config(io=8)
    change(doc)
    with pytest.raises(ConfigError, match=message):
        parse_sat_config(doc, "x.json")


def test_default_shape_stream_runs_every_regime_on_a_checkpoint_saved_by_stable_audio_tools(tmp_path, monkeypatch):
    """The default run's stream (cpu preset: 4 s context, 1 s blocks, 8 steps, its codec's latents)
    on a sat model whose weights stable-audio-tools' code saved."""
    preset = get_preset("cpu")
    io = preset.dit.codec.latent_dim
    reference_cls = sat_reference_class(monkeypatch)
    doc = sat_config(io=io, width=64, depth=2, heads=2, cond=preset.dit.cond_dim, concat=True)
    reference = _randomised(reference_cls(diffusion_objective="rf_denoiser", **doc["model"]["diffusion"]["config"]), 0)
    weights = tmp_path / "sat.safetensors"
    save_file({f"model.model.{k}": v.contiguous() for k, v in reference.state_dict().items()}, str(weights))
    preset = apply_overrides(preset, ["dit.arch=sat", f"dit.config={_write(tmp_path, doc)}", f"dit.weights={weights}"])
    for regime in ("outpaint", "lmdm-encdec", "lmdm-causal"):
        gen = GENERATORS.create(regime, preset, preset.settings)
        assert isinstance(gen.dit, SatDiT)
        state = gen.start(Control("warm organ chords"), seed=0)
        for _ in range(2):
            result, state = gen.step(state, Control("warm organ chords"))
            assert result.audio.shape == (preset.dit.codec.channels, gen.spec.block_samples)
            assert np.isfinite(result.audio).all()
