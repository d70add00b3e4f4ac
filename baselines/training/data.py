"""Training data: codec latents (DiT) or RVQ tokens (LMM) of the built data set, plus prompts.

A bank holds one array per clip, all clips the same length, in memory (the full build is ~1,600
clips of 8 s: 105 MB of DiT latents). Windows are drawn with a ``torch.Generator`` given by the
caller (one per training step, so a resumed run draws the same windows).

Prompt choice per example: the clip's full prompt (45 %), its short prompt (45 %), or the empty
prompt (10 %, the unconditional branch classifier-free guidance needs). Silence augmentation:
with probability ``p_silence`` the first ``k`` blocks of the context (k uniform in 1..W) are
replaced by silence, as at the start of a stream (the harness starts streams from silence).

The last frame of a context encoded from real audio is a HALF frame: its analysis window reaches
one hop past the context, where the codec sees zeros (``codec.encode`` pads the unknown future).
After a generated block it is a whole frame. So the LMM's token windows end their context on the
half frame (:func:`encode_half_frames`) with probability ``P_HALF_LAST_FRAME`` and on the whole
frame otherwise; without it the model met an unseen frame at exactly the step that starts every
continuation of real audio (measured: first generated tokens unrelated to the true next ones).
The DiT banks still train on whole frames only (their checkpoints predate this; docs/codec.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from baselines.codec import ResidualVQ
from baselines.codecs import make_codec
from baselines.conditioning import prompt_tokens, style_ids
from baselines.data.build import Dataset
from bench.core.presets import CodecConfig, DiTConfig, LMMConfig

P_FULL = 0.45
P_SHORT = 0.45  # the rest (0.10) is the empty prompt
P_HALF_LAST_FRAME = 0.5  # LMM windows whose context ends on a half frame, as after real audio


def encode_clips(dataset: Dataset, clips: Sequence[dict[str, Any]], codec_config: CodecConfig) -> torch.Tensor:
    """(n_clips, frames, latent_dim) float32 codec latents of ``clips`` (equal lengths)."""
    if codec_config.sample_rate != dataset.sample_rate or codec_config.channels != 1:
        raise ValueError(
            f"the data set is {dataset.sample_rate} Hz mono but the codec expects {codec_config.sample_rate} Hz "
            f"with {codec_config.channels} channel(s): build the data set at the preset's rate"
        )
    codec = make_codec(codec_config)
    out = []
    for clip in clips:
        audio = torch.from_numpy(dataset.read(clip))  # (samples,)
        usable = audio.shape[0] // codec.hop * codec.hop
        out.append(codec.encode(audio[None, :usable]))  # (frames, D)
    lengths = {x.shape[0] for x in out}
    if len(lengths) != 1:
        raise ValueError(f"clips have different lengths in frames: {sorted(lengths)}")
    return torch.stack(out)


def encode_half_frames(dataset: Dataset, clips: Sequence[dict[str, Any]], codec_config: CodecConfig) -> torch.Tensor:
    """(n_clips, frames, latent_dim): latent frame ``i`` of each clip as a stream's context ends on
    it, i.e. with the second half of its window (samples after ``(i + 1) * hop``) unknown and zero,
    as ``codec.encode`` sees the last frame of a context. One encode per clip: the audio is rebuilt
    as ``[segment_0 | 0 | segment_1 | 0 | ...]`` (one hop each), whose even frames are exactly those."""
    codec = make_codec(codec_config)
    out = []
    for clip in clips:
        audio = torch.from_numpy(dataset.read(clip))  # (samples,)
        frames = audio.shape[0] // codec.hop
        segments = audio[: frames * codec.hop].reshape(frames, codec.hop)  # (F, N)
        spaced = torch.cat([segments, torch.zeros_like(segments)], dim=1).reshape(1, -1)  # (1, 2 F N)
        out.append(codec.encode(spaced)[0::2])  # (F, D)
    return torch.stack(out)


def _prompt_choice(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n,) 0 = full prompt, 1 = short prompt, 2 = empty prompt."""
    u = torch.rand(n, generator=gen)
    return (u >= P_FULL).long() + (u >= P_FULL + P_SHORT).long()


@dataclass
class DiffusionBatch:
    x0: torch.Tensor  # (N, S, D) clean latents of the window [context | target]
    cond: torch.Tensor  # (N, Nc, cond_dim) prompt tokens


class LatentBank:
    """DiT codec latents of every clip and the prompts' conditioning tokens."""

    def __init__(self, latents: torch.Tensor, prompts: Sequence[tuple[str, str]], config: DiTConfig) -> None:
        if latents.ndim != 3 or latents.shape[0] != len(prompts):
            raise ValueError(f"latents (clips, frames, D) {tuple(latents.shape)} and {len(prompts)} prompts disagree")
        self.latents = latents.float()
        self.frames = int(latents.shape[1])
        nc, dim = config.cond_tokens, config.cond_dim
        table = torch.zeros(len(prompts), 3, nc, dim)  # [full, short, empty]
        for i, (full, short) in enumerate(prompts):
            table[i, 0] = prompt_tokens(full, nc, dim)
            table[i, 1] = prompt_tokens(short, nc, dim)
        self.cond_table = table

    @classmethod
    def from_dataset(cls, dataset: Dataset, split: str, config: DiTConfig) -> "LatentBank":
        clips = dataset.clips(split)
        if not clips:
            raise ValueError(f"the data set in {dataset.root} has no {split!r} clips")
        latents = encode_clips(dataset, clips, config.codec)
        return cls(latents, [(c["prompt"], c["short_prompt"]) for c in clips], config)

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def sample(self, batch: int, window: int, context: int, block: int, p_silence: float,
               gen: torch.Generator) -> DiffusionBatch:
        if window > self.frames:
            raise ValueError(f"window of {window} frames is longer than the clips ({self.frames} frames)")
        clip = torch.randint(len(self), (batch,), generator=gen)
        offset = torch.randint(self.frames - window + 1, (batch,), generator=gen)
        rows = offset[:, None] + torch.arange(window)[None, :]  # (N, S)
        x0 = self.latents[clip[:, None], rows]  # (N, S, D)
        choice = _prompt_choice(batch, gen)
        cond = self.cond_table[clip, choice]  # (N, Nc, cond_dim)
        silent = torch.zeros(batch, dtype=torch.long)
        if p_silence > 0 and context >= block:
            blocks = context // block
            use = torch.rand(batch, generator=gen) < p_silence
            k = torch.randint(1, blocks + 1, (batch,), generator=gen)
            silent = torch.where(use, k * block, silent)
            keep = torch.arange(window)[None, :] >= silent[:, None]  # (N, S)
            x0 = x0 * keep[..., None]
        return DiffusionBatch(x0=x0, cond=cond)


@dataclass
class TokenBatch:
    context: torch.Tensor  # (N, F, E) int64 context tokens (first E levels)
    target: torch.Tensor  # (N, B, Q) int64 tokens to predict
    style: torch.Tensor  # (N, S) int64 style ids (0 = masked)


class TokenBank:
    """RVQ tokens of every clip (quantised with the generator's own :class:`ResidualVQ`)."""

    def __init__(self, tokens: torch.Tensor, prompts: Sequence[tuple[str, str]], config: LMMConfig,
                 silence_tokens: torch.Tensor, half_tokens: torch.Tensor | None = None) -> None:
        self.tokens = tokens.long()  # (clips, frames, Q)
        # (clips, frames, E): each frame as the LAST frame of a context sees it (window half unknown)
        self.half_tokens = half_tokens.long() if half_tokens is not None else None
        self.frames = int(tokens.shape[1])
        self.config = config
        table = torch.zeros(len(prompts), 3, config.style_tokens, dtype=torch.long)  # [full, short, empty]
        for i, (full, short) in enumerate(prompts):
            table[i, 0] = style_ids(full, config.style_tokens, config.style_vocab)
            table[i, 1] = style_ids(short, config.style_tokens, config.style_vocab)
        self.style_table = table
        self.silence_tokens = silence_tokens.long()  # (E,) tokens of a silent frame

    @classmethod
    def from_dataset(cls, dataset: Dataset, split: str, config: LMMConfig, codebooks: torch.Tensor) -> "TokenBank":
        clips = dataset.clips(split)
        if not clips:
            raise ValueError(f"the data set in {dataset.root} has no {split!r} clips")
        latents = encode_clips(dataset, clips, config.codec)  # (n, F, D)
        rvq = make_rvq(config, codebooks)
        tokens = torch.stack([rvq.quantize(x) for x in latents])  # (n, F, Q)
        half = encode_half_frames(dataset, clips, config.codec)  # (n, F, D)
        half_tokens = torch.stack([rvq.quantize(x, levels=config.encoder_levels) for x in half])  # (n, F, E)
        silence = rvq.quantize(torch.zeros(1, latents.shape[-1]), levels=config.encoder_levels)[0]
        return cls(tokens, [(c["prompt"], c["short_prompt"]) for c in clips], config, silence, half_tokens)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def sample(self, batch: int, context: int, block: int, p_silence: float, gen: torch.Generator) -> TokenBatch:
        window = context + block
        if window > self.frames:
            raise ValueError(f"window of {window} frames is longer than the clips ({self.frames} frames)")
        e = self.config.encoder_levels
        clip = torch.randint(len(self), (batch,), generator=gen)
        offset = torch.randint(self.frames - window + 1, (batch,), generator=gen)
        rows = offset[:, None] + torch.arange(window)[None, :]  # (N, F + B)
        seq = self.tokens[clip[:, None], rows]  # (N, F + B, Q)
        ctx = seq[:, :context, :e].clone()
        if self.half_tokens is not None:  # the first block after real audio: the context ends on a half frame
            half = torch.rand(batch, generator=gen) < P_HALF_LAST_FRAME
            last = self.half_tokens[clip, offset + context - 1]  # (N, E)
            ctx[:, -1] = torch.where(half[:, None], last, ctx[:, -1])
        if p_silence > 0 and context >= block:
            use = torch.rand(batch, generator=gen) < p_silence
            k = torch.randint(1, context // block + 1, (batch,), generator=gen)
            silent = torch.where(use, k * block, torch.zeros_like(k))
            mask = torch.arange(context)[None, :] < silent[:, None]  # (N, F)
            ctx = torch.where(mask[..., None], self.silence_tokens[None, None, :], ctx)
        choice = _prompt_choice(batch, gen)
        style = self.style_table[clip, choice]
        return TokenBatch(context=ctx, target=seq[:, context:], style=style)


def make_rvq(config: LMMConfig, codebooks: torch.Tensor) -> ResidualVQ:
    rvq = ResidualVQ(dim=config.codec.latent_dim, levels=config.rvq_levels, size=config.codebook_size,
                     seed=config.init_seed)
    rvq.load_codebooks(codebooks.float())
    return rvq


__all__ = ["LatentBank", "TokenBank", "DiffusionBatch", "TokenBatch", "encode_clips", "encode_half_frames", "make_rvq"]
