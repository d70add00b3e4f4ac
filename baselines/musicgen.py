"""Regime: MusicGen (transformers' ``MusicgenForConditionalGeneration``) streamed block by block, "musicgen".

A real discrete-autoregressive baseline beside our ``lmm``: a single decoder over EnCodec 32 kHz
codes with MusicGen's delay pattern, conditioned on T5 text states by cross-attention. It runs by
name only (``--generators musicgen``): musicgen-small on CPUs is far slower than the default run's
time budget. See docs/musicgen.md.

Stream (the workload's ``context_s`` / ``block_s`` at EnCodec's 50 Hz: ``F`` context and ``B`` block
frames, ``K`` codebooks, ``b = 2`` under CFG, else 1). The state carries the stream's last ``F``
frames of codes (the initial context, then its own output) and the cached text conditioning.

1. ``encode`` (first block, and whenever the prompt changes): the prompt as ``musicgen.text_tokens``
   T5 ids (the checkpoint's tokenizer, or hashed words offline), right-padded and masked; the T5
   encoder; the projection to the decoder width; every decoder layer's cross-attention K/V. Kept
   in the state, so later blocks skip it. The unconditional CFG row gets zero text states, which
   contribute exactly nothing, as MusicGen's null condition does.
2. ``prefill`` (once): the context re-laid in the delay pattern (``musicgen_decoder``): BOS +
   ``F`` slots in one decoder pass filling a static KV cache, then the first sampling position.
3. ``decode_tokens`` (``B + K - 2`` times): one cached decoder step per delayed slot; each samples
   all ``K`` codebooks and keeps those the delay pattern assigns to block frames.
4. ``decode``: EnCodec decodes the block's ``B`` frames with ``musicgen.decode_context_frames``
   frames before them (its convolutions look both ways), which are then dropped; the 32 kHz audio
   is resampled to the preset's rate (``resampler``), copied to every preset channel and to the host
   (the step's one host sync).

Delay handling (decided here): the delayed tail is NOT kept across blocks. Every block re-lays its
context (the last ``F`` whole frames) in the delay pattern, as MusicGen continues an audio prompt
and as audiocraft extends a long generation; the block's last ``K - 1`` slots of the lower
codebooks stay pad (transformers' end-of-sequence triangle) instead of being sampled. Cost: ``K - 1``
extra decoder positions per block (``B + K - 1`` sampling positions for ``B`` frames), no state but
whole frames, and a prompt change reaches every codebook of the next block at once.

A stream started without context audio starts from nothing, like MusicGen without an audio
prompt: its first block is BOS + generation. To keep every block's shapes and cost equal, the
short context is right-aligned in the ``F + 1`` prefill slots and the empty slots are masked out of
attention (outputs equal MusicGen's on the unpadded sequence); frames before the stream decode as
EnCodec's codes of digital silence in the codec's look-back.

Sampling (per position, per codebook): CFG over the doubled batch (``musicgen.cfg_scale``), then
``musicgen.temperature`` and ``musicgen.top_k`` (MusicGen's own defaults, 1.0 and 250; the workload's
LMM temperature and top-k are not used), drawn with :func:`baselines.token_sampler.sample_tokens` from
``block_generator(seed, block, "musicgen-sample")``: no host reads inside the step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.token_sampler import guide, sample_tokens
from baselines.musicgen_decoder import DelayLayout, MusicgenStepper, delay_grid, generate_mask, undelay
from baselines.musicgen_flops import (
    decoder_layers_flops,
    encodec_decode_flops,
    heads_flops,
    text_conditioning_flops,
)
from baselines.musicgen_model import (
    TEXT_HASHED,
    TEXT_TOKENIZER,
    TextTokens,
    build_random_model,
    hashed_text_tokens,
    load_checkpoint,
    parameter_breakdown,
    tokenizer_text_tokens,
)
from baselines.resampler import PolyphaseResampler
from bench.core.contract import (
    NULL_RECORDER,
    PhaseRecorder,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
    block_generator,
)
from bench.core.errors import ConfigError
from bench.core.phases import PHASE_DECODE, PHASE_DECODE_TOKENS, PHASE_ENCODE, PHASE_PREFILL
from bench.core.presets import MusicGenConfig, Preset
from bench.core.settings import Control, StreamSettings

log = logging.getLogger(__name__)

SAMPLE_PURPOSE = "musicgen-sample"  # block_generator purpose of the token sampler
CrossKV = list[tuple[torch.Tensor, torch.Tensor]]  # per decoder layer (K, V), each (b, H, T, hd)


@dataclass
class MusicGenState:
    """What carries from block to block: whole frames of codes and the cached text conditioning
    (the decoder's self-attention cache lives only inside a block)."""

    seed: int
    block_index: int
    codes: torch.Tensor  # (n, K) int64, n <= F: the stream's last frames, oldest first
    prompt: str | None = None  # the prompt ``cross`` was computed for (None: not yet)
    cross: CrossKV | None = None  # per decoder layer cross-attention (K, V), each (b, H, T, hd)
    cross_mask: torch.Tensor | None = None  # (b, 1, 1, T) bool: text keys each row attends
    text: TextTokens | None = None  # the prompt's tokens (source, length, truncation)


class MusicGenGenerator(StreamingGenerator):
    """MusicGen under the streaming contract (module docstring)."""

    name = "musicgen"

    def __init__(self, preset: Preset, settings: StreamSettings, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(preset, settings, device, dtype)
        cfg: MusicGenConfig = preset.musicgen
        self.cfg = cfg
        self.model, self.tokenizer = self._build_model()
        self.text_source = TEXT_TOKENIZER if self.tokenizer is not None else TEXT_HASHED
        audio_cfg, dec_cfg = self.model.config.audio_encoder, self.model.config.decoder
        self.codec_rate = int(audio_cfg.sampling_rate)
        self.hop = int(np.prod(audio_cfg.upsampling_ratios))  # codec samples per frame (640: 50 Hz)
        self.frame_rate_hz = self.codec_rate / self.hop
        self.context_frames, self.block_frames = settings.frames(self.frame_rate_hz)
        self.layout = DelayLayout(dec_cfg.num_codebooks, self.context_frames, self.block_frames)
        self.batch = 2 if settings.cfg else 1
        self.sample_rate, self.channels = preset.sample_rate, preset.dit.codec.channels
        if (self.hop * self.sample_rate) % self.codec_rate:
            raise ConfigError(f"preset sample rate {self.sample_rate} Hz does not hold a whole number of samples per "
                              f"MusicGen frame ({self.hop} samples at {self.codec_rate} Hz); use a multiple of "
                              f"{self.codec_rate // np.gcd(self.hop, self.codec_rate)} Hz")
        self.block_samples = self.block_frames * self.hop * self.sample_rate // self.codec_rate
        self.look_back_frames = min(cfg.decode_context_frames, self.context_frames)
        self.top_k = cfg.top_k if cfg.top_k < dec_cfg.vocab_size else 0  # k >= vocab keeps every token
        if self.layout.slots > dec_cfg.max_position_embeddings:
            log.warning("musicgen: %d decoder positions per block exceed the %d the model was configured for",
                        self.layout.slots, dec_cfg.max_position_embeddings)
        self.resampler = PolyphaseResampler(self.codec_rate, self.sample_rate, self.device)
        self.to_codec_rate = PolyphaseResampler(self.sample_rate, self.codec_rate, self.device)
        if self.device.type != "meta":
            self.stepper = MusicgenStepper(self.model, self.layout, self.batch, self.device, self.dtype)
            self._generate = generate_mask(self.layout, self.device)  # (K, S) slots sampled in a block
            self._silence = self._silence_codes()  # (look_back, K)
        # the FLOP bookkeeping is Python arithmetic: done once here, never inside the timed step
        self._block_flops = {first: self.analytic_flops(first) for first in (True, False)}
        log.info("musicgen: %s, text %s, %d context + %d block frames at %g Hz, %s parameters",
                 self.weights_label, self.text_source, self.context_frames, self.block_frames,
                 self.frame_rate_hz, f"{self.num_parameters():,}")

    # ------------------------------------------------------------------ construction
    def _build_model(self) -> tuple[Any, Any]:
        if self.cfg.checkpoint:
            if self.device.type == "meta":
                raise ConfigError("musicgen.checkpoint cannot be loaded on device='meta'; use random weights "
                                  "(musicgen.checkpoint=) for shapes only")
            loaded = load_checkpoint(self.cfg.checkpoint)
            model, tokenizer = loaded.model, loaded.tokenizer
        else:
            build_on = "meta" if self.device.type == "meta" else "cpu"  # seeded on the CPU, then moved
            model, tokenizer = build_random_model(self.cfg.size, self.cfg.init_seed, device=build_on), None
        # never trained here; and parameters that require grad break FlopCounterMode's module tracker under
        # inference_mode when a module takes them as inputs (EnCodec's weight-norm parametrizations do)
        model.requires_grad_(False)
        if self.device.type == "meta":
            return model, tokenizer
        model = model.to(self.device)
        for part in (model.text_encoder, model.decoder, getattr(model, "enc_to_dec_proj", None)):
            if part is not None:
                part.to(self.dtype)  # the codec stays float32
        _padding_arithmetic_on_host(model.audio_encoder)
        return model.eval(), tokenizer

    def _silence_codes(self) -> torch.Tensor:
        """(look_back, K) EnCodec codes of digital silence: the frames before a stream's start."""
        frames = max(self.look_back_frames, 1)
        with torch.no_grad():
            silence = torch.zeros(1, 1, frames * self.hop, device=self.device)
            codes = self.model.audio_encoder.encode(silence).audio_codes[0, 0]  # (K, frames)
        return codes.T[: self.look_back_frames].contiguous()

    @property
    def weights_label(self) -> str:
        """Where the weights come from: ``checkpoint DIR`` or ``random SIZE (seed N)``."""
        if self.cfg.checkpoint:
            return f"checkpoint {self.cfg.checkpoint}"
        return f"random {self.cfg.size} (seed {self.cfg.init_seed})"

    @property
    def notes(self) -> dict[str, Any]:
        """What this generator runs (for logs and reports): weights, text path, parameters per part."""
        return {"weights": self.weights_label, "text_source": self.text_source,
                "parameters": parameter_breakdown(self.model)}

    # ------------------------------------------------------------------ contract
    @property
    def spec(self) -> StreamSpec:
        rate = self.frame_rate_hz
        return StreamSpec(
            regime=self.name, sample_rate=self.sample_rate, channels=self.channels, frame_rate_hz=rate,
            block_frames=self.block_frames, context_frames=self.context_frames,
            block_s=self.block_frames / rate, context_s=self.context_frames / rate,
        )

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> MusicGenState:
        """Encode the context (the last ``F`` whole frames of it, at 32 kHz mono) to EnCodec codes;
        without context audio the stream starts from nothing (no frames)."""
        if self.device.type == "meta":
            raise ConfigError("device='meta' builds shapes only (parameter counts, analytic FLOPs); "
                              "use device='cpu' or 'cuda' to generate")
        codebooks = self.layout.codebooks
        if context_audio is None:
            codes = torch.zeros(0, codebooks, dtype=torch.int64, device=self.device)
        else:
            codes = self._context_codes(context_audio)
        return MusicGenState(seed=int(seed), block_index=0, codes=codes)

    def _context_codes(self, context_audio: np.ndarray) -> torch.Tensor:
        audio = np.asarray(context_audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] != self.channels:
            raise ValueError(f"context_audio must have shape (channels={self.channels}, samples) at {self.sample_rate} "
                             f"Hz, got {audio.shape}; pass None to start from nothing")
        with torch.no_grad():
            mono = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0))).to(self.device)
            at_codec_rate = self.to_codec_rate(mono)  # (samples at 32 kHz,)
            frames = min(at_codec_rate.shape[0] // self.hop, self.context_frames)
            if frames == 0:
                return torch.zeros(0, self.layout.codebooks, dtype=torch.int64, device=self.device)
            tail = at_codec_rate[at_codec_rate.shape[0] - frames * self.hop:].view(1, 1, -1)
            return self.model.audio_encoder.encode(tail).audio_codes[0, 0].T.contiguous()  # (frames, K)

    def step(self, state: MusicGenState, control: Control,
             recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, MusicGenState]:
        encode = state.cross is None or control.prompt != state.prompt
        with torch.no_grad():
            generator = block_generator(state.seed, state.block_index, SAMPLE_PURPOSE, self.device)
            cross, cross_mask, text = state.cross, state.cross_mask, state.text
            if encode:
                with recorder.phase(PHASE_ENCODE):
                    cross, cross_mask, text = self.encode_text(control.prompt)
            codes = self.generate_codes(state.codes, cross, cross_mask, generator, recorder)  # (B, K)
            with recorder.phase(PHASE_DECODE):
                audio = self.decode_audio(state.codes, codes)  # (C, block_samples) host float32
            context = torch.cat([state.codes, codes])[-self.context_frames:]
        steps = self.layout.decode_steps
        calls = {PHASE_PREFILL: 1, PHASE_DECODE: 1, **({PHASE_DECODE_TOKENS: steps} if steps else {})}
        info = StepInfo(
            block_index=state.block_index,
            phase_calls={**({PHASE_ENCODE: 1} if encode else {}), **calls},
            tokens_processed=self.batch * (self.layout.prefill_slots + steps) + (self.cfg.text_tokens if encode else 0),
            cache_len=self.layout.cache_slots,
            analytic_flops=dict(self._block_flops[encode]),
            extra={
                "text_source": text.source, "prompt_tokens": text.length, "text_truncated": text.truncated,
                "text_encoded": encode, "weights": self.weights_label,
                "context_frames_present": int(state.codes.shape[0]), "cfg_batch": self.batch,
                "top_k": self.top_k, "temperature": self.cfg.temperature,
            },
            transient_kv_bytes=self.block_kv_bytes(),
        )
        new_state = MusicGenState(state.seed, state.block_index + 1, context, control.prompt, cross, cross_mask, text)
        return StepResult(audio=audio, info=info), new_state

    # ------------------------------------------------------------------ phases
    def text_tokens(self, prompt: str) -> TextTokens:
        """``prompt`` as ``musicgen.text_tokens`` T5 ids: the checkpoint's tokenizer, or hashed words."""
        if self.tokenizer is not None:
            return tokenizer_text_tokens(self.tokenizer, prompt, self.cfg.text_tokens)
        return hashed_text_tokens(prompt, self.cfg.text_tokens, self.model.config.text_encoder.vocab_size)

    def encode_text(self, prompt: str) -> tuple[CrossKV, torch.Tensor, TextTokens]:
        """The ``encode`` phase: T5 states of the prompt (padded positions zeroed, as MusicGen does),
        projected to the decoder width, rows [prompt | zeros] under CFG -> cross K/V and key mask."""
        text = self.text_tokens(prompt)
        # built on the host and uploaded without waiting for the stream (torch.tensor(..., device=)
        # would copy from pageable memory and synchronise it)
        ids = torch.tensor([text.ids], dtype=torch.int64, device="cpu").to(self.device, non_blocking=True)  # (1, T)
        keep = torch.tensor([[1] * text.length + [0] * (len(text.ids) - text.length)], device="cpu").to(
            self.device, non_blocking=True)  # (1, T)
        states = self.model.text_encoder(input_ids=ids, attention_mask=keep).last_hidden_state  # (1, T, d_text)
        if getattr(self.model, "enc_to_dec_proj", None) is not None:
            states = self.model.enc_to_dec_proj(states)  # (1, T, d)
        states = states * keep[..., None].to(states.dtype)
        mask = keep.bool().view(1, 1, 1, -1)  # (1, 1, 1, T)
        if self.batch == 2:  # unconditional row: zero states (zero K/V: its cross-attention adds exactly 0)
            states = torch.cat([states, torch.zeros_like(states)])
            mask = torch.cat([mask, torch.ones_like(mask)])
        return self.stepper.cross_kv(states.to(self.dtype)), mask, text

    def generate_codes(self, context: torch.Tensor, cross: CrossKV, cross_mask: torch.Tensor,
                       generator: torch.Generator, recorder: PhaseRecorder = NULL_RECORDER, use_cache: bool = True,
                       trace: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(n, K) context codes -> (B, K) codes of the next block (``prefill`` and ``decode_tokens``).

        ``use_cache=False`` recomputes every slot so far at every step (the reference the cached
        path is tested against); ``trace`` (optional) collects the guided (K, V) logits sampled from
        at each position."""
        layout, stepper = self.layout, self.stepper
        start_slot = layout.context_frames - context.shape[0]  # the BOS slot
        with recorder.phase(PHASE_PREFILL):
            grid = delay_grid(context, layout, stepper.pad_id)  # (K, S)
            caches = stepper.new_cache()
            x = stepper.prefill_inputs(grid, start_slot)  # (b, F + 1, d)
            h = stepper.forward(x, caches, 0, stepper.self_mask(0, layout.prefill_slots, start_slot), cross, cross_mask)
            self._sample_into(grid, layout.prefill_slots, h[:, -1], generator, trace)
            key_ok = torch.arange(layout.cache_slots, device=self.device) >= start_slot  # (cache_slots,)
        for slot in range(layout.prefill_slots, layout.cache_slots):
            with recorder.phase(PHASE_DECODE_TOKENS):
                if use_cache:
                    x = stepper.step_inputs(grid, slot, start_slot)  # (b, 1, d)
                    h = stepper.forward(x, caches, slot, key_ok[: slot + 1].view(1, -1), cross, cross_mask)
                else:
                    x = stepper.prefill_inputs(grid, start_slot, count=slot + 1)  # (b, slot + 1, d)
                    mask = stepper.self_mask(0, slot + 1, start_slot)
                    h = stepper.forward(x, stepper.new_cache(), 0, mask, cross, cross_mask)
                self._sample_into(grid, slot + 1, h[:, -1], generator, trace)
        return undelay(grid, layout)

    def _sample_into(self, grid: torch.Tensor, slot: int, hidden: torch.Tensor, generator: torch.Generator,
                     trace: list[torch.Tensor] | None) -> None:
        """Sample every codebook at ``slot`` from (b, d) decoder states; keep the delay pattern's."""
        logits = self.stepper.logits(hidden)  # (b, K, V) float32
        if self.batch == 2:
            logits = guide(logits, self.cfg.cfg_scale)  # (1, K, V)
        logits = logits.reshape(self.layout.codebooks, -1)  # (K, V)
        if trace is not None:
            trace.append(logits)
        tokens = sample_tokens(logits, self.cfg.temperature, self.top_k, generator)  # (K,)
        grid[:, slot] = torch.where(self._generate[:, slot], tokens, grid[:, slot])

    def decode_audio(self, previous: torch.Tensor, codes: torch.Tensor) -> np.ndarray:
        """The ``decode`` phase: (B, K) codes after the (n, K) previous frames -> (C, block_samples)
        float32 host audio at the preset's rate."""
        look_back = self.look_back_frames
        before = previous[previous.shape[0] - min(look_back, previous.shape[0]):]  # (<= look_back, K)
        before = torch.cat([self._silence[: look_back - before.shape[0]], before])  # (look_back, K)
        window = torch.cat([before, codes]).T  # (K, look_back + B)
        audio = self.model.audio_encoder.decode(window[None, None], [None]).audio_values[0]  # (1, (P + B) * hop)
        audio = self.resampler(audio)[:, -self.block_samples:]  # (1, block_samples) at the preset's rate
        return audio.repeat(self.channels, 1).to("cpu", torch.float32).numpy()  # the step's one host sync

    # ------------------------------------------------------------------ accounting
    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        """Matmul, dense-attention, convolution and LSTM FLOPs per phase of one block. The ``encode``
        phase runs in the first block (and after a prompt change, which this count cannot know)."""
        dec, layout, b, text = self.model.config.decoder, self.layout, self.batch, self.cfg.text_tokens
        prefill = decoder_layers_flops(dec, b, layout.prefill_slots, layout.prefill_slots, text) + heads_flops(dec, b)
        steps = sum(decoder_layers_flops(dec, b, 1, slot + 1, text) + heads_flops(dec, b)
                    for slot in range(layout.prefill_slots, layout.cache_slots))
        frames = self.look_back_frames + self.block_frames
        decode = (encodec_decode_flops(self.model.audio_encoder.decoder, frames)
                  + self.resampler.flops(frames * self.hop))
        out = {PHASE_PREFILL: float(prefill)}
        if layout.decode_steps:
            out[PHASE_DECODE_TOKENS] = float(steps)
        out[PHASE_DECODE] = float(decode)
        if first_block:
            out = {PHASE_ENCODE: float(text_conditioning_flops(self.model.config, text, b)), **out}
        return out

    def block_kv_bytes(self) -> int:
        """Bytes of the block's self-attention cache (all layers, K and V, ``b`` rows); freed at
        the end of the block."""
        dec = self.model.config.decoder
        elem = torch.empty((), dtype=self.dtype).element_size()
        return 2 * dec.num_hidden_layers * self.batch * self.layout.cache_slots * dec.hidden_size * elem

    def kv_cache_bytes(self, state: MusicGenState) -> int:
        """Bytes of the cross-attention K/V the state keeps for its prompt (0 before the first block)."""
        if state.cross is None:
            return 0
        return int(sum(t.numel() * t.element_size() for pair in state.cross for t in pair))


def _padding_arithmetic_on_host(audio_encoder: torch.nn.Module) -> None:
    """transformers' EnCodec convolutions keep stride and kernel sizes as tensor buffers and compute
    their padding from them; on a GPU every convolution would then read a device value on the host.
    Keeping those three scalars on the CPU gives the same integers without a device sync."""
    for module in audio_encoder.modules():
        if type(module).__name__ == "EncodecConv1d":
            for name in ("stride", "kernel_size", "padding_total"):
                setattr(module, name, getattr(module, name).cpu())
