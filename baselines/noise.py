"""The null system under test: a block of seeded Gaussian noise, returned at once.

It does the least work a generator on its device can do: one ``torch.randn`` on the run's device
and the block's copy to the host (the copy every regime makes at the end of its ``decode`` phase),
inside one ``decode`` phase, no model. Its measured block latency is the harness's own overhead
per block (timer reads, the phase recorder, the Python call) plus that minimal work; the run's
``overhead`` table splits the two. (A null drawing on the host would time the host's RNG, work
no regime does, and skip the copy every regime makes: docs/gpu.md, "Machine 4".)
Every run reports it next to the real regimes (MLPerf's "null SUT" idea).

``noise-phased`` (:class:`PhasedNoiseGenerator`) returns the same audio through as many phase
entries per block as the LMM of the preset (encode, ``B`` temporal, ``B`` depth, decode), each
with an empty body: its latency minus ``noise``'s, over the extra entries, is the harness's cost
per phase entry (the run's ``overhead`` table), measured rather than assumed.

Audio: white Gaussian noise with standard deviation :data:`NOISE_STD` (about -20 dBFS RMS) at the
preset's sample rate and channel count; block length follows the DiT codec's frame rate, like the
diffusion regimes. Randomness comes only from ``block_generator(seed, block_index, "noise", device)``:
the same audio on every CPU run; a CUDA run draws other (equally seeded) noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.core.contract import (
    NULL_RECORDER,
    PhaseRecorder,
    StepInfo,
    StepResult,
    StreamingGenerator,
    StreamSpec,
    block_generator,
)
from bench.core.phases import PHASE_DECODE, PHASE_DEPTH, PHASE_ENCODE, PHASE_TEMPORAL
from bench.core.registry import NULL_GENERATOR, PHASED_NULL_GENERATOR
from bench.core.settings import Control, StreamSettings

NOISE_STD = 0.1


@dataclass(frozen=True)
class NoiseState:
    seed: int
    block_index: int


class NoiseGenerator(StreamingGenerator):
    """Seeded noise, one block per step (registry name :data:`~bench.core.registry.NULL_GENERATOR`)."""

    name = NULL_GENERATOR

    def __init__(self, preset: Any, settings: StreamSettings, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(preset, settings, device, dtype)
        codec = preset.dit.codec
        frame_rate = codec.frame_rate_hz
        context_frames, block_frames = settings.frames(frame_rate)
        self._spec = StreamSpec(
            regime=self.name, sample_rate=codec.sample_rate, channels=codec.channels, frame_rate_hz=frame_rate,
            block_frames=block_frames, context_frames=context_frames, block_s=block_frames / frame_rate,
            context_s=context_frames / frame_rate,
        )
        self._block_shape = (codec.channels, block_frames * codec.hop)  # (channels, samples)

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> NoiseState:
        if context_audio is not None:
            shape = np.shape(context_audio)
            if len(shape) != 2 or shape[0] != self._spec.channels:
                raise ValueError(
                    f"context_audio must have shape (channels={self._spec.channels}, samples), got {shape}"
                )
        return NoiseState(seed=int(seed), block_index=0)

    def _noise_block(self, state: NoiseState, recorder: PhaseRecorder) -> np.ndarray:
        """The block's audio (C, S) float32, drawn on the run's device and copied to the host
        inside one decode phase (the copy ends every regime's decode phase)."""
        with recorder.phase(PHASE_DECODE):
            gen = block_generator(state.seed, state.block_index, "noise", self.device)
            noise = torch.randn(self._block_shape, generator=gen, device=self.device)  # (C, S)
            return (noise * NOISE_STD).to("cpu", torch.float32).numpy()  # the step's one host copy

    def step(self, state: NoiseState, control: Control, recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, NoiseState]:
        audio = self._noise_block(state, recorder)
        info = StepInfo(
            block_index=state.block_index, phase_calls={PHASE_DECODE: 1}, tokens_processed=0, cache_len=0,
            analytic_flops={PHASE_DECODE: 0.0},
        )
        return StepResult(audio=audio, info=info), NoiseState(state.seed, state.block_index + 1)

    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        return {PHASE_DECODE: 0.0}

    def copy_state(self, state: NoiseState) -> NoiseState:
        return state  # immutable

    def compile(self, mode: str) -> dict[str, Any]:
        """Nothing to compile (no model): the null generator measures the harness in every mode."""
        return {"compiled": [], "backend": "none"}


class PhasedNoiseGenerator(NoiseGenerator):
    """The null generator with the LMM's phase entries per block (module docstring)."""

    name = PHASED_NULL_GENERATOR

    def __init__(self, preset: Any, settings: StreamSettings, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(preset, settings, device, dtype)
        lmm = preset.lmm
        _, frames = settings.frames(lmm.codec.frame_rate_hz)
        self.frames = frames
        self._calls = {PHASE_ENCODE: 1, PHASE_TEMPORAL: frames, PHASE_DEPTH: frames, PHASE_DECODE: 1}

    @property
    def phase_entries(self) -> int:
        """Phase entries per block (the LMM's at this preset and stream)."""
        return sum(self._calls.values())

    def step(self, state: NoiseState, control: Control, recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, NoiseState]:
        with recorder.phase(PHASE_ENCODE):
            pass
        for _ in range(self.frames):
            with recorder.phase(PHASE_TEMPORAL):
                pass
            with recorder.phase(PHASE_DEPTH):  # the LMM's depth phase covers a frame's RVQ levels
                pass
        audio = self._noise_block(state, recorder)  # the same one decode phase as the null generator's
        info = StepInfo(block_index=state.block_index, phase_calls=dict(self._calls), tokens_processed=0, cache_len=0,
                        analytic_flops=self.analytic_flops(False))
        return StepResult(audio=audio, info=info), NoiseState(state.seed, state.block_index + 1)

    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        return {phase: 0.0 for phase in self._calls}

