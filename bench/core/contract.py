"""The contract every streaming regime implements.

A generator turns a stream of controls (prompts) into a stream of audio blocks. State goes in and
out explicitly, so the harness can copy it ("save, step, restore, step") and so no hidden mutable
state can leak between blocks:

    gen = registry.GENERATORS.create("lmdm-causal", preset, settings)
    state = gen.start(Control("bach chorale, organ"), seed=0)
    for _ in range(n_blocks):
        result, state = gen.step(state, control, recorder)
        play(result.audio)            # (channels, samples) float32 numpy, host memory
    gen.stop(state)

Phases (names in :mod:`bench.core.phases`). A step is made of named phases (prefill, bootstrap, first_step, step, encode, temporal,
depth, decode). The generator wraps each phase in ``recorder.phase(name)``; the harness passes a
recorder that times phases (wall clock, CUDA events, a fake clock) or counts their FLOPs, so
the generator never times itself and every regime is measured the same way. A phase may be entered
many times per step (the LMM's temporal decoder runs once per frame); recorders accumulate.

Randomness comes only from the seed given to ``start``: use :func:`block_generator` to derive a
``torch.Generator`` for (seed, block index, purpose), never the global RNG.
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, ContextManager, Iterator, Protocol

import numpy as np
import torch

from bench.core.errors import ConfigError
from bench.core.hashing import stable_hash
from bench.core.settings import Control, StreamSettings


class PhaseRecorder(Protocol):
    """Receives the phase structure of a step (timing, FLOP counting, or nothing)."""

    def phase(self, name: str) -> ContextManager[None]:
        """Context manager wrapped around one execution of phase ``name``."""
        ...


class NullRecorder:
    """A recorder that records nothing (the default when a caller just wants audio)."""

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield


NULL_RECORDER = NullRecorder()


@dataclass(frozen=True)
class StreamSpec:
    """Static description of a generator's stream, fixed at construction."""

    regime: str  # registry name
    sample_rate: int  # Hz of the returned audio
    channels: int
    frame_rate_hz: float  # latent frames (or token frames) per second
    block_frames: int
    context_frames: int
    block_s: float  # audio seconds one step returns (block_frames / frame_rate_hz)
    context_s: float  # audio seconds of context (context_frames / frame_rate_hz)

    @property
    def block_samples(self) -> int:
        return int(round(self.block_s * self.sample_rate))


@dataclass
class StepInfo:
    """What one step did, beside the audio. Cheap to build: no device synchronisation."""

    block_index: int
    phase_calls: dict[str, int]  # phase -> how many times it ran in this step
    tokens_processed: int  # query token-passes through the backbone(s) in this step
    cache_len: int  # tokens in the self-attention KV cache this step attended to (persistent or not)
    analytic_flops: dict[str, float]  # phase -> analytic FLOPs of this step (matmul-level)
    extra: dict[str, Any] = field(default_factory=dict)
    # Bytes of KV caches that live only inside this step and are rebuilt every block (enc-dec's
    # context cache, the LMM's decoder caches); caches kept in the state are kv_cache_bytes(state).
    transient_kv_bytes: int = 0


@dataclass
class StepResult:
    audio: np.ndarray  # (channels, samples) float32, host memory
    info: StepInfo


class StreamingGenerator(ABC):
    """Base class of every regime. Subclasses set ``name`` and implement the abstract methods.

    Construction builds the model (seeded weights, or loaded ones) on ``device`` in ``dtype``; it
    must reject impossible configurations with :class:`ConfigError`.
    """

    name: ClassVar[str] = ""
    # True when ``step`` writes its input state's caches in place (see ``step``)
    consumes_state: ClassVar[bool] = False

    def __init__(
        self,
        preset: Any,
        settings: StreamSettings,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"dtype must be a floating torch dtype (float32, float16, bfloat16), got {dtype!r}")
        self.preset = preset
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = dtype

    @property
    @abstractmethod
    def spec(self) -> StreamSpec: ...

    @abstractmethod
    def start(self, control: Control, seed: int, context_audio: np.ndarray | None = None) -> Any:
        """Begin a stream. ``context_audio`` ((channels, samples) at ``spec.sample_rate``) primes
        the context; None means silence. Returns the initial state."""

    @abstractmethod
    def step(
        self, state: Any, control: Control, recorder: PhaseRecorder = NULL_RECORDER
    ) -> tuple[StepResult, Any]:
        """Generate the next block under ``control``. Returns (result, new state). The input
        state must not be modified in a way that changes what a later step from it produces,
        unless the generator sets ``consumes_state``: its step writes the state's caches in place
        (a preallocated KV cache), so the input state is used up, and a caller who needs it again
        steps a :meth:`copy_state` of it instead."""

    def stop(self, state: Any) -> None:
        """Release what the stream holds (default: nothing)."""

    @abstractmethod
    def analytic_flops(self, first_block: bool) -> dict[str, float]:
        """Analytic FLOPs per phase of one block (the first block of a stream, or a steady one),
        counting matmuls and attention products the way ``torch.utils.flop_counter`` does."""

    def compile(self, mode: str) -> dict[str, Any]:
        """Compile the step's passes with ``torch.compile`` in ``mode`` ("default",
        "reduce-overhead", "max-autotune"); returns what was compiled and how, recorded with the
        cell. A generator without a compile mode raises: the harness never times eager code as if
        it were compiled."""
        raise ConfigError(f"generator {self.name!r} has no compile mode; run it eager (--compile off)")

    def copy_state(self, state: Any) -> Any:
        """An independent copy of ``state`` (tensors cloned)."""
        return copy.deepcopy(state)

    def kv_cache_bytes(self, state: Any) -> int:
        """Bytes of the KV caches the state holds (0 for uncached regimes)."""
        return 0

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules holding this generator's weights (for parameter counts)."""
        return []

    def num_parameters(self) -> int:
        seen: set[int] = set()
        total = 0
        for module in self.modules():
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total


def block_generator(seed: int, block_index: int, purpose: str, device: torch.device | str) -> torch.Generator:
    """A ``torch.Generator`` seeded from (seed, block_index, purpose): the only source of
    randomness a generator may use. Deriving it per block keeps state copies trivially exact."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(stable_hash("block", int(seed), int(block_index), purpose))
    return gen
