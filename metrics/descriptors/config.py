"""The parameters of the music-aware descriptors, with their documented defaults.

One frozen :class:`DescriptorConfig` travels with every call, so a table can record exactly what
made its numbers (:attr:`DescriptorConfig.identity`). Impossible values fail at construction with
a :class:`~bench.core.errors.ConfigError` naming the field. Why each default is what it is:
``docs/descriptors.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import ConfigError

HISTOGRAM_WEIGHTINGS = ("confidence", "count")


@dataclass(frozen=True)
class DescriptorConfig:
    """Thresholds and frame sizes of the descriptors."""

    # pitch (PESTO)
    confidence_threshold: float = 0.5  # a frame is pitched when PESTO's confidence exceeds this ...
    gate_dbfs: float = -60.0  # ... and its RMS level is at least this (silence and near-silence read unpitched)
    min_pitched_frames: int = 10  # fewer pitched frames than this: pitch range / median are NaN
    range_percentiles: tuple[float, float] = (5.0, 95.0)  # pitch range = spread between these MIDI percentiles
    histogram_weighting: str = "confidence"  # pitch-class histogram: "confidence"-weighted or "count"
    with_pitch: bool = True  # False skips PESTO (tonality and rhythm only; pitch columns are NaN)
    # tonality (chroma -> Krumhansl-Schmuckler key)
    chroma_hop_s: float = 0.032  # rounded to a multiple of the CQT's downsampling factor
    # rhythm (librosa onsets and beats)
    onset_hop_s: float = 0.016  # hop of the onset-strength envelope
    start_bpm: float = 120.0  # centre of librosa's tempo prior
    min_beats: int = 4  # fewer tracked beats than this: tempo is NaN

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence_threshold < 1.0:
            raise ConfigError(
                f"DescriptorConfig.confidence_threshold must be in [0, 1), got {self.confidence_threshold}"
            )
        if not self.gate_dbfs <= 0.0:
            raise ConfigError(f"DescriptorConfig.gate_dbfs must be <= 0 dBFS, got {self.gate_dbfs}")
        for name in ("chroma_hop_s", "onset_hop_s", "start_bpm"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"DescriptorConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("min_pitched_frames", "min_beats"):
            value = getattr(self, name)
            if int(value) != value or value < 2:
                raise ConfigError(f"DescriptorConfig.{name} must be an integer >= 2, got {value!r}")
        low, high = self.range_percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ConfigError(
                f"DescriptorConfig.range_percentiles must be (low, high) with 0 <= low < high <= 100, "
                f"got {self.range_percentiles}"
            )
        if self.histogram_weighting not in HISTOGRAM_WEIGHTINGS:
            raise ConfigError(
                f"DescriptorConfig.histogram_weighting must be one of {HISTOGRAM_WEIGHTINGS}, "
                f"got {self.histogram_weighting!r}"
            )

    @property
    def identity(self) -> str:
        """Every parameter in one string (stored beside the tables)."""
        low, high = self.range_percentiles
        pitch = (
            f"pitch: conf>{self.confidence_threshold:g} level>={self.gate_dbfs:g}dBFS "
            f"range p{low:g}-p{high:g} min{self.min_pitched_frames} "
            f"hist={self.histogram_weighting}" if self.with_pitch else "pitch: off"
        )
        return (
            f"descriptors({pitch}; chroma_cqt hop~{self.chroma_hop_s * 1000:g}ms tuning=A440 + "
            f"Krumhansl-Kessler; onsets hop~{self.onset_hop_s * 1000:g}ms; tempo prior "
            f"{self.start_bpm:g}bpm min{self.min_beats} beats)"
        )


DEFAULT_CONFIG = DescriptorConfig()
