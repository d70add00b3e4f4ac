"""Model presets: validated, frozen dataclasses, overridable field by field.

A preset fixes the architectures (a DiT for the diffusion regimes, an LMM for the discrete-AR
regime), their codecs, and a native stream (context, block, steps) used by the paper-scale tables.
The workload (``bench.core.workloads``) decides the stream actually run; regimes convert its seconds to
their own frame rates.

Presets:
- ``tiny``: tests, milliseconds per block.
- ``cpu``: the default run, sized so regime differences show on 2 CPU cores within minutes.
- ``sao-small``: Stable Audio Open Small's DiT (width 1024, 16 layers, 8 heads, 64 latent channels
  at 21.53 Hz, C=192, B=48, 8 steps), paired with an MRT-Base-sized LMM at the same 44.1 kHz.
- ``mrt-base`` / ``mrt-large``: Magenta RealTime's LMM sizes (48 kHz, 25 Hz, 16 RVQ levels of 1024,
  4 in the encoder context, 6 style tokens, 10 s context, 2 s chunks), paired with a SAO-small DiT
  at 48 kHz so every regime still shares one sample rate.

Overrides use dotted paths: ``apply_overrides(preset, ["dit.width=64", "settings.steps=4"])``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from bench.core.errors import ConfigError, did_you_mean
from bench.core.settings import StreamSettings
from bench.core.spectral_layout import band_count, bin_hz


CODEC_KINDS = ("mdct", "spectral")


@dataclass(frozen=True)
class CodecConfig:
    """The weight-free codec of a model (``baselines.codecs.make_codec``).

    ``kind="mdct"``: an MDCT with ``hop`` samples per frame keeping the lowest ``latent_bins``
    bins of each channel (latent dim = channels * latent_bins). ``kind="spectral"``: log-magnitude
    bands of 0 .. ``max_hz`` (single DFT bins below ``linear_below_hz``, mel-like above), decoded
    by a phase vocoder (docs/codec.md); its bands per channel follow from the other fields and
    ``latent_bins`` is not used (so ``codec.kind=spectral`` alone switches an MDCT preset).
    """

    sample_rate: int
    channels: int
    hop: int  # audio samples per latent frame
    latent_bins: int = 0  # mdct: bins kept per channel (>= 1); spectral: not used (bands are derived)
    kind: str = "mdct"  # "mdct" | "spectral"
    max_hz: float = 0.0  # spectral: highest frequency kept (<= sample_rate / 2); 0 = Nyquist
    linear_below_hz: float = 1000.0  # spectral: bands are single DFT bins below this

    def __post_init__(self) -> None:
        _positive(self, "sample_rate", "channels", "hop")
        if self.kind not in CODEC_KINDS:
            raise ConfigError(f"codec.kind must be one of {', '.join(CODEC_KINDS)}, got {self.kind!r}"
                              f"{did_you_mean(str(self.kind), CODEC_KINDS)}")
        if self.kind == "mdct":
            _positive(self, "latent_bins")
            if self.latent_bins > self.hop:
                raise ConfigError(f"codec.latent_bins ({self.latent_bins}) must be <= codec.hop ({self.hop})")
            return
        low = bin_hz(self.sample_rate, self.hop)
        if not (self.max_hz == 0 or low <= self.max_hz <= self.sample_rate / 2):
            raise ConfigError(f"codec.max_hz must lie in [{low:g}, {self.sample_rate / 2:g}] Hz (one DFT bin .. "
                              f"Nyquist of sample_rate {self.sample_rate}), got {self.max_hz!r}")
        if not low <= self.linear_below_hz <= self.top_hz:
            raise ConfigError(f"codec.linear_below_hz must lie in [{low:g}, max_hz={self.top_hz:g}] Hz, "
                              f"got {self.linear_below_hz!r}")

    @property
    def top_hz(self) -> float:
        """spectral: the highest frequency kept (``max_hz``, or Nyquist when it is 0)."""
        return float(self.max_hz) if self.max_hz else self.sample_rate / 2

    @property
    def bands(self) -> int:
        """Latent values per channel: the MDCT bins kept, or the spectral codec's band count."""
        if self.kind == "mdct":
            return self.latent_bins
        return band_count(self.sample_rate, self.hop, self.top_hz, self.linear_below_hz)

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop

    @property
    def latent_dim(self) -> int:
        return self.channels * self.bands

    def describe(self) -> str:
        """One line for reports: what the codec keeps."""
        if self.kind == "mdct":
            cutoff_hz = self.latent_bins / self.hop * self.sample_rate / 2
            return f"MDCT, {self.latent_bins} of {self.hop} bins (0-{cutoff_hz:.0f} Hz)"
        return (f"log-magnitude bands, {self.bands} per channel (0-{self.top_hz:.0f} Hz), "
                f"phase-vocoder decode")


@dataclass(frozen=True)
class DiTConfig:
    """A Stable-Audio-Open-Small-shaped diffusion transformer."""

    codec: CodecConfig
    width: int
    depth: int
    heads: int
    mlp_mult: int = 4  # gated MLP hidden = mlp_mult * width
    cond_dim: int = 768  # width of the text-conditioning tokens (T5-base: 768)
    cond_tokens: int = 65  # conditioning tokens cross-attended to (64 text + 1 seconds_total)
    rope_mode: str = "fixed"  # block-causal cache: "fixed" (re-rotate keys) or "offset" (growing)
    causal_window: int = 0  # W chunks of the block-causal mask; 0 = derive from context / block
    cfg_scale: float = 3.0  # guidance scale when the workload turns CFG on
    weights: str = ""  # "" = seeded init; "builtin:<preset>", a folder or a file (baselines/weights.py)
    init_seed: int = 0
    # "native": our DiT (baselines/dit.py). "sat": stable-audio-tools' DiffusionTransformer as
    # described by a model config JSON (``config``), so real checkpoints load (baselines/sat_dit.py);
    # with arch=sat the shape fields above (width, depth, heads, mlp_mult, cond_dim) are ignored
    # and taken from the JSON.
    arch: str = "native"
    config: str = ""  # arch=sat: a stable-audio-tools model_config.json, or "builtin:sao-small"
    # a local T5 directory (transformers save_pretrained: encoder + tokenizer) for the prompt tokens;
    # "" = the offline hashing featuriser (baselines/conditioning.py). Never downloaded.
    text_encoder: str = ""

    def __post_init__(self) -> None:
        _positive(self, "width", "depth", "heads", "mlp_mult", "cond_dim", "cond_tokens")
        if self.arch not in ("native", "sat"):
            raise ConfigError(f"dit.arch must be 'native' or 'sat', got {self.arch!r}")
        # arch=sat without dit.config is refused when the backbone is built (overrides apply one by one)
        if self.width % self.heads:
            raise ConfigError(f"dit.width ({self.width}) must be divisible by dit.heads ({self.heads})")
        if (self.width // self.heads) % 2:
            raise ConfigError(f"dit head dim ({self.width // self.heads}) must be even for RoPE")
        if self.rope_mode not in ("fixed", "offset"):
            raise ConfigError(f"dit.rope_mode must be 'fixed' or 'offset', got {self.rope_mode!r}")
        if self.causal_window < 0:
            raise ConfigError(f"dit.causal_window must be >= 0 (0 = context/block), got {self.causal_window}")


@dataclass(frozen=True)
class LMMConfig:
    """A Magenta-RealTime-shaped discrete AR model: encoder + temporal decoder + depth decoder."""

    codec: CodecConfig
    width: int
    heads: int
    mlp_hidden: int  # gated MLP hidden size
    encoder_layers: int
    temporal_layers: int
    depth_layers: int
    codebook_size: int = 1024
    rvq_levels: int = 16  # levels generated
    encoder_levels: int = 4  # levels of the context seen by the encoder
    style_tokens: int = 6  # style tokens prepended to the encoder input
    style_vocab: int = 1024
    cfg_scale: float = 4.0
    weights: str = ""
    init_seed: int = 0
    # level heads share the token embedding's rows of their level (logits = y E_l^T), as T5 ties
    # its output layer: repeating the previous frame's code is then the easy prediction it is
    tie_heads: bool = False

    def __post_init__(self) -> None:
        _positive(
            self, "width", "heads", "mlp_hidden", "encoder_layers", "temporal_layers", "depth_layers",
            "codebook_size", "rvq_levels", "encoder_levels", "style_vocab",
        )
        if self.style_tokens < 0:
            raise ConfigError(f"lmm.style_tokens must be >= 0, got {self.style_tokens}")
        if self.width % self.heads:
            raise ConfigError(f"lmm.width ({self.width}) must be divisible by lmm.heads ({self.heads})")
        if self.encoder_levels > self.rvq_levels:
            raise ConfigError(
                f"lmm.encoder_levels ({self.encoder_levels}) must be <= lmm.rvq_levels ({self.rvq_levels})"
            )


@dataclass(frozen=True)
class MusicGenConfig:
    """MusicGen (transformers' ``MusicgenForConditionalGeneration``) as a discrete-AR baseline."""

    # a local directory saved by ``save_pretrained`` (weights, config, T5 tokenizer); "" = random
    # weights of the architecture named by ``size`` (timing only: never a download)
    checkpoint: str = ""
    size: str = "small"  # random-weight architecture: "small" (musicgen-small exact) or "tiny"
    top_k: int = 250
    temperature: float = 1.0
    cfg_scale: float = 3.0  # guidance scale when the workload turns CFG on
    init_seed: int = 0
    # prompts become this many T5 tokens (right-padded and masked; longer ones truncated), so every
    # block costs the same whatever the prompt
    text_tokens: int = 32
    # codec frames before the block decoded with it (EnCodec 32k's convolutions are not causal), then dropped
    decode_context_frames: int = 5

    def __post_init__(self) -> None:
        _positive(self, "top_k", "text_tokens")
        if int(self.decode_context_frames) != self.decode_context_frames or self.decode_context_frames < 0:
            raise ConfigError(f"musicgen.decode_context_frames must be an integer >= 0, got {self.decode_context_frames!r}")
        if self.size not in ("small", "tiny"):
            raise ConfigError(f"musicgen.size must be 'small' or 'tiny', got {self.size!r}")
        if not self.temperature > 0:
            raise ConfigError(f"musicgen.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class Preset:
    name: str
    dit: DiTConfig
    lmm: LMMConfig
    settings: StreamSettings  # the preset's native stream
    description: str = ""
    musicgen: MusicGenConfig = field(default_factory=MusicGenConfig)

    def __post_init__(self) -> None:
        if self.dit.codec.sample_rate != self.lmm.codec.sample_rate:
            raise ConfigError(
                "dit.codec.sample_rate and lmm.codec.sample_rate must be equal (every regime emits "
                f"audio at one shared rate); got {self.dit.codec.sample_rate} and {self.lmm.codec.sample_rate}"
            )
        if self.dit.codec.channels != self.lmm.codec.channels:
            raise ConfigError(
                f"dit.codec.channels ({self.dit.codec.channels}) and lmm.codec.channels "
                f"({self.lmm.codec.channels}) must be equal"
            )

    @property
    def sample_rate(self) -> int:
        return self.dit.codec.sample_rate


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if int(value) != value or value < 1:
            raise ConfigError(f"{type(obj).__name__}.{name} must be an integer >= 1, got {value!r}")


def _sao_small_dit(sample_rate: int, hop: int) -> DiTConfig:
    return DiTConfig(
        codec=CodecConfig(sample_rate=sample_rate, channels=2, hop=hop, latent_bins=32),
        width=1024, depth=16, heads=8, mlp_mult=4, cond_dim=768, cond_tokens=65,
    )


def _mrt_lmm(sample_rate: int, hop: int, large: bool) -> LMMConfig:
    return LMMConfig(
        codec=CodecConfig(sample_rate=sample_rate, channels=2, hop=hop, latent_bins=32),
        width=1024 if large else 768,
        heads=16 if large else 12,
        mlp_hidden=2816 if large else 2048,
        encoder_layers=24 if large else 12,
        temporal_layers=20,
        depth_layers=4,
        codebook_size=1024, rvq_levels=16, encoder_levels=4, style_tokens=6, style_vocab=1024,
    )


def _build_presets() -> dict[str, Preset]:
    tiny = Preset(
        name="tiny",
        dit=DiTConfig(
            codec=CodecConfig(sample_rate=8000, channels=1, hop=250, latent_bins=8),
            width=32, depth=2, heads=2, mlp_mult=2, cond_dim=16, cond_tokens=4,
        ),
        lmm=LMMConfig(
            codec=CodecConfig(sample_rate=8000, channels=1, hop=320, latent_bins=8),
            width=32, heads=2, mlp_hidden=64, encoder_layers=1, temporal_layers=2, depth_layers=1,
            codebook_size=16, rvq_levels=4, encoder_levels=2, style_tokens=2, style_vocab=32,
        ),
        settings=StreamSettings(context_s=0.5, block_s=0.125, steps=3),
        description="tests: milliseconds per block",
        musicgen=MusicGenConfig(size="tiny"),
    )
    # The cpu preset is the architecture of the committed trained checkpoints (baselines/training):
    # float16 files under 20 MB that train on 2 CPU cores. Both codecs are the log-magnitude band
    # codec of 0-8 kHz (docs/codec.md): 194 bands at the DiT's 32 Hz, 249 at the LMM's 25 Hz.
    cpu = Preset(
        name="cpu",
        dit=DiTConfig(
            codec=CodecConfig(sample_rate=16000, channels=1, hop=500, kind="spectral", max_hz=8000.0),
            width=192, depth=4, heads=4, mlp_mult=2, cond_dim=64, cond_tokens=8, weights="builtin:cpu",
        ),
        lmm=LMMConfig(
            codec=CodecConfig(sample_rate=16000, channels=1, hop=640, kind="spectral", max_hz=8000.0),
            width=128, heads=4, mlp_hidden=320, encoder_layers=2, temporal_layers=3, depth_layers=2,
            codebook_size=1024, rvq_levels=2, encoder_levels=2, style_tokens=6, style_vocab=256,
            tie_heads=True, weights="builtin:cpu",
        ),
        settings=StreamSettings(context_s=4.0, block_s=1.0, steps=8),
        description="default run on 2 CPU cores",
    )
    sao_small = Preset(
        name="sao-small",
        dit=_sao_small_dit(44100, 2048),  # 21.53 Hz, 64 latent channels
        lmm=_mrt_lmm(44100, 1764, large=False),  # 25 Hz at the shared 44.1 kHz
        # C = 192 latents (8.92 s), B = 48 latents (2.23 s), 8 ping-pong steps (release configs)
        settings=StreamSettings(context_s=192 * 2048 / 44100, block_s=48 * 2048 / 44100, steps=8),
        description="Stable Audio Open Small DiT (341M published), release stream C=192, B=48, T=8",
    )
    mrt_base = Preset(
        name="mrt-base",
        dit=_sao_small_dit(48000, 2229),  # 21.53 Hz at 48 kHz
        lmm=_mrt_lmm(48000, 1920, large=False),  # 25 Hz
        settings=StreamSettings(context_s=10.0, block_s=2.0, steps=8),
        description="Magenta RealTime Base-sized LMM: 10 s context, 2 s chunks",
    )
    mrt_large = dataclasses.replace(
        mrt_base,
        name="mrt-large",
        lmm=_mrt_lmm(48000, 1920, large=True),
        description="Magenta RealTime Large-sized LMM (~800M published): 10 s context, 2 s chunks",
    )
    return {p.name: p for p in (tiny, cpu, sao_small, mrt_base, mrt_large)}


PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ConfigError with suggestions otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)} (known presets: {', '.join(PRESETS)})")
    return PRESETS[name]


def apply_overrides(obj: Any, overrides: Iterable[str] | dict[str, Any]) -> Any:
    """A copy of dataclass ``obj`` with dotted-path fields replaced (``"dit.width=64"``).

    Values given as strings are coerced to the field's current type. Every nested dataclass is
    rebuilt, so its ``__post_init__`` validation runs again.
    """
    items = overrides.items() if isinstance(overrides, dict) else (_split(o) for o in overrides)
    for path, value in items:
        obj = _replace_path(obj, path.split("."), value, path)
    return obj


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (for example dit.width=64)")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def _replace_path(obj: Any, parts: list[str], value: Any, full: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    head = parts[0]
    if head not in names:
        raise ConfigError(
            f"unknown field {full!r}: {head!r} is not a field of {type(obj).__name__}{did_you_mean(head, names)} "
            f"(allowed: {', '.join(names)})"
        )
    current = getattr(obj, head)
    if len(parts) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"field {full!r}: {head!r} is a value, not a group of fields")
        new = _replace_path(current, parts[1:], value, full)
    else:
        if dataclasses.is_dataclass(current):
            raise ConfigError(f"field {full!r} is a group; set one of its fields ({full}.<name>=...)")
        new = coerce_value(value, current, full)
    return dataclasses.replace(obj, **{head: new})


def coerce_value(value: Any, current: Any, full: str) -> Any:
    """``value`` given as text (an override) converted to the type of the field's ``current`` value;
    a ConfigError naming field ``full`` when it does not parse. Non-text values pass unchanged."""
    if not isinstance(value, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        raise ConfigError(f"field {full!r} expects a {type(current).__name__}, got {value!r}") from None
    return value


def preset_fields() -> list[str]:
    """Every overridable dotted field path (for --help and error messages)."""
    out: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, prefix + f.name + ".")
            else:
                out.append(prefix + f.name)

    walk(PRESETS["tiny"], "")
    return out


__all__ = [
    "CodecConfig", "DiTConfig", "LMMConfig", "MusicGenConfig", "Preset", "PRESETS", "get_preset", "apply_overrides",
    "preset_fields",
]
