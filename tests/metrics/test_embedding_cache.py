import numpy as np
import pytest
import soundfile as sf

from metrics.audio_io import AudioError
from metrics.embedders import create_embedder
from metrics.embedding_cache import (
    CACHE_ENV,
    AudioBatchError,
    EmbeddingCache,
    audio_content_hash,
    default_cache_dir,
    embed_files,
)

SR = 16000


def _noise(seed, seconds=1.0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


class _Counting:
    """Wraps an embedder and counts real embedding calls."""

    def __init__(self, inner, identity=None):
        self.inner, self.calls = inner, 0
        self.identity = identity or inner.identity

    def embed(self, audio, sample_rate, source="audio"):
        self.calls += 1
        return self.inner.embed(audio, sample_rate, source=source)


def test_cached_equals_uncached_and_hits_skip_the_embedder(tmp_path):
    emb = _Counting(create_embedder("logmel"))
    cache = EmbeddingCache(tmp_path / "cache")
    x = _noise(0)
    first = cache.embed(emb, x, SR)
    second = cache.embed(emb, x, SR)
    assert np.array_equal(first, emb.inner.embed(x, SR)) and np.array_equal(first, second)
    assert emb.calls == 1 and cache.stats.hits == 1 and cache.stats.misses == 1
    stored = list((tmp_path / "cache").rglob("*.npy"))
    assert len(stored) == 1 and np.load(stored[0]).dtype == np.float32
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_key_covers_identity_content_and_sample_rate(tmp_path):
    x = _noise(1)
    y = x.copy()
    y[100] += 1e-3
    assert audio_content_hash(x, SR) != audio_content_hash(y, SR)
    assert audio_content_hash(x, SR) != audio_content_hash(x, 22050)
    assert audio_content_hash(x, SR) == audio_content_hash(x.copy(), SR)
    cache = EmbeddingCache(tmp_path)
    base = create_embedder("logmel")
    a, b = _Counting(base), _Counting(base, identity=base.identity + "|hop=other")
    cache.embed(a, x, SR)
    cache.embed(b, x, SR)  # another pipeline identity: a miss, never a stale hit
    cache.embed(a, y, SR)  # other content: a miss
    assert a.calls == 2 and b.calls == 1


def test_corrupt_entries_are_recomputed(tmp_path):
    emb = _Counting(create_embedder("logmel"))
    cache = EmbeddingCache(tmp_path)
    x = _noise(2)
    good = cache.embed(emb, x, SR)
    path = cache.path(emb.identity, audio_content_hash(x, SR))
    path.write_bytes(b"\x93NUMPY garbage")
    again = cache.embed(emb, x, SR)
    assert np.array_equal(good, again) and emb.calls == 2 and cache.stats.repaired == 1


def test_bad_files_are_all_listed_and_good_ones_stay_cached(tmp_path):
    audio_dir, cache_dir = tmp_path / "audio", tmp_path / "run" / "embeddings"
    audio_dir.mkdir()
    sf.write(audio_dir / "a.wav", _noise(3), SR)
    sf.write(audio_dir / "b.wav", np.zeros(SR, np.float32), SR)  # silent
    (audio_dir / "c.wav").write_bytes(b"junk" * 100)  # unreadable
    sf.write(audio_dir / "d.wav", _noise(4), SR)
    emb = _Counting(create_embedder("logmel"))
    cache = EmbeddingCache(cache_dir)
    files = sorted(audio_dir.iterdir())
    with pytest.raises(AudioBatchError) as info:
        embed_files(files, emb, cache)
    msg = str(info.value)
    assert "2 audio file(s)" in msg and "b.wav" in msg and "silent" in msg and "c.wav" in msg and "unreadable" in msg
    assert "2 others were embedded and cached" in msg
    assert isinstance(info.value, AudioError)
    done = embed_files([audio_dir / "a.wav", audio_dir / "d.wav"], emb, cache)
    assert emb.calls == 2 and cache.stats.hits == 2  # nothing recomputed
    frames, groups = done.stacked()
    assert frames.shape[0] == groups.shape[0] and set(groups) == {0, 1}
    assert sorted(p.name for p in audio_dir.iterdir()) == ["a.wav", "b.wav", "c.wav", "d.wav"]


def test_cache_never_goes_next_to_the_audio(tmp_path):
    sf.write(tmp_path / "a.wav", _noise(5), SR)
    with pytest.raises(ValueError, match="nothing is written next to your audio"):
        embed_files([tmp_path / "a.wav"], create_embedder("logmel"), EmbeddingCache(tmp_path))


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    assert EmbeddingCache().root == tmp_path / "elsewhere"
    monkeypatch.delenv(CACHE_ENV)
    assert str(default_cache_dir()).endswith(".cache/live-music-bench/embeddings")
