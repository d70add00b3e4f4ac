"""What every regime receives identically: the musician's control and the stream settings in
SECONDS (each regime converts them to its own frame rate)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import ConfigError


@dataclass(frozen=True)
class Control:
    """What a musician steers with. ``prompt`` is text; regimes embed it themselves."""

    prompt: str = ""


@dataclass(frozen=True)
class StreamSettings:
    """The part of a workload every regime receives identically, in SECONDS.

    Each regime converts seconds to its own frame rate:
    ``block_frames = round(block_s * frame_rate_hz)``, ``context_frames = W * block_frames`` with
    ``W = context_s / block_s``, which must be a whole number (validated here).
    """

    context_s: float
    block_s: float
    steps: int = 8  # denoising steps per block (diffusion regimes)
    cfg: bool = False  # classifier-free guidance by batch doubling (scale from the model config)
    sampler: str = "pingpong"  # "pingpong" or "euler" (diffusion regimes)
    temperature: float = 1.1  # LMM sampling
    top_k: int = 40  # LMM sampling (0 = no top-k)

    def __post_init__(self) -> None:
        if not (self.block_s > 0):
            raise ConfigError(f"block_s must be > 0 seconds, got {self.block_s}")
        if not (self.context_s > 0):
            raise ConfigError(f"context_s must be > 0 seconds, got {self.context_s}")
        blocks = self.context_s / self.block_s
        if abs(blocks - round(blocks)) > 1e-6 or round(blocks) < 1:
            raise ConfigError(
                f"context_s ({self.context_s}) must be a whole number (>= 1) of blocks of "
                f"block_s ({self.block_s}); got {blocks:.4f} blocks"
            )
        if int(self.steps) != self.steps or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps}")
        if self.sampler not in ("pingpong", "euler"):
            raise ConfigError(f"sampler must be 'pingpong' or 'euler', got {self.sampler!r}")
        if not (self.temperature > 0):
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0 (0 disables top-k), got {self.top_k}")

    @property
    def context_blocks(self) -> int:
        """W: how many blocks the context holds."""
        return int(round(self.context_s / self.block_s))

    def frames(self, frame_rate_hz: float) -> tuple[int, int]:
        """(context_frames, block_frames) at a regime's frame rate; block_frames >= 1."""
        block_frames = max(1, int(round(self.block_s * frame_rate_hz)))
        return self.context_blocks * block_frames, block_frames
