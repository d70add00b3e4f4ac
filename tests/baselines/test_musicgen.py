"""The ``musicgen`` generator at the tiny size: delay pattern, decoder == transformers' forward,
cached == uncached, FLOPs == the counter, seeding, checkpoint directories, the CLI.

The contract test (tests/bench/core/test_contract.py) runs it too, like every registered generator."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from baselines.musicgen import SAMPLE_PURPOSE, MusicGenGenerator
from baselines.musicgen_decoder import DelayLayout, delay_grid, generate_mask, undelay
from baselines.musicgen_model import (
    T5_EOS_ID,
    T5_PAD_ID,
    TEXT_HASHED,
    TEXT_TOKENIZER,
    build_random_model,
    hashed_text_tokens,
    parameter_breakdown,
)
from bench.app.cli import main
from bench.app.flops import FlopRecorder
from bench.core.contract import block_generator
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_DECODE, PHASE_DECODE_TOKENS, PHASE_ENCODE, PHASE_PREFILL
from bench.core.presets import apply_overrides, get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control
from bench.core.storage import read_json, read_table

PROMPT = Control("bach chorale, organ")
OTHER = Control("funk groove, slap bass and drums")


def make(cfg: bool = False, overrides: dict | None = None, **settings) -> MusicGenGenerator:
    preset = get_preset("tiny")
    if overrides:
        preset = apply_overrides(preset, overrides)
    return MusicGenGenerator(preset, dataclasses.replace(preset.settings, cfg=cfg, **settings))


def run(gen: MusicGenGenerator, seed: int, blocks: int, control: Control = PROMPT, state=None):
    state = gen.start(control, seed) if state is None else state
    audio = []
    for _ in range(blocks):
        result, state = gen.step(state, control)
        audio.append(result.audio)
    return np.concatenate(audio, axis=1), state


@pytest.fixture(scope="module")
def gen() -> MusicGenGenerator:
    return make()


# ---------------------------------------------------------------- delay pattern
def test_delay_grid_hand_written_example():
    # K = 3 codebooks, F = 2 context frames, B = 2 block frames: slot p of codebook k holds frame p - 1 - k
    layout, pad = DelayLayout(codebooks=3, context_frames=2, block_frames=2), 9
    context = torch.tensor([[1, 2, 3], [4, 5, 6]])  # (frames, K)
    grid = delay_grid(context, layout, pad)
    assert grid.tolist() == [[9, 1, 4, 9, 9, 9, 9],
                             [9, 9, 2, 5, 9, 9, 9],
                             [9, 9, 9, 3, 6, 9, 9]]
    sampled = generate_mask(layout)
    assert sampled.int().tolist() == [[0, 0, 0, 1, 1, 0, 0],
                                      [0, 0, 0, 0, 1, 1, 0],
                                      [0, 0, 0, 0, 0, 1, 1]]
    assert (layout.prefill_slots, layout.decode_steps, layout.cache_slots) == (3, 3, 6)
    grid[sampled] = torch.tensor([10, 11, 20, 21, 30, 31])  # row-major: (k0 f2, k0 f3, k1 f2, ...)
    assert undelay(grid, layout).tolist() == [[10, 20, 30], [11, 21, 31]]  # (B, K): frame 2, frame 3
    # a stream with one frame so far is right-aligned: its BOS at slot 1, its frame at frame slot 1
    assert delay_grid(context[1:], layout, pad).tolist() == [[9, 9, 4, 9, 9, 9, 9],
                                                             [9, 9, 9, 5, 9, 9, 9],
                                                             [9, 9, 9, 9, 6, 9, 9]]


def test_delay_grid_equals_transformers_delay_pattern_mask(gen):
    layout = gen.layout
    k, f, pad = layout.codebooks, layout.context_frames, gen.stepper.pad_id
    context = torch.randint(0, pad, (f, k), generator=torch.Generator().manual_seed(0))
    prompt = torch.cat([torch.full((k, 1), pad), context.T], dim=1)  # (K, 1 + F): BOS + context, per codebook
    _, pattern = gen.model.decoder.build_delay_pattern_mask(prompt, pad_token_id=pad, max_length=layout.slots)
    ours = delay_grid(context, layout, pad).masked_fill(generate_mask(layout), -1)
    assert torch.equal(ours, pattern)  # -1: the slots transformers predicts


# ---------------------------------------------------------------- the decoder
def _hf_logits(gen, grid, cross_states, cross_keep):
    """transformers' own decoder forward (no cache) on a (K, q) grid -> (b, K, q, V)."""
    k, q = grid.shape
    ids = grid.unsqueeze(0).expand(gen.batch, k, q).reshape(gen.batch * k, q)
    out = gen.model.decoder(input_ids=ids, encoder_hidden_states=cross_states, encoder_attention_mask=cross_keep,
                            use_cache=False)
    return out.logits.view(gen.batch, k, q, -1)


@pytest.mark.parametrize("present", [24, 5, 0])  # context frames so far (F = 24): full, short, from nothing
def test_decoder_equals_transformers_forward(present):
    gen = make(cfg=True)
    g = torch.Generator().manual_seed(present)
    context = torch.randint(0, gen.stepper.pad_id, (present, gen.layout.codebooks), generator=g)
    grid = delay_grid(context, gen.layout, gen.stepper.pad_id)
    sampled = generate_mask(gen.layout)
    grid[sampled] = torch.randint(0, gen.stepper.pad_id, (int(sampled.sum()),), generator=g)
    start = gen.layout.context_frames - present
    with torch.no_grad():
        cross, mask, text = gen.encode_text(PROMPT.prompt)
        # the same conditioning through transformers: projected T5 states, padding zeroed, rows [text | zeros]
        keep = torch.tensor([[1] * text.length + [0] * (len(text.ids) - text.length)])
        states = gen.model.enc_to_dec_proj(gen.model.text_encoder(input_ids=torch.tensor([text.ids]),
                                                                  attention_mask=keep).last_hidden_state)
        states = torch.cat([states * keep[..., None], torch.zeros_like(states)])
        hf = _hf_logits(gen, grid[:, start: gen.layout.cache_slots], states, torch.cat([keep, torch.ones_like(keep)]))
        slots = gen.layout.cache_slots
        x = gen.stepper.prefill_inputs(grid, start, count=slots)
        h = gen.stepper.forward(x, gen.stepper.new_cache(), 0, gen.stepper.self_mask(0, slots, start), cross, mask)
        ours = torch.stack([gen.stepper.logits(h[:, i]) for i in range(start, slots)], dim=2)  # (b, K, q, V)
    assert ours.shape == hf.shape
    assert (ours - hf).abs().max() <= 1e-5


@pytest.mark.parametrize("cfg", [False, True])
@pytest.mark.parametrize("with_context", [False, True])
def test_cached_decoding_equals_uncached_recompute(cfg, with_context):
    gen = make(cfg=cfg)
    context = None
    if with_context:
        t = np.arange(int(0.3 * gen.sample_rate)) / gen.sample_rate  # 15 of the 24 context frames
        context = (0.3 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32)
    state = gen.start(PROMPT, seed=5, context_audio=context)
    assert state.codes.shape == ((15 if with_context else 0), gen.layout.codebooks)
    codes, traces = [], []
    with torch.no_grad():
        cross, mask, _ = gen.encode_text(PROMPT.prompt)
        for use_cache in (True, False):
            trace: list[torch.Tensor] = []
            generator = block_generator(5, 0, SAMPLE_PURPOSE, "cpu")
            codes.append(gen.generate_codes(state.codes, cross, mask, generator, use_cache=use_cache, trace=trace))
            traces.append(torch.stack(trace))
    assert traces[0].shape == (gen.layout.decode_steps + 1, gen.layout.codebooks, 16)  # B + K - 1 positions
    assert (traces[0] - traces[1]).abs().max() <= 1e-5
    assert torch.equal(codes[0], codes[1]) and codes[0].shape == (gen.block_frames, gen.layout.codebooks)


def test_guidance_changes_the_logits_it_samples_from():
    gens = {cfg: make(cfg=cfg, overrides={"musicgen.cfg_scale": 3.0}) for cfg in (False, True)}
    logits = {}
    with torch.no_grad():
        for cfg, g in gens.items():
            state = g.start(PROMPT, seed=0)
            cross, mask, _ = g.encode_text(PROMPT.prompt)
            trace: list[torch.Tensor] = []
            g.generate_codes(state.codes, cross, mask, block_generator(0, 0, SAMPLE_PURPOSE, "cpu"), trace=trace)
            logits[cfg] = trace[0]
    # the first position: conditional c (no CFG) vs u + 3 (c - u), with u the zero-text row
    assert not torch.allclose(logits[False], logits[True], atol=1e-6)


# ---------------------------------------------------------------- FLOPs, caches, counts
@pytest.mark.parametrize("cfg", [False, True])
def test_analytic_flops_equal_the_counter_per_phase(cfg):
    gen = make(cfg=cfg)
    state = gen.start(PROMPT, seed=0)
    for block, control in enumerate([PROMPT, PROMPT, OTHER]):  # block 2: a new prompt re-encodes
        recorder = FlopRecorder()
        with torch.inference_mode():  # as the runner's FLOPs pass
            result, state = gen.step(state, control, recorder)
        info = result.info
        encoded = block in (0, 2)
        assert info.analytic_flops == gen.analytic_flops(first_block=encoded)
        assert set(info.analytic_flops) == set(recorder.flops) == set(info.phase_calls)
        assert dict(recorder.calls) == info.phase_calls
        assert info.phase_calls[PHASE_DECODE_TOKENS] == gen.block_frames + gen.layout.codebooks - 2
        assert (PHASE_ENCODE in info.phase_calls) == encoded and info.extra["text_encoded"] == encoded
        for phase, flops in info.analytic_flops.items():
            assert flops == recorder.flops[phase], (phase, flops, recorder.flops[phase])  # equal exactly
    assert {PHASE_PREFILL, PHASE_DECODE} <= set(info.analytic_flops)


def test_kv_bytes_and_token_counts(gen):
    state = gen.start(PROMPT, seed=0)
    assert gen.kv_cache_bytes(state) == 0
    result, state = gen.step(state, PROMPT)
    dec, text = gen.model.config.decoder, gen.cfg.text_tokens
    assert gen.kv_cache_bytes(state) == dec.num_hidden_layers * 2 * 1 * text * dec.hidden_size * 4  # cross K/V kept
    slots = gen.context_frames + gen.block_frames + gen.layout.codebooks - 1
    assert result.info.transient_kv_bytes == dec.num_hidden_layers * 2 * slots * dec.hidden_size * 4
    assert result.info.cache_len == slots
    assert result.info.tokens_processed == (gen.context_frames + 1) + (gen.block_frames + 2) + text


def test_parameter_counts_tiny_and_small_on_meta(gen):
    assert gen.num_parameters() == sum(parameter_breakdown(gen.model).values())
    small = MusicGenGenerator(get_preset("cpu"), get_preset("cpu").settings, device="meta")
    parts = parameter_breakdown(small.model)
    layer = 4 * 1024 * 1024 + 4 * 1024 * 1024 + 2 * 1024 * 4096 + 3 * 2 * 1024  # self, cross, FFN, 3 LayerNorms
    lm = 4 * 2049 * 1024 + 24 * layer + 2 * 1024 + 4 * 1024 * 2048  # embeddings (+pad row), layers, final LN, heads
    assert parts["decoder"] == lm == 419_584_000
    t5_layer = 4 * 768 * 768 + 2 * 768 * 3072 + 2 * 768  # attention, ReLU FF, 2 RMS norms (no biases)
    assert parts["text_encoder"] == 32128 * 768 + 12 * t5_layer + 32 * 12 + 768 == 109_628_544  # T5-base's encoder
    assert parts["enc_to_dec_proj"] == 768 * 1024 + 1024
    assert parts["audio_codec"] == 56_884_674  # EnCodec 32 kHz, encoder + decoder (codebooks are buffers)
    with pytest.raises(ConfigError, match="meta"):
        small.start(PROMPT, seed=0)


# ---------------------------------------------------------------- seeds and weights
def test_weights_follow_init_seed_and_leave_the_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b, c = (build_random_model("tiny", seed) for seed in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    codebook = a.audio_encoder.quantizer.layers[0].codebook.embed
    assert codebook.std() > 0.5  # seeded Gaussian, not transformers' zeros


def test_streams_are_deterministic_per_seed(gen):
    first, _ = run(gen, seed=3, blocks=3)
    again, _ = run(make(), seed=3, blocks=3)  # a second generator built from the same config
    other, _ = run(gen, seed=4, blocks=3)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_output_codes_become_the_context(gen):
    state = gen.start(PROMPT, seed=0)
    _, s1 = gen.step(state, PROMPT)
    _, s2 = gen.step(s1, PROMPT)
    assert s1.codes.shape[0] == gen.block_frames and torch.equal(s2.codes[: gen.block_frames], s1.codes)
    _, full = run(gen, seed=0, blocks=6)
    assert full.codes.shape == (gen.context_frames, gen.layout.codebooks)  # capped at F frames


def test_text_tokens_are_hashed_offline_with_eos_and_padding():
    a = hashed_text_tokens("Bach chorale, organ!", tokens=8, vocab=128)
    assert a == hashed_text_tokens("bach chorale organ", tokens=8, vocab=128) and a.source == TEXT_HASHED
    assert a.length == 4 and a.ids[3] == T5_EOS_ID and a.ids[4:] == [T5_PAD_ID] * 4
    assert all(3 <= i < 128 for i in a.ids[:3]) and not a.truncated
    long = hashed_text_tokens(" ".join(f"w{i}" for i in range(20)), tokens=8, vocab=128)
    assert long.truncated and long.length == 8 and long.ids[-1] == T5_EOS_ID
    assert hashed_text_tokens("", tokens=4, vocab=128).ids == [T5_EOS_ID, 0, 0, 0]


def test_checkpoint_directory_round_trip(tmp_path, gen):
    folder = tmp_path / "musicgen-tiny"
    gen.model.save_pretrained(folder)
    loaded = make(overrides={"musicgen.checkpoint": str(folder)})
    assert loaded.text_source == TEXT_HASHED  # no tokenizer saved
    ours, _ = run(gen, seed=7, blocks=2)
    theirs, state = run(loaded, seed=7, blocks=2)
    assert np.array_equal(ours, theirs)
    result, _ = loaded.step(state, PROMPT)
    assert result.info.extra["weights"] == f"checkpoint {folder}"


def test_a_checkpoint_tokenizer_is_used_when_present(tmp_path, gen):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "with-tokenizer"
    gen.model.save_pretrained(folder)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "bach": 40, "chorale": 41, "organ": 42}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    loaded = make(overrides={"musicgen.checkpoint": str(folder)})
    assert loaded.text_source == TEXT_TOKENIZER
    tokens = loaded.text_tokens("bach chorale organ")
    assert tokens.ids[:4] == [40, 41, 42, T5_EOS_ID] and tokens.source == TEXT_TOKENIZER
    result, _ = loaded.step(loaded.start(PROMPT, seed=0), PROMPT)
    assert result.info.extra["text_source"] == TEXT_TOKENIZER


def test_missing_or_broken_checkpoints_are_config_errors(tmp_path, gen):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"musicgen.checkpoint '{missing}' is not a directory.*save_pretrained"):
        make(overrides={"musicgen.checkpoint": str(missing)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        make(overrides={"musicgen.checkpoint": str(empty)})
    broken = tmp_path / "broken"
    gen.model.save_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match=f"'{broken}' could not be loaded"):
        make(overrides={"musicgen.checkpoint": str(broken)})


def test_bad_fields_are_config_errors():
    with pytest.raises(ConfigError, match="musicgen.size"):
        apply_overrides(get_preset("tiny"), {"musicgen.size": "medium"})
    with pytest.raises(ConfigError, match="decode_context_frames"):
        apply_overrides(get_preset("tiny"), {"musicgen.decode_context_frames": -1})
    with pytest.raises(ValueError, match="context_audio must have shape"):
        make().start(PROMPT, seed=0, context_audio=np.zeros((2, 100), np.float32))


# ---------------------------------------------------------------- registry and CLI
def test_registered_by_name_only():
    assert "musicgen" in GENERATORS.names(include_extras=True)
    assert "musicgen" not in GENERATORS.names() and GENERATORS.by_name_only() == ["musicgen"]


def test_cli_smoke_run_on_the_tiny_preset(tmp_path):
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--workload", "smoke", "--generators", "musicgen", "--no-peak", "--progress", "off",
            "-q", "--no-drift", "--no-continuation", "--no-report", "--out", str(out)]
    assert main(argv) == 0
    status = read_json(out / "cells" / "musicgen__smoke" / "status.json")
    assert status["status"] == "ok" and status["info"]["spec"]["sample_rate"] == 8000
    blocks = read_table(out, "blocks")
    assert sorted(set(blocks.generator)) == ["musicgen", "noise"]  # the null generator always joins
    mine = blocks[blocks.generator == "musicgen"]
    assert len(mine) == 8 and (mine.latency_ms > 0).all() and (mine.audio_samples == 960).all()
    flops = read_table(out, "flops")
    mine = flops[flops.generator == "musicgen"]
    assert set(mine.phase) == {PHASE_ENCODE, PHASE_PREFILL, PHASE_DECODE_TOKENS, PHASE_DECODE}
    assert np.allclose(mine.ratio, 1.0, rtol=0, atol=1e-12)  # measured == analytic, every phase
    manifest = json.loads((out / "manifest.json").read_text())
    assert "musicgen" in json.dumps(manifest)
