import pytest

from bench.core.errors import ConfigError
from bench.core.settings import StreamSettings
from bench.core.presets import PRESETS, apply_overrides, get_preset, preset_fields


def test_every_preset_validates_and_shares_one_sample_rate():
    for preset in PRESETS.values():
        assert preset.dit.codec.sample_rate == preset.lmm.codec.sample_rate
        c, b = preset.settings.frames(preset.dit.codec.frame_rate_hz)
        assert c % b == 0 and c // b == preset.settings.context_blocks


def test_sao_small_native_stream_is_the_release_config():
    p = get_preset("sao-small")
    assert (p.dit.width, p.dit.depth, p.dit.heads, p.dit.codec.latent_dim) == (1024, 16, 8, 64)
    assert abs(p.dit.codec.frame_rate_hz - 21.533) < 1e-3
    assert p.settings.frames(p.dit.codec.frame_rate_hz) == (192, 48)


def test_mrt_sizes():
    base, large = get_preset("mrt-base").lmm, get_preset("mrt-large").lmm
    assert (base.width, base.heads, base.mlp_hidden, base.encoder_layers) == (768, 12, 2048, 12)
    assert (large.width, large.heads, large.mlp_hidden, large.encoder_layers) == (1024, 16, 2816, 24)
    assert base.codec.frame_rate_hz == 25.0 and base.rvq_levels == 16 and base.encoder_levels == 4


def test_overrides_replace_and_revalidate():
    p = apply_overrides(get_preset("tiny"), ["dit.width=64", "settings.steps=5", "dit.rope_mode=offset"])
    assert (p.dit.width, p.settings.steps, p.dit.rope_mode) == (64, 5, "offset")
    assert get_preset("tiny").dit.width == 32  # the original is untouched


@pytest.mark.parametrize(
    "override, words",
    [
        ("dit.widht=3", ["widht", "did you mean 'width'"]),
        ("dit.heads=3", ["dit.width", "divisible"]),
        ("settings.steps=0", ["steps", ">= 1"]),
        ("settings.context_s=0.3", ["context_s", "whole number"]),
        ("dit.rope_mode=none", ["rope_mode", "'fixed' or 'offset'"]),
        ("lmm.encoder_levels=9", ["encoder_levels", "rvq_levels"]),
        ("dit.codec.sample_rate=16000", ["sample_rate", "shared"]),
        ("dit.width=abc", ["dit.width", "int"]),
    ],
)
def test_impossible_overrides_name_the_field(override, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(get_preset("tiny"), [override])
    for word in words:
        assert word in str(err.value)


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        get_preset("tinny")


def test_stream_settings_frames():
    s = StreamSettings(context_s=4.0, block_s=1.0)
    assert s.frames(32.0) == (128, 32)
    assert s.frames(25.0) == (100, 25)
    with pytest.raises(ConfigError, match="top_k"):
        StreamSettings(context_s=1, block_s=1, top_k=-1)


def test_preset_fields_lists_nested_paths():
    fields = preset_fields()
    assert "dit.codec.hop" in fields and "settings.steps" in fields and "lmm.rvq_levels" in fields


def test_spectral_codec_config_derives_its_bands_without_torch():
    cpu = get_preset("cpu")
    assert (cpu.dit.codec.kind, cpu.dit.codec.latent_dim, cpu.lmm.codec.latent_dim) == ("spectral", 194, 249)
    assert cpu.dit.codec.top_hz == 8000.0 and "0-8000 Hz" in cpu.dit.codec.describe()
    # switching an MDCT preset needs only the kind; max_hz 0 means Nyquist
    tiny = apply_overrides(get_preset("tiny"), ["dit.codec.kind=spectral"])
    assert tiny.dit.codec.top_hz == 4000.0 and tiny.dit.codec.latent_dim == 151
    narrower = apply_overrides(tiny, ["dit.codec.max_hz=2000", "dit.codec.linear_below_hz=500"])
    assert narrower.dit.codec.latent_dim < tiny.dit.codec.latent_dim


@pytest.mark.parametrize(
    "override, words",
    [
        ("dit.codec.kind=mel", ["codec.kind", "mdct, spectral"]),
        ("dit.codec.max_hz=5000", ["max_hz", "Nyquist", "8000"]),
        ("dit.codec.linear_below_hz=9000", ["linear_below_hz", "max_hz"]),
    ],
)
def test_impossible_spectral_codec_settings_name_the_field(override, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(get_preset("tiny"), ["dit.codec.kind=spectral", override])
    for word in words:
        assert word in str(err.value)
