"""Names of quality and drift metrics: readable labels with units, which direction is better, and
the order metrics are listed in.

Metrics of the weight-free log-mel embedder (``*_logmel``) say so in their label: they are not
pretrained-model metrics and must never be compared with published FAD/KAD numbers.
"""

from __future__ import annotations

LABELS = {
    "fad": "FAD", "kad": "KAD x100", "self_kad": "KAD x100 to the stream's first window", "fad_inf": "FAD-inf",
    "clap_score": "CLAP score (cosine)", "loudness_lufs": "loudness (LUFS)",
    "spectral_centroid_hz": "spectral centroid (Hz)", "spectral_flatness": "spectral flatness",
    "silence_ratio": "silence ratio", "clipping_ratio": "clipping ratio", "rms_dbfs": "RMS (dBFS)",
    "nonfinite_ratio": "non-finite sample ratio",
    # music descriptors (metrics.descriptors; per window: metrics.drift.descriptor_windows)
    "pitched_fraction": "pitched fraction", "pitch_range_semitones": "pitch range (semitones)",
    "pitch_class_entropy_bits": "pitch-class entropy (bits)", "key_strength": "key strength (r)",
    "onset_rate_hz": "onset rate (Hz)", "tempo_bpm": "tempo (bpm)",
    "key_same_as_first": "in the first window's key (fraction of streams)",
    "chroma_corr_first": "chroma r with the first window",
}
EMBEDDER_SUFFIXES = (("_logmel", "log-mel, not a pretrained embedder"),)
METRIC_ORDER = ("kad", "fad", "self_kad", "clap_score", "loudness_lufs", "rms_dbfs", "spectral_centroid_hz",
                "spectral_flatness", "silence_ratio", "clipping_ratio", "nonfinite_ratio", "pitched_fraction",
                "pitch_range_semitones", "pitch_class_entropy_bits", "key_strength", "key_same_as_first",
                "chroma_corr_first", "onset_rate_hz", "tempo_bpm")


def metric_label(name: str) -> str:
    """Readable label with unit for a quality or drift metric column name.

    Metrics of the weight-free log-mel embedder say so (they are not pretrained-model metrics).
    """
    embedder = ""
    base = name
    for suffix, words in EMBEDDER_SUFFIXES:
        if name.endswith(suffix):
            base, embedder = name[: -len(suffix)], words
    if base in LABELS:
        text = LABELS[base]
    elif "_" in base and base.split("_", 1)[0] in ("fad", "kad"):
        head, emb = base.split("_", 1)
        text, embedder = LABELS[head], embedder or emb
    else:
        text = base.replace("_", " ")
    return f"{text} ({embedder})" if embedder else text


def metric_direction(name: str) -> str | None:
    """"lower" / "higher" is better for a quality metric, or None when neither is."""
    if name.startswith(("fad", "kad", "self_kad")):
        return "lower"
    if name.startswith("clap_score"):
        return "higher"
    return None


def metric_rank(metric: str) -> int:
    """Position of ``metric`` in :data:`METRIC_ORDER` (by name or ``<name>_`` prefix); unknown ones last."""
    for i, prefix in enumerate(METRIC_ORDER):
        if metric == prefix or metric.startswith(prefix + "_"):
            return i
    return len(METRIC_ORDER)


__all__ = ["metric_label", "metric_direction", "metric_rank", "METRIC_ORDER"]
