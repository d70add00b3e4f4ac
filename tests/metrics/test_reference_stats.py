import numpy as np
import pytest
import soundfile as sf

from metrics.audio_io import AudioError
from metrics.embedders import create_embedder
from metrics.embedding_cache import EmbeddingCache
from metrics.quality.fad import fad
from metrics.quality.frechet import InsufficientDataError
from metrics.reference_stats import (
    ReferenceMismatchError,
    compute_reference_stats,
    fad_against_reference,
    fadtk_models,
    load_fadtk_stats,
    load_reference_stats,
    save_reference_stats,
)

SR = 16000


def _render(folder, n_clips, seed, seconds=2.0, sr=SR):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n_clips):
        f0 = rng.uniform(110, 880)
        clip = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.shape[0])
        sf.write(folder / f"clip{i:02d}.wav", clip.astype(np.float32), sr)
    return folder


def test_compute_save_load_round_trip_and_fad_against_it(tmp_path):
    emb = create_embedder("logmel")
    ref_dir = _render(tmp_path / "ref", 3, seed=0)  # 3 x 61 frames >= 65
    stats, frames, groups = compute_reference_stats(ref_dir, emb, EmbeddingCache(tmp_path / "cache"),
                                                    return_embeddings=True)
    assert stats.n_clips == 3 and stats.n_frames == frames.shape[0] and stats.identity == emb.identity
    assert [f for f, _ in stats.files] == ["clip00.wav", "clip01.wav", "clip02.wav"]
    path = save_reference_stats(stats, tmp_path / "run" / "ref_stats.npz")
    back = load_reference_stats(path, expected_identity=emb.identity)
    np.testing.assert_array_equal(back.mu, stats.mu)
    np.testing.assert_array_equal(back.cov, stats.cov)
    assert back.files == stats.files and back.n_frames == stats.n_frames
    ev_frames = np.concatenate([emb.embed(np.random.default_rng(i).standard_normal(2 * SR).astype(np.float32) * 0.1, SR)
                                for i in range(3)])
    direct = fad(frames, ev_frames).value
    assert fad_against_reference(back, ev_frames, identity=emb.identity).value == pytest.approx(direct, rel=1e-9)


def test_statistics_of_another_pipeline_are_refused(tmp_path):
    emb = create_embedder("logmel")
    stats = compute_reference_stats(_render(tmp_path / "ref", 3, seed=1), emb)
    path = save_reference_stats(stats, tmp_path / "s.npz")
    with pytest.raises(ReferenceMismatchError, match="recompute"):
        load_reference_stats(path, expected_identity=emb.identity + "|changed")
    with pytest.raises(ReferenceMismatchError):
        fad_against_reference(stats, np.zeros((70, 64)), identity="other")


def test_too_few_clips_and_mixed_rates(tmp_path):
    emb = create_embedder("logmel")
    with pytest.raises(InsufficientDataError, match=r"from 1 clip\(s\).*add at least 1 more clip"):
        compute_reference_stats(_render(tmp_path / "one", 1, seed=2), emb)
    mixed = _render(tmp_path / "mixed", 3, seed=3)
    _render(tmp_path / "mixed_hi", 1, seed=4, sr=22050)
    (tmp_path / "mixed_hi" / "clip00.wav").rename(mixed / "zz_other_rate.wav")
    with pytest.raises(AudioError, match="mismatched sample rates"):
        compute_reference_stats(mixed, emb)


def test_fadtk_statistics_format(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((200, 4))
    path = tmp_path / "fma_pop.npz"
    np.savez(path, **{"vggish.mu": a.mean(0), "vggish.cov": np.cov(a, rowvar=False),
                      "clap-laion-music.mu": np.zeros(3), "clap-laion-music.cov": np.eye(3)})
    assert fadtk_models(path) == ["clap-laion-music", "vggish"]
    stats = load_fadtk_stats(path, "vggish")
    assert stats.identity == "fadtk:fma_pop.npz:vggish" and stats.n_frames == 0
    with pytest.raises(KeyError, match="it has: clap-laion-music, vggish"):
        load_fadtk_stats(path, "encodec-emb")
    ev = rng.standard_normal((100, 4))
    with pytest.raises(ReferenceMismatchError, match="allow_published=True"):
        fad_against_reference(stats, ev, identity="vggish|ours")
    published = fad_against_reference(stats, ev, identity="vggish|ours", allow_published=True)
    assert published.value == pytest.approx(fad(a, ev).value, rel=1e-9)
    with pytest.raises(FileNotFoundError, match="fetch fadtk-fma-pop-stats"):
        load_fadtk_stats(tmp_path / "missing.npz", "vggish")
