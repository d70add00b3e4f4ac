"""dit.text_encoder: prompt tokens from a local T5 directory (never a download), else the featuriser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.core.errors import ConfigError
from bench.core.presets import apply_overrides, get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):  # noqa: ANN201
    """A tiny random T5 encoder and a word-level tokenizer, saved the way transformers saves them."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "warm": 3, "organ": 4, "chords": 5, "bright": 6, "bells": 7}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", unk_token="<unk>",
                            eos_token="</s>").save_pretrained(folder)
    torch.manual_seed(0)
    T5EncoderModel(T5Config(vocab_size=8, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(folder)
    return folder


def _generator(regime: str, **overrides):  # noqa: ANN003, ANN202
    preset = apply_overrides(get_preset("tiny"), {f"dit.{k}": v for k, v in overrides.items()})
    return GENERATORS.create(regime, preset, dataclasses.replace(preset.settings, cfg=True))


def test_prompt_rows_are_the_t5_states_padding_zeroed_and_pooled(t5_dir):
    from transformers import T5EncoderModel

    gen = _generator("lmdm-encdec", text_encoder=str(t5_dir))  # tiny: 4 tokens = 3 T5 rows + pooled
    cond = gen._conditioning("warm organ")  # (2, 4, 16): [prompt, empty prompt]
    model = T5EncoderModel.from_pretrained(str(t5_dir), local_files_only=True).eval()
    with torch.no_grad():
        states = model(input_ids=torch.tensor([[3, 4, 0]]), attention_mask=torch.tensor([[1, 1, 0]])).last_hidden_state[0]
    assert torch.allclose(cond[0, :2], states[:2], atol=1e-6)
    assert torch.all(cond[0, 2] == 0)  # the padding row
    assert torch.allclose(cond[0, 3], states[:2].mean(0), atol=1e-6)  # pooled over real tokens
    assert torch.all(cond[1] == 0)  # the CFG negative: a zero null embedding
    other = gen._conditioning("bright bells")
    assert not torch.allclose(other[0, :2], cond[0, :2])


def test_a_stream_runs_on_t5_conditioning_and_differs_from_the_featuriser(t5_dir):
    audio = {}
    for name, overrides in (("t5", {"text_encoder": str(t5_dir)}), ("hashing", {})):
        gen = _generator("lmdm-causal", **overrides)
        state = gen.start(Control("warm organ chords"), seed=0)
        result, _ = gen.step(state, Control("warm organ chords"))
        audio[name] = result.audio
        assert np.isfinite(result.audio).all()
    assert np.abs(audio["t5"] - audio["hashing"]).max() > 1e-4


def test_bad_text_encoder_directories_are_config_errors(t5_dir, tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        _generator("outpaint", text_encoder=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="cannot load a T5"):
        _generator("outpaint", text_encoder=str(tmp_path))  # exists, holds nothing
    with pytest.raises(ConfigError, match="16-d states but the DiT reads 32-d"):
        _generator("outpaint", text_encoder=str(t5_dir), cond_dim=32)


def test_run_identity_records_the_text_encoder_and_sat_config(t5_dir):
    from bench.app.runner import weights_identity

    preset = apply_overrides(get_preset("sao-small"), ["dit.arch=sat", "dit.config=builtin:sao-small",
                                                       f"dit.text_encoder={t5_dir}"])
    identity = weights_identity("lmdm-causal", preset)
    assert identity["backbone"]["arch"] == "sat" and len(identity["backbone"]["sha256"]) == 64
    assert identity["text_encoder"]["dir"] == str(t5_dir)
    files = {f["path"].rsplit("/", 1)[-1]: f["sha256"] for f in identity["text_encoder"]["files"]}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(files)  # weights, config, vocabulary
    assert all(isinstance(h, str) and len(h) == 64 for h in files.values())
    assert weights_identity("lmdm-causal", get_preset("tiny")) is None  # featuriser, seeded: nothing added
