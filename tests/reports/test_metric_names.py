"""Metric labels: log-mel metrics say they are not pretrained-embedder metrics."""

from __future__ import annotations

from reports.metric_names import metric_label


def test_log_mel_metrics_are_labelled_as_such() -> None:
    assert metric_label("fad_logmel") == "FAD (log-mel, not a pretrained embedder)"
    assert metric_label("kad_logmel") == "KAD x100 (log-mel, not a pretrained embedder)"
    assert metric_label("clap_score") == "CLAP score (cosine)"
