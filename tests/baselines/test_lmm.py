import dataclasses

import numpy as np
import pytest
import torch

from baselines.lmm import SAMPLE_PURPOSE, LiveMusicModelGenerator, lmm_parameter_count
from baselines.token_sampler import guide, sample_tokens
from bench.core.contract import block_generator
from bench.core.errors import ConfigError
from bench.core.settings import Control
from bench.app.flops import FlopRecorder
from bench.core.presets import apply_overrides, get_preset

PROMPT = Control("bach chorale, organ")


def make(preset_name: str = "tiny", cfg: bool = False, overrides: dict | None = None, **settings) -> LiveMusicModelGenerator:
    preset = get_preset(preset_name)
    if overrides:
        preset = apply_overrides(preset, overrides)
    stream = dataclasses.replace(preset.settings, cfg=cfg, **settings)
    return LiveMusicModelGenerator(preset, stream)


def run(gen: LiveMusicModelGenerator, seed: int, blocks: int, control: Control = PROMPT, state=None):
    state = gen.start(control, seed) if state is None else state
    audio = []
    for _ in range(blocks):
        result, state = gen.step(state, control)
        audio.append(result.audio)
    return np.concatenate(audio, axis=1), state


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("top_k", [0, 5])
def test_sampler_equals_torch_multinomial_on_the_same_draws(top_k):
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(0)) * 3
    temperature = 0.7
    for seed in range(20):
        ours = sample_tokens(logits, temperature, top_k, torch.Generator().manual_seed(seed))
        scaled = logits / temperature
        if top_k:
            kth = scaled.topk(top_k, dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        ref = torch.multinomial(scaled.softmax(-1), 1, generator=torch.Generator().manual_seed(seed))[:, 0]
        assert torch.equal(ours, ref)


def test_sampler_respects_top_k():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(1))
    allowed = set(logits[0].topk(3).indices.tolist())
    gen = torch.Generator().manual_seed(2)
    seen = {int(sample_tokens(logits, 5.0, 3, gen)) for _ in range(300)}
    assert seen == allowed  # high temperature: every allowed token shows up, nothing else
    assert int(sample_tokens(logits, 1.0, 1, gen)) == int(logits.argmax())


def test_guidance_closed_form():
    cond, uncond = torch.randn(2, 7), torch.randn(2, 7)
    both = torch.cat([cond, uncond])
    assert torch.allclose(guide(both, 1.0), cond)
    assert torch.allclose(guide(both, 0.0), uncond)
    assert torch.allclose(guide(both, 4.0), uncond + 4 * (cond - uncond))


# ---------------------------------------------------------------- cached == uncached
@pytest.mark.parametrize("cfg", [False, True])
def test_cached_decoding_equals_full_prefix_recompute(cfg):
    gen = make(cfg=cfg, block_s=0.25, context_s=0.5)  # 6 frames x 4 levels per block
    state = gen.start(PROMPT, seed=3)
    traces, tokens = [], []
    with torch.no_grad():
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        for use_cache in (True, False):
            trace: dict = {}
            rng = block_generator(3, 0, SAMPLE_PURPOSE, "cpu")
            tokens.append(gen.decode_tokens(cross, rng, use_cache=use_cache, trace=trace,
                                            start=gen.start_input(state.context_tokens)))
            traces.append(trace)
    assert tokens[0].shape == (6, 4)
    assert torch.equal(tokens[0], tokens[1])
    for kind, steps in (("temporal", 6), ("depth", 24)):
        assert len(traces[0][kind]) == len(traces[1][kind]) == steps
        diff = max((a - b).abs().max().item() for a, b in zip(traces[0][kind], traces[1][kind]))
        assert diff <= 1e-5, (kind, diff)
    assert len(set(tokens[0].flatten().tolist())) > 1  # the sampler really samples


# ---------------------------------------------------------------- determinism and state
@pytest.mark.parametrize("cfg", [False, True])
def test_same_seed_is_bit_identical_and_state_copies_are_exact(cfg):
    gen = make(cfg=cfg)
    a, _ = run(gen, seed=5, blocks=3)
    b, _ = run(gen, seed=5, blocks=3)
    c, _ = run(gen, seed=6, blocks=3)
    assert a.dtype == np.float32 and a.shape == (1, 3 * gen.spec.block_samples)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)

    _, state = run(gen, seed=5, blocks=1)
    saved = gen.copy_state(state)
    first, _ = run(gen, seed=5, blocks=2, state=state)
    again, _ = run(gen, seed=5, blocks=2, state=saved)
    assert np.array_equal(first, again)


def test_generated_tokens_become_the_context_and_the_audio():
    gen = make()
    state = gen.start(PROMPT, seed=1)
    result, new_state = gen.step(state, PROMPT)
    with torch.no_grad():
        cross = gen.encode(state.context_tokens, gen._style_batch(PROMPT.prompt))
        tokens = gen.decode_tokens(cross, block_generator(1, 0, SAMPLE_PURPOSE, "cpu"),
                                   start=gen.start_input(state.context_tokens))
    frames, enc_levels = gen.block_frames, gen.cfg.encoder_levels
    assert torch.equal(new_state.context_tokens[-frames:], tokens[:, :enc_levels])
    assert torch.equal(new_state.context_tokens[:-frames], state.context_tokens[frames:])
    audio = gen.codec.decode(gen.rvq.dequantize(tokens), previous=state.last_latent)
    assert np.array_equal(result.audio, audio.numpy())
    assert new_state.block_index == 1 and state.block_index == 0  # input state untouched


def test_guidance_scale_one_is_the_conditional_model_and_zero_the_unconditional():
    plain = make()
    for scale, prompt in ((1.0, PROMPT), (0.0, Control(""))):
        guided = make(cfg=True, overrides={"lmm.cfg_scale": scale})
        a, _ = run(plain, seed=2, blocks=2, control=prompt)
        b, _ = run(guided, seed=2, blocks=2, control=PROMPT)
        assert np.abs(a - b).max() <= 1e-5, scale


def test_context_audio_primes_the_stream():
    gen = make()
    samples = gen.spec.context_frames * gen.codec.hop
    t = np.arange(samples) / gen.spec.sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 50 * t))[None].astype(np.float32)  # inside the kept band (0-100 Hz)
    silent = gen.start(PROMPT, seed=0)
    primed = gen.start(PROMPT, seed=0, context_audio=tone)
    assert not torch.equal(silent.context_tokens, primed.context_tokens)
    short = gen.start(PROMPT, seed=0, context_audio=tone[:, -gen.codec.hop * 3:])  # left-padded
    assert short.context_tokens.shape == primed.context_tokens.shape
    assert torch.equal(short.context_tokens[-2:], primed.context_tokens[-2:])
    with pytest.raises(ValueError, match="channels=1"):
        gen.start(PROMPT, seed=0, context_audio=np.zeros((2, samples), dtype=np.float32))


def test_two_different_contexts_give_different_audio():
    # not only the context tokens: the generated audio depends on the context, beyond numerical noise
    # (the same context and seed twice give identical audio; two tones give different audio)
    gen = make()
    samples = gen.spec.context_frames * gen.codec.hop
    t = np.arange(samples) / gen.spec.sample_rate
    tone_a = (0.5 * np.sin(2 * np.pi * 50 * t))[None].astype(np.float32)  # both inside the kept band (0-100 Hz)
    tone_b = (0.3 * np.sin(2 * np.pi * 20 * t + 1.0))[None].astype(np.float32)
    outs = [run(gen, seed=0, blocks=2, state=gen.start(PROMPT, seed=0, context_audio=tone))[0]
            for tone in (tone_a, tone_a, tone_b)]
    noise = float(np.abs(outs[0] - outs[1]).max())
    assert noise <= 1e-6
    assert float(np.abs(outs[0] - outs[2]).max()) > max(1e-3, 1e3 * noise)


# ---------------------------------------------------------------- FLOPs
@pytest.mark.parametrize(
    "preset_name,cfg,blocks",
    [("tiny", False, 2), ("tiny", True, 2), ("cpu", False, 1)],
)
def test_analytic_flops_match_the_counter_per_phase(preset_name, cfg, blocks):
    gen = make(preset_name, cfg=cfg)
    state = gen.start(PROMPT, seed=0)
    for block in range(blocks):
        recorder = FlopRecorder()
        result, state = gen.step(state, PROMPT, recorder)
        analytic = gen.analytic_flops(first_block=block == 0)
        assert result.info.analytic_flops == analytic
        assert dict(recorder.calls) == result.info.phase_calls
        assert set(recorder.flops) == set(analytic)
        for phase, flops in analytic.items():
            assert flops == recorder.flops[phase], (phase, flops, recorder.flops[phase])  # README: equal exactly


def test_step_info_counts():
    gen = make(cfg=True)
    result, _ = gen.step(gen.start(PROMPT, 0), PROMPT)
    info, cfg, frames = result.info, gen.cfg, gen.block_frames
    n_enc = cfg.style_tokens + gen.context_frames * cfg.encoder_levels
    # one depth entry per frame covers its Q levels (fewer CUDA timing events per block)
    assert info.phase_calls == {"encode": 1, "temporal": frames, "depth": frames, "decode": 1}
    assert info.tokens_processed == 2 * (n_enc + frames + frames * cfg.rvq_levels) == gen.token_passes()
    assert info.cache_len == frames
    assert gen.kv_cache_bytes(None) == 0 and info.transient_kv_bytes == gen.block_kv_bytes() > 0


# ---------------------------------------------------------------- construction
@pytest.mark.parametrize("preset_name", ["tiny", "mrt-base", "mrt-large"])
def test_parameter_count_closed_form_and_meta_construction(preset_name):
    preset = get_preset(preset_name)
    device = "cpu" if preset_name == "tiny" else "meta"
    gen = LiveMusicModelGenerator(preset, preset.settings, device=device)
    assert gen.num_parameters() == lmm_parameter_count(preset.lmm)
    if preset_name == "mrt-base":
        assert gen.spec.block_frames == 50 and gen.encoder_tokens == 1006  # 250 x 4 + 6
        assert gen.token_passes() == 1006 + 50 * 17
    if device == "meta":
        assert all(v > 0 for v in gen.analytic_flops(False).values())
        with pytest.raises(ConfigError, match="meta"):
            gen.start(PROMPT, 0)


def test_weights_round_trip(tmp_path):
    gen = make()
    path = tmp_path / "lmm.safetensors"
    gen.save_weights(path)
    loaded = make(overrides={"lmm.weights": str(path), "lmm.init_seed": 9})
    other_seed = make(overrides={"lmm.init_seed": 9})
    a, _ = run(gen, seed=0, blocks=2)
    assert np.array_equal(a, run(loaded, seed=0, blocks=2)[0])
    assert not np.array_equal(a, run(other_seed, seed=0, blocks=2)[0])


def test_impossible_configs_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="lmm.weights"):
        make(overrides={"lmm.weights": str(tmp_path / "missing.safetensors")})
    wider = tmp_path / "wider.safetensors"
    make(overrides={"lmm.width": 64}).save_weights(wider)
    with pytest.raises(ConfigError, match=r"lmm.weights.*wrong shapes"):
        make(overrides={"lmm.weights": str(wider)})
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="lmm.weights"):
        make(overrides={"lmm.weights": str(garbage)})
    with pytest.raises(ConfigError, match="dtype"):
        LiveMusicModelGenerator(get_preset("tiny"), get_preset("tiny").settings, dtype=torch.int64)
    with pytest.raises(ConfigError, match="lmm.encoder_levels"):
        make(overrides={"lmm.encoder_levels": 5})
    with pytest.raises(ConfigError, match="lmm.width"):
        make(overrides={"lmm.width": 30, "lmm.heads": 4})


def test_half_precision_runs_with_float32_audio():
    preset = get_preset("tiny")
    gen = LiveMusicModelGenerator(preset, dataclasses.replace(preset.settings, cfg=True), dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in gen.model.parameters())
    audio, _ = run(gen, seed=0, blocks=2)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


def test_top_k_at_or_above_the_codebook_means_no_top_k():
    assert make(top_k=40).top_k == 0  # tiny codebook has 16 entries
    assert make(top_k=5).top_k == 5


def test_the_block_starts_from_the_last_context_frame():
    gen = make()
    state = gen.start(PROMPT, seed=1)
    other = dataclasses.replace(state, context_tokens=state.context_tokens.clone())
    other.context_tokens[-1] = (other.context_tokens[-1] + 1) % gen.cfg.codebook_size  # only the last frame
    with torch.no_grad():
        a, b = gen.start_input(state.context_tokens), gen.start_input(other.context_tokens)
        last = state.context_tokens[-1] + torch.arange(gen.cfg.encoder_levels) * gen.cfg.codebook_size
        expected = gen.model.temporal_start + gen.model.token_embed(last).sum(0)
    assert a.shape == (gen.batch, 1, gen.cfg.width) and torch.allclose(a[0, 0], expected)
    assert not torch.allclose(a, b)


def test_tied_level_heads_read_the_token_embedding():
    gen = make(overrides={"lmm.tie_heads": "true"})
    net, cfg = gen.model, gen.cfg
    assert net.level_heads is None
    assert gen.num_parameters() == lmm_parameter_count(cfg) == lmm_parameter_count(
        dataclasses.replace(cfg, tie_heads=False)) - cfg.rvq_levels * cfg.width * cfg.codebook_size
    y = torch.randn(3, cfg.width)
    for level in range(cfg.rvq_levels):
        rows = net.token_embed.weight[level * cfg.codebook_size:(level + 1) * cfg.codebook_size]  # (V, d)
        assert torch.allclose(net.level_logits(level, y), y @ rows.T)
    assert not any(k.startswith("level_heads") for k in net.state_dict())
    # the committed cpu LMM is tied; an untied checkpoint is refused with the field to change
    assert get_preset("cpu").lmm.tie_heads


def test_untied_checkpoint_into_a_tied_model_names_the_mismatch(tmp_path):
    path = tmp_path / "lmm.safetensors"
    make().save_weights(path)
    with pytest.raises(ConfigError, match="level_heads"):
        make(overrides={"lmm.weights": str(path), "lmm.tie_heads": "true"})
