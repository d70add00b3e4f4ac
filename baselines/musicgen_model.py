"""MusicGen's weights for the ``musicgen`` generator: random ones built from configs written here,
or a local ``save_pretrained`` directory; plus the offline prompt tokens.

Sizes (``musicgen.size``, used when ``musicgen.checkpoint`` is empty):

- ``small``: facebook/musicgen-small's architecture exactly: decoder 24 layers, width 1024, 16
  heads, FFN 4096, GELU, 4 codebooks of 2048 (+1 pad/BOS row) with the delay pattern, sinusoidal
  positions; text encoder T5-base (d_model 768, 12 layers, 12 heads, d_kv 64, d_ff 3072, ReLU FF,
  vocab 32128, 32 relative-position buckets); EnCodec 32 kHz mono (SEANet ratios 8,5,4,4 = hop
  640, 50 Hz; 64 filters, latent 128, 2 LSTM layers, non-causal convs with reflect padding,
  weight norm, no conv shortcut, 4 codebooks of 2048 at 2.2 kbps).
- ``tiny``: the same structure, a few narrow layers (tests and CI).

Random weights come from transformers' own initialisers under a forked, seeded global RNG (the
caller's RNG state is restored), except the EnCodec codebooks: transformers initialises them to
zero (real ones are loaded), which would decode every code to the same audio, so they are drawn
from a seeded Gaussian instead.

transformers is imported lazily (inside the functions that need it): importing the suite, listing
generators or building reports never pays for it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from bench.core.errors import ConfigError
from bench.core.hashing import stable_hash
from baselines.conditioning import prompt_words

log = logging.getLogger(__name__)

SIZES = ("small", "tiny")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
T5_PAD_ID, T5_EOS_ID = 0, 1  # T5's vocabulary: 0 = <pad>, 1 = </s>, 2 = <unk>
HASHED_FIRST_ID = 3  # hashed words land in [3, vocab): never a special token
TEXT_HASHED, TEXT_TOKENIZER = "hashed-words", "tokenizer"
INSTALL_HINT = "pip install 'live-music-bench[musicgen]' (transformers >= 5)"


def _transformers() -> Any:
    try:
        import transformers  # lazy: a heavy optional dependency, needed only by this generator
    except ImportError as exc:
        raise ConfigError(f"the musicgen generator needs transformers: {INSTALL_HINT}") from exc
    return transformers


class _DropTokenRangeWarning(logging.Filter):
    """MusicGen's pad/BOS id is ``vocab_size`` (its embeddings have ``vocab_size + 1`` rows), which
    transformers' generic config check reports as out of range for every MusicGen config, including
    facebook/musicgen-small's. Only that message is dropped, and only while a model is built."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Model config:") and "_token_id must be" in message)


@contextlib.contextmanager
def _quiet_token_range_warning() -> Iterator[None]:
    logger, drop = logging.getLogger("transformers"), _DropTokenRangeWarning()
    for handler in logger.handlers:
        handler.addFilter(drop)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
        for handler in logger.handlers:
            handler.removeFilter(drop)


def musicgen_config(size: str) -> Any:
    """The ``transformers.MusicgenConfig`` of ``size`` ("small": musicgen-small exactly; "tiny")."""
    tf = _transformers()
    if size == "small":
        text = tf.T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                           relative_attention_num_buckets=32, relative_attention_max_distance=128,
                           feed_forward_proj="relu", dropout_rate=0.1, layer_norm_epsilon=1e-6)
        audio = tf.EncodecConfig(
            sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], num_filters=64, hidden_size=128,
            codebook_size=2048, codebook_dim=128, target_bandwidths=[2.2], num_lstm_layers=2, num_residual_layers=1,
            kernel_size=7, last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2, compress=2,
            norm_type="weight_norm", use_causal_conv=False, pad_mode="reflect", use_conv_shortcut=False,
            normalize=False, chunk_length_s=None, overlap=None, trim_right_ratio=1.0,
        )
        decoder = tf.MusicgenDecoderConfig(
            vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=24, ffn_dim=4096, num_attention_heads=16,
            hidden_size=1024, num_codebooks=4, activation_function="gelu", dropout=0.1, attention_dropout=0.0,
            activation_dropout=0.0, scale_embedding=False, audio_channels=1, pad_token_id=2048, bos_token_id=2048,
        )
    elif size == "tiny":
        # d_model 24 != decoder width 32, so the text -> decoder projection exists, as in small
        text = tf.T5Config(vocab_size=128, d_model=24, d_kv=12, d_ff=48, num_layers=1, num_heads=2,
                           relative_attention_num_buckets=8, relative_attention_max_distance=32,
                           feed_forward_proj="relu")
        audio = tf.EncodecConfig(
            sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], num_filters=2, hidden_size=8,
            codebook_size=16, codebook_dim=8, target_bandwidths=[0.8], num_lstm_layers=1, norm_type="weight_norm",
            use_causal_conv=False, pad_mode="reflect", use_conv_shortcut=False, normalize=False,
        )
        decoder = tf.MusicgenDecoderConfig(
            vocab_size=16, max_position_embeddings=256, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
            hidden_size=32, num_codebooks=4, activation_function="gelu", audio_channels=1,
            pad_token_id=16, bos_token_id=16,
        )
    else:
        raise ConfigError(f"musicgen.size must be one of {SIZES}, got {size!r}")
    with _quiet_token_range_warning():
        return tf.MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def build_random_model(size: str, seed: int, device: str | torch.device = "cpu") -> Any:
    """A ``MusicgenForConditionalGeneration`` of ``size`` with seeded random weights, in eval mode,
    float32 on ``device`` ("meta": shapes only). The global RNG is left as it was."""
    tf = _transformers()
    config = musicgen_config(size)
    if torch.device(device).type == "meta":
        with torch.device("meta"), _quiet_token_range_warning():
            return tf.MusicgenForConditionalGeneration(config).eval()
    with torch.random.fork_rng(devices=[]), _quiet_token_range_warning():
        torch.manual_seed(int(seed))
        model = tf.MusicgenForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(stable_hash("musicgen-codebooks", int(seed)))
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.copy_(torch.randn(codebook.embed.shape, generator=generator))
            codebook.embed_avg.copy_(codebook.embed)
    return model.to(device).eval()


@dataclass
class LoadedCheckpoint:
    model: Any  # MusicgenForConditionalGeneration, eval mode, float32, on the CPU
    tokenizer: Any | None  # the directory's T5 tokenizer, when it has one


def load_checkpoint(path: str) -> LoadedCheckpoint:
    """Load a ``save_pretrained`` directory (never a download: ``local_files_only``). Missing,
    unreadable or incomplete directories raise ConfigError naming ``musicgen.checkpoint``."""
    tf = _transformers()
    folder = Path(path).expanduser()
    fix = ("make one on a machine with internet: MusicgenForConditionalGeneration.from_pretrained("
           "'facebook/musicgen-small').save_pretrained(DIR) and AutoProcessor.from_pretrained("
           "'facebook/musicgen-small').save_pretrained(DIR); or set musicgen.checkpoint= (empty) for random "
           "weights of musicgen.size")
    if not folder.is_dir():
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} is not a directory; {fix}")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} has no config.json (not a save_pretrained "
                          f"directory); {fix}")
    try:
        with _quiet_token_range_warning():
            model, info = tf.MusicgenForConditionalGeneration.from_pretrained(
                str(folder), local_files_only=True, dtype=torch.float32, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; all mean "cannot load"
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} could not be loaded ({type(exc).__name__}: "
                          f"{exc}); {fix}") from exc
    missing = list(info.get("missing_keys") or []) + [str(k) for k in info.get("mismatched_keys") or []]
    if missing:
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} lacks or mismatches {len(missing)} weight(s) "
                          f"(first: {missing[:3]}); loading it would leave them random; {fix}")
    if model.config.decoder.audio_channels != 1:
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} is a stereo MusicGen; only mono checkpoints "
                          "(musicgen-small/medium/large) are supported")
    return LoadedCheckpoint(model=model.eval(), tokenizer=_load_tokenizer(tf, folder))


def _load_tokenizer(tf: Any, folder: Path) -> Any | None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        return tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - same boundary as the model
        raise ConfigError(f"musicgen.checkpoint {str(folder)!r} has tokenizer files that do not load "
                          f"({type(exc).__name__}: {exc}); save the processor again, or remove them to use "
                          "hashed prompt words") from exc


@dataclass(frozen=True)
class TextTokens:
    """A prompt as ``tokens`` T5 ids, right-padded; ``length`` real ones (EOS included)."""

    ids: list[int]  # (tokens,)
    length: int
    truncated: bool
    source: str  # TEXT_HASHED or TEXT_TOKENIZER


def hashed_text_tokens(prompt: str, tokens: int, vocab: int) -> TextTokens:
    """Offline stand-in for the T5 tokenizer: each lower-cased word (``conditioning.prompt_words``)
    -> a stable hash in ``[3, vocab)``, then ``</s>``, right-padded with ``<pad>`` to ``tokens``."""
    words = prompt_words(prompt)
    ids = [HASHED_FIRST_ID + stable_hash("musicgen-word", w) % (vocab - HASHED_FIRST_ID) for w in words]
    return _fit(ids + [T5_EOS_ID], tokens, TEXT_HASHED)


def tokenizer_text_tokens(tokenizer: Any, prompt: str, tokens: int) -> TextTokens:
    """``prompt`` through a checkpoint's T5 tokenizer (EOS appended by it), right-padded to ``tokens``."""
    ids = list(tokenizer(prompt)["input_ids"])
    if not ids or ids[-1] != T5_EOS_ID:
        ids.append(T5_EOS_ID)
    return _fit(ids, tokens, TEXT_TOKENIZER)


def _fit(ids: list[int], tokens: int, source: str) -> TextTokens:
    truncated = len(ids) > tokens
    if truncated:
        ids = ids[: tokens - 1] + [T5_EOS_ID]
    return TextTokens(ids=ids + [T5_PAD_ID] * (tokens - len(ids)), length=len(ids), truncated=truncated, source=source)


def parameter_breakdown(model: Any) -> dict[str, int]:
    """Parameters per part: text encoder, text->decoder projection, decoder (LM + heads), EnCodec."""
    def count(module: Any) -> int:
        return int(sum(p.numel() for p in module.parameters())) if module is not None else 0

    return {
        "text_encoder": count(model.text_encoder),
        "enc_to_dec_proj": count(getattr(model, "enc_to_dec_proj", None)),
        "decoder": count(model.decoder),
        "audio_codec": count(model.audio_encoder),
    }
