"""Per-window quality: the drift tables agree with H3's metric functions applied directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from baselines.degrading import render_music
from bench.core.hashing import stable_hash
from metrics.drift.signal_stats import signal_stats
from metrics.drift.windowed import build_reference, windowed_metrics
from metrics.drift.windows import WindowSpec
from metrics.embedders import create_embedder
from metrics.quality.clap_score import clap_score
from metrics.quality.frechet import frechet_distance_stats, gaussian_stats
from metrics.quality.kad import kad

SR = 8000
PROMPTS = ["bach chorale, organ", "funk groove"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("streams")
    paths = []
    for s, prompt in enumerate(PROMPTS):
        audio = render_music(SR, s, prompt, 0, 6 * SR)
        audio[4 * SR:] += 0.05 * np.random.default_rng(s).standard_normal(2 * SR)  # something changes
        sf.write(folder / f"s{s}.wav", audio.astype(np.float32), SR, subtype="FLOAT")
        paths.append(folder / f"s{s}.wav")
    embedder = create_embedder("logmel")
    clips = [render_music(SR, 100 + j, PROMPTS[j % 2], 0, 2 * SR)[None, :] for j in range(4)]
    reference = build_reference(clips, SR, embedder, name="test reference", seed=0)
    spec = WindowSpec.from_seconds(2.0, 2.0, 0.5, SR)
    return {"paths": paths, "embedder": embedder, "reference": reference, "spec": spec}


def window_audio(path: Path, start_s: float, end_s: float) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data[int(start_s * SR):int(end_s * SR)].T


def test_tables_equal_direct_metric_calls(setup: dict) -> None:
    windows, streams = windowed_metrics(setup["paths"], PROMPTS, setup["spec"], setup["embedder"], setup["reference"],
                                        n_boot=50, seed=0)
    assert list(windows["window_index"]) == [0, 1, 2] and list(windows["start_s"]) == [0.0, 2.0, 4.0]
    ref, emb = setup["reference"], setup["embedder"]
    for _, w in windows.iterrows():
        frames = [emb.embed(window_audio(p, w.start_s, w.end_s), SR).astype(np.float64) for p in setup["paths"]]
        pooled = np.concatenate(frames)
        assert w["n_frames"] == pooled.shape[0]
        assert w["kad_logmel"] == kad(ref.frames, pooled, bandwidth=ref.bandwidth).value
        fad = frechet_distance_stats(gaussian_stats(ref.frames), gaussian_stats(pooled)).value
        assert w["fad_logmel"] == pytest.approx(fad, rel=1e-12)
        assert w["kad_logmel_ci_low"] < w["kad_logmel_ci_high"]  # percentile CIs need not contain the value
        per_stream = streams[streams["window_index"] == w["window_index"]]
        for s, path in enumerate(setup["paths"]):
            expected = signal_stats(window_audio(path, w.start_s, w.end_s), SR)
            got = per_stream[per_stream["stream"] == s].iloc[0]
            assert got["loudness_lufs"] == expected["loudness_lufs"]
            assert got["spectral_centroid_hz"] == expected["spectral_centroid_hz"]
        assert w["loudness_lufs"] == pytest.approx(per_stream["loudness_lufs"].mean())
    # self distance: NaN at the anchor, then KAD to the stream's own first window
    first = setup["embedder"].embed(window_audio(setup["paths"][0], 0.0, 2.0), SR).astype(np.float64)
    last = setup["embedder"].embed(window_audio(setup["paths"][0], 4.0, 6.0), SR).astype(np.float64)
    s0 = streams[streams["stream"] == 0].set_index("window_index")["self_kad_logmel"]
    assert np.isnan(s0[0]) and s0[2] == kad(first, last, bandwidth=ref.bandwidth).value
    assert s0[2] > s0[1]  # the added noise moves the last window away from the start


def test_subsampling_and_errors(setup: dict) -> None:
    windows, _ = windowed_metrics(setup["paths"], PROMPTS, setup["spec"], setup["embedder"], setup["reference"],
                                  n_boot=0, max_frames_per_window=40)
    assert (windows["n_frames"] == 40).all() and windows["kad_logmel_ci_low"].isna().all()
    with pytest.raises(ValueError, match="one prompt per stream"):
        windowed_metrics(setup["paths"], PROMPTS[:1], setup["spec"], setup["embedder"], setup["reference"])
    long_spec = WindowSpec.from_seconds(10.0, 10.0, 0.5, SR)
    with pytest.raises(ValueError, match="shorter than one window"):
        windowed_metrics(setup["paths"], PROMPTS, long_spec, setup["embedder"], setup["reference"])

    class OtherPipeline:
        name, identity = "logmel", "something else"

    with pytest.raises(ValueError, match="different pipeline"):
        windowed_metrics(setup["paths"], PROMPTS, setup["spec"], OtherPipeline(), setup["reference"])


class SpectralTextEmbedder:
    """A deterministic stand-in with the CLAP embedder's interface (audio: 8-d projections of the
    log spectrum per 1 s frame; text: seeded vectors per prompt), to check the drift wiring."""

    name = "clap-test"
    identity = "clap-test|projection-v1"

    def __init__(self) -> None:
        self.proj = np.random.default_rng(0).standard_normal((8, 2001))

    def embed(self, audio: np.ndarray, sample_rate: int, *, source: str = "") -> np.ndarray:
        x = np.asarray(audio, dtype=np.float64).mean(axis=0)
        frames = x[: len(x) // 4000 * 4000].reshape(-1, 4000)
        spec = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6)  # (F, 2001)
        return (spec @ self.proj.T).astype(np.float32)

    def embed_text(self, prompts: list[str]) -> np.ndarray:
        return np.stack([np.random.default_rng(stable_hash("t", p)).standard_normal(8) for p in prompts])


def test_clap_score_uses_h3_definition(setup: dict) -> None:
    clap = SpectralTextEmbedder()
    windows, streams = windowed_metrics(setup["paths"], PROMPTS, setup["spec"], setup["embedder"], setup["reference"],
                                        clap=clap, n_boot=20)
    text = clap.embed_text(PROMPTS)
    for _, w in windows.iterrows():
        audio = {str(s): clap.embed(window_audio(p, w.start_s, w.end_s), SR) for s, p in enumerate(setup["paths"])}
        expected = clap_score(audio, {str(s): text[s] for s in range(2)}, identity=clap.identity)
        assert w["clap_score"] == pytest.approx(expected.value, abs=1e-12)
        rows = streams[streams["window_index"] == w["window_index"]].sort_values("stream")
        np.testing.assert_allclose(rows["clap_score"], [expected.per_clip["0"], expected.per_clip["1"]], atol=1e-12)
