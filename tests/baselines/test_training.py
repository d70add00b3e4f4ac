"""Training: the training passes equal the generators' passes, RVQ k-means, the seeded loop
(resume == uninterrupted, loss decreases), export, and the committed checkpoints (hashes, load)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from baselines.attention import rope_cos_sin
from baselines.codec import ResidualVQ
from baselines.conditioning import prompt_tokens, style_ids
from baselines.dit import build_dit
from baselines.lmdm_causal import BlockCausalGenerator
from baselines.lmdm_encdec import EncDecGenerator
from baselines.lmm import RVQ_CODEBOOKS_KEY, LiveMusicModelGenerator, LMMNet
from baselines.outpaint import OutpaintGenerator
from baselines.samplers import logsnr_schedule
from baselines.training.data import LatentBank, TokenBank
from baselines.training.diffusion import DiffusionTask, Geometry, attention_mask, base_known_rows, window_velocity
from baselines.training.export import (
    MAX_FILE_BYTES,
    REGIME_FILES,
    checkpoints_dir,
    read_config,
    save_half,
    verify_checkpoints,
    write_sums,
)
from baselines.training.lmm import LMMTask
from baselines.training.loop import LoopConfig, read_loss_log, train
from baselines.training.rvq import fit_rvq
from baselines.transformer import init_parameters
from baselines.weights import expected_hashes
from bench.core.contract import block_generator
from bench.core.settings import Control
from bench.core.presets import apply_overrides, get_preset
from bench.core.registry import GENERATORS

SEED = 3


def _settings_one_euler_step(preset):
    return dataclasses.replace(preset.settings, steps=1, sampler="euler")


# ------------------------------------------------------------------ training pass == generator pass
@pytest.mark.parametrize("task,cls", [("base", OutpaintGenerator), ("encdec", EncDecGenerator),
                                      ("causal", BlockCausalGenerator)])
def test_training_window_equals_the_regimes_first_block(task, cls):
    """One Euler step from the block's noise: the generator's x0 equals x - t v with v from the
    training pass (same routing, mask, positions, conditioning)."""
    preset = get_preset("tiny")
    gen = cls(preset, _settings_one_euler_step(preset))
    audio = (0.3 * np.sin(np.arange(8000, dtype=np.float32) * 0.07))[None, :]
    prompt = "bach chorale, organ"
    state = gen.start(Control(prompt), seed=SEED, context_audio=audio)
    _, new_state = gen.step(state, Control(prompt))
    c, b = gen.context_frames, gen.block_frames
    x0_generator = new_state.context[-b:]  # (B, D)

    t0 = logsnr_schedule(1)[0]
    noise = torch.randn(b, gen.latent_dim, generator=block_generator(SEED, 0, "noise", "cpu"))
    context = state.context  # (C, D)
    if task == "base":  # outpaint re-noises the context with its own generator
        eps = torch.randn(context.shape, generator=block_generator(SEED, 0, "renoise", "cpu"))
        ctx_noisy = (1 - t0) * context + t0 * eps
    else:
        ctx_noisy = torch.full_like(context, 123.0)  # must be ignored (context router)
    noisy = torch.cat([ctx_noisy, noise])[None]  # (1, S, D)
    clean = torch.cat([context, torch.full_like(noise, -7.0)])[None]  # target rows must be ignored
    known = (torch.arange(c + b) < c)[None]
    cond = prompt_tokens(prompt, preset.dit.cond_tokens, preset.dit.cond_dim)[None]
    cos, sin = rope_cos_sin(torch.arange(c + b + 1, dtype=torch.float64), gen.head_dim)
    v = window_velocity(task, gen.dit, noisy, known, clean, torch.tensor([t0]), cond, cos, sin,
                        attention_mask(task, Geometry(c, b)))[0, c:]
    assert torch.allclose(noise - t0 * v, x0_generator, atol=1e-5)


def test_lmm_teacher_forcing_equals_generation():
    """The parallel training pass gives the logits the generator sampled from, step by step."""
    preset = get_preset("tiny")
    gen = LiveMusicModelGenerator(preset, preset.settings)
    audio = (0.3 * np.sin(np.arange(8000, dtype=np.float32) * 0.05))[None, :]
    state = gen.start(Control("folk reel, fiddle"), seed=SEED, context_audio=audio)
    style = gen._style_batch("folk reel, fiddle")  # (1, S)
    trace: dict = {}
    with torch.no_grad():
        tokens = gen.decode_tokens(gen.encode(state.context_tokens, style),
                                   block_generator(SEED, 0, "lmm-sample", "cpu"), trace=trace,
                                   start=gen.start_input(state.context_tokens))  # (B, Q)
        task = LMMTask(gen.model, preset.lmm, bank=None, context=gen.context_frames, block=gen.block_frames, batch=1)
        logits = task.logits(state.context_tokens[None], tokens[None], style)[0]  # (B, Q, V)
    sampled = torch.stack(trace["depth"]).reshape(logits.shape)
    assert torch.allclose(logits, sampled, atol=1e-4)


def test_base_masks_cover_the_four_kinds():
    g = Geometry(16, 4)
    known = base_known_rows(4000, g, torch.Generator().manual_seed(0))
    prefix = known[:, :16].all(1) & ~known[:, 16:].any(1)
    none = ~known.any(1)
    assert abs(prefix.float().mean().item() - 0.55) < 0.05  # the streaming prefix (+ rare random prefixes)
    assert abs(none.float().mean().item() - 0.10) < 0.03
    assert known.float().mean() > 0.3


# ------------------------------------------------------------------ RVQ
def test_rvq_kmeans_finds_separated_clusters_and_stores_exactly():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    x = centres[torch.randint(4, (2000,), generator=gen)] + 0.01 * torch.randn(2000, 2, generator=gen)
    fit = fit_rvq(x, levels=2, size=4, iters=10, seed=0)
    assert fit.residual_energy[0] < 1e-3 * fit.data_energy  # one level of 4 codes explains the data
    assert fit.residual_energy[1] <= fit.residual_energy[0]
    assert torch.equal(fit.codebooks.half().float(), fit.codebooks)  # float16 storage is lossless
    rvq = ResidualVQ(dim=2, levels=2, size=4)
    rvq.load_codebooks(fit.codebooks)
    err = (rvq.dequantize(rvq.quantize(x)) - x).pow(2).mean()
    assert float(err) <= fit.residual_energy[1] * 1.01


# ------------------------------------------------------------------ the loop
def _tiny_bank(n_clips=6, frames=40):
    cfg = get_preset("tiny").dit
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(frames, dtype=torch.float32)[None, :, None]
    lat = 0.5 * torch.sin(0.3 * t + torch.randn(n_clips, 1, cfg.codec.latent_dim, generator=gen))
    return LatentBank(lat, [(f"piece {i} organ", "chorale") for i in range(n_clips)], cfg), cfg


def test_resume_equals_uninterrupted(tmp_path):
    bank, cfg = _tiny_bank()
    loop = LoopConfig(name="t", steps=6, batch=3, save_every=2, warmup_steps=2, lr=1e-3)

    def run(folder, crash_at=None, resume=False):
        model = build_dit(cfg)
        task = DiffusionTask("causal", model, bank, Geometry(16, 4), loop.batch)
        calls = {"n": 0}

        def loss(g):
            calls["n"] += 1
            if crash_at is not None and calls["n"] == crash_at:
                raise KeyboardInterrupt("simulated crash")
            return task.loss(g)

        return model, train(model, loss, loop, folder, resume=resume, progress=False)

    model_a, result_a = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", crash_at=5)  # steps 0-3 done, state saved at step 4
    model_b, result_b = run(tmp_path / "b", resume=True)
    assert result_a.step == result_b.step == 6 and result_b.finished
    for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(pa, pb), name
    for key in result_a.ema:
        assert torch.equal(result_a.ema[key], result_b.ema[key]), key
    rows_a = [(r["step"], r["loss"], r["lr"]) for r in read_loss_log(tmp_path / "a" / "loss.csv")]
    rows_b = [(r["step"], r["loss"], r["lr"]) for r in read_loss_log(tmp_path / "b" / "loss.csv")]
    assert rows_a == rows_b and [r[0] for r in rows_a] == [1, 2, 3, 4, 5, 6]


def test_resume_restores_companions_and_logs_their_columns(tmp_path):
    # a task that trains a second module inside its loss (as ARC-Forcing's discriminator): a
    # resumed run equals an uninterrupted one, companion and its optimiser included
    bank, cfg = _tiny_bank()
    loop = LoopConfig(name="c", steps=5, batch=2, save_every=2, warmup_steps=1, lr=1e-3)

    def run(folder, crash_at=None, resume=False):
        model = build_dit(cfg)
        task = DiffusionTask("causal", model, bank, Geometry(16, 4), loop.batch)
        side = torch.nn.Linear(3, 1)
        with torch.no_grad():
            side.weight.fill_(0.5)
            side.bias.fill_(0.0)
        side_opt = torch.optim.Adam(side.parameters(), lr=0.1)
        calls, last = {"n": 0}, [0.0]

        def loss(g):
            calls["n"] += 1
            if crash_at is not None and calls["n"] == crash_at:
                raise KeyboardInterrupt("simulated crash")
            side_loss = (side(torch.randn(4, 3, generator=g)) - 1.0).pow(2).mean()
            side_opt.zero_grad()
            side_loss.backward()
            side_opt.step()
            last[0] = float(side_loss.detach())
            return task.loss(g)

        result = train(model, loss, loop, folder, resume=resume, progress=False,
                       companions={"side": side, "side_opt": side_opt}, extra_columns=("side_loss",),
                       extra_values=lambda: last)
        return side, side_opt, result

    side_a, opt_a, _ = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", crash_at=4)  # state saved at step 2
    side_b, opt_b, result_b = run(tmp_path / "b", resume=True)
    assert result_b.finished
    assert torch.equal(side_a.weight, side_b.weight) and torch.equal(side_a.bias, side_b.bias)
    assert opt_a.state_dict()["state"][0]["step"] == opt_b.state_dict()["state"][0]["step"] == 5
    rows_a = read_loss_log(tmp_path / "a" / "loss.csv")
    assert [r["side_loss"] for r in rows_a] == [r["side_loss"] for r in read_loss_log(tmp_path / "b" / "loss.csv")]
    assert len(rows_a) == 5 and all(math.isfinite(r["side_loss"]) for r in rows_a)


def test_resume_refuses_other_settings(tmp_path):
    bank, cfg = _tiny_bank()
    model = build_dit(cfg)
    task = DiffusionTask("base", model, bank, Geometry(16, 4), 2)
    train(model, task.loss, LoopConfig(name="t", steps=1, batch=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match="steps"):
        train(model, task.loss, LoopConfig(name="t", steps=3, batch=2), tmp_path, resume=True, progress=False)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    from baselines.data.build import BuildConfig, build_dataset, load_dataset

    root = tmp_path_factory.mktemp("data") / "ds"
    build_dataset(root, BuildConfig(clips=4, collections=("bach",)))
    return load_dataset(root)


def _preset_16k():
    """The tiny preset at the data set's 16 kHz (one replace: apply_overrides validates each field
    alone, and the two codecs must share the sample rate)."""
    p = get_preset("tiny")
    dit = dataclasses.replace(p.dit, codec=dataclasses.replace(p.dit.codec, sample_rate=16000, hop=500))
    lmm = dataclasses.replace(p.lmm, codec=dataclasses.replace(p.lmm.codec, sample_rate=16000, hop=640))
    return dataclasses.replace(p, dit=dit, lmm=lmm)


def _fixed_batch_loss(task, seed=123):
    with torch.no_grad():
        return float(task.loss(torch.Generator().manual_seed(seed)))


def test_diffusion_loss_decreases_on_real_clips(tmp_path, tiny_dataset):
    cfg = _preset_16k().dit
    bank = LatentBank.from_dataset(tiny_dataset, "train", cfg)
    model = build_dit(cfg)
    task = DiffusionTask("base", model, bank, Geometry(16, 4), batch=16)
    before = _fixed_batch_loss(task)
    train(model, task.loss, LoopConfig(name="d", steps=20, batch=16, lr=3e-3, warmup_steps=3), tmp_path,
          progress=False)
    after = _fixed_batch_loss(task)
    assert after < 0.8 * before


def test_lmm_loss_starts_at_log_vocab_and_decreases(tmp_path, tiny_dataset):
    cfg = _preset_16k().lmm
    from baselines.training.data import encode_clips

    latents = encode_clips(tiny_dataset, tiny_dataset.clips("train"), cfg.codec)
    fit = fit_rvq(latents, cfg.rvq_levels, cfg.codebook_size, iters=5, seed=0)
    bank = TokenBank.from_dataset(tiny_dataset, "train", cfg, fit.codebooks)
    net = LMMNet(cfg, device="meta").to_empty(device="cpu")
    init_parameters(net, torch.Generator().manual_seed(0))
    task = LMMTask(net, cfg, bank, context=8, block=4, batch=8)
    before = _fixed_batch_loss(task)
    assert before == pytest.approx(math.log(cfg.codebook_size), abs=0.15)  # near-uniform at init (std 0.02)
    train(net, task.loss, LoopConfig(name="l", steps=15, batch=8, lr=3e-3, warmup_steps=3), tmp_path,
          progress=False)
    assert _fixed_batch_loss(task) < before - 0.3


def test_style_ids_of_the_short_prompt_recur():
    """The LMM's hashed style ids depend on the whole prompt: the short prompts (shared by many
    clips) are what gives the style embedding something to learn."""
    cfg = get_preset("cpu").lmm
    assert torch.equal(style_ids("bach chorale, organ", cfg.style_tokens, cfg.style_vocab),
                       style_ids("Bach chorale organ", cfg.style_tokens, cfg.style_vocab))


# ------------------------------------------------------------------ export
def test_export_half_and_sums_detect_tampering(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5.0)}
    size = save_half(tensors, tmp_path / "m.safetensors")
    from safetensors.torch import load_file

    loaded = load_file(str(tmp_path / "m.safetensors"))
    assert loaded["a"].dtype == torch.float16 and size == (tmp_path / "m.safetensors").stat().st_size
    (tmp_path / "config.json").write_text("{}")
    write_sums(tmp_path)
    assert verify_checkpoints(tmp_path) == {"config.json": "ok", "m.safetensors": "ok"}
    (tmp_path / "m.safetensors").write_bytes(b"x")
    assert verify_checkpoints(tmp_path)["m.safetensors"] == "sha256 mismatch"


# ------------------------------------------------------------------ the committed checkpoints
COMMITTED = checkpoints_dir("cpu")


def _committed_config():
    if not (COMMITTED / "SHA256SUMS").is_file():
        pytest.fail(f"no committed checkpoints in {COMMITTED} (SHA256SUMS missing)")
    return read_config(COMMITTED)


def test_committed_checkpoints_verify():
    config = _committed_config()
    status = verify_checkpoints(COMMITTED)
    assert status and all(s == "ok" for s in status.values()), status
    sums = expected_hashes(COMMITTED)
    assert set(config["models"]) == set(REGIME_FILES)
    for regime, entry in config["models"].items():
        path = COMMITTED / entry["file"]
        assert entry["file"] == f"{regime}.safetensors"
        assert path.stat().st_size < MAX_FILE_BYTES
        assert sums[entry["file"]] == entry["sha256"]
        assert len(entry["data"]["manifest_sha256"]) == 64
        assert entry["finished"] and math.isfinite(entry["final_loss"]) and entry["wall_s"] > 0
    assert json.loads((COMMITTED / "config.json").read_text())["storage_dtype"] == "float16"


@pytest.mark.parametrize("regime", REGIME_FILES)
def test_committed_checkpoints_load_into_the_generators(regime):
    config = _committed_config()
    field = "lmm.weights" if regime == "lmm" else "dit.weights"
    preset = apply_overrides(get_preset(config["preset"]),
                             config["preset_overrides"] + [f"{field}={COMMITTED / (regime + '.safetensors')}"])
    settings = dataclasses.replace(preset.settings, steps=2)
    gen = GENERATORS.create(regime, preset, settings)
    random_twin = GENERATORS.create(regime, apply_overrides(preset, [f"{field}="]), settings)
    trained = dict(gen.modules()[0].named_parameters())
    seeded = dict(random_twin.modules()[0].named_parameters())
    assert any(not torch.equal(trained[k], seeded[k]) for k in trained)  # the file was really loaded
    from safetensors.torch import load_file

    stored = load_file(str(COMMITTED / f"{regime}.safetensors"))
    name, param = next(iter(trained.items()))
    assert torch.equal(param, stored[name].float())
    if regime == "lmm":
        assert torch.equal(gen.rvq.codebooks, stored[RVQ_CODEBOOKS_KEY].float())
    result, _ = gen.step(gen.start(Control("bach chorale, organ"), seed=0), Control("bach chorale, organ"))
    assert result.audio.shape == (1, gen.spec.block_samples) and np.isfinite(result.audio).all()
    default = GENERATORS.create(regime, get_preset("cpu"), settings)  # the default run's preset
    for key, value in default.modules()[0].state_dict().items():
        assert torch.equal(value, gen.modules()[0].state_dict()[key]), key


def test_half_frames_are_the_last_frame_of_a_context_cut_there():
    from baselines.codecs import make_codec
    from baselines.training.data import encode_half_frames

    codec_config = get_preset("cpu").lmm.codec
    audio = (0.3 * np.sin(np.arange(16000, dtype=np.float32) * 0.07)
             * np.linspace(0, 1, 16000, dtype=np.float32))

    class OneClip:
        def read(self, clip):  # noqa: ANN001
            return audio

    half = encode_half_frames(OneClip(), [{}], codec_config)[0]  # (F, D)
    codec = make_codec(codec_config)
    whole = codec.encode(torch.from_numpy(audio[None]))
    for i in (0, 7, half.shape[0] - 1):
        cut = codec.encode(torch.from_numpy(audio[None, : (i + 1) * codec.hop]))[-1]
        assert torch.allclose(half[i], cut, atol=1e-5)
    assert not torch.allclose(half[7], whole[7], atol=1e-2)  # a whole frame differs: it sees the next hop
