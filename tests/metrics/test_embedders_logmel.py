import numpy as np
import pytest

from bench.core.errors import ConfigError
from metrics.audio_io import AudioError
from metrics.embedders import DEFAULT_EMBEDDER, EMBEDDERS, create_embedder
from metrics.embedders.base import resample
from metrics.embedders.logmel import HOP, N_FFT, LogMelEmbedder, mel_filterbank, power_frames

SR = 16000


def _tone(freq, seconds=1.0, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_front_end_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(SR, N_FFT, 64, 0.0, 8000.0)
    theirs = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=64, fmin=0.0, fmax=8000.0, htk=True, norm=None)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    x = np.random.default_rng(0).standard_normal(SR)
    spec = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP, center=False, window="hann")) ** 2
    np.testing.assert_allclose(power_frames(x, N_FFT, HOP), spec.T, rtol=1e-9, atol=1e-9)


def test_frames_shape_dtype_determinism_and_identity():
    emb = create_embedder()
    assert isinstance(emb, LogMelEmbedder) and DEFAULT_EMBEDDER == "logmel"
    x = _tone(440, seconds=2.0)
    a, b = emb.embed(x, SR), emb.embed(x.copy(), SR)
    assert a.shape == (1 + (2 * SR - N_FFT) // HOP, 64) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert emb.identity.startswith("logmel|") and "no weights" in emb.identity and "loudness=none" in emb.identity
    assert emb.pretrained is False and emb.loaded


def test_channels_are_averaged_and_other_rates_are_resampled():
    emb = create_embedder("logmel")
    mono = _tone(1000)
    assert np.array_equal(emb.embed(np.stack([mono, mono]), SR), emb.embed(mono, SR))
    at_32k = emb.embed(_tone(1000, sr=32000), 32000)
    band = np.argmax(emb.embed(mono, SR).mean(axis=0))
    assert np.argmax(at_32k.mean(axis=0)) == band
    assert abs(at_32k.shape[0] - emb.embed(mono, SR).shape[0]) <= 1


def test_resample_is_exact_identity_at_the_same_rate_and_polyphase_otherwise():
    x = np.random.default_rng(1).standard_normal((2, 4800))
    assert np.array_equal(resample(x, 48000, 48000), x)
    assert resample(x, 48000, 16000).shape == (2, 1600)


def test_bad_audio_is_refused():
    emb = create_embedder()
    with pytest.raises(AudioError, match="too short for logmel"):
        emb.embed(_tone(440, seconds=0.05), SR)
    x = _tone(440)
    x[10] = np.inf
    with pytest.raises(AudioError, match="NaN/inf"):
        emb.embed(x, SR)
    with pytest.raises(AudioError, match="silent"):
        emb.embed(np.zeros(SR, np.float32), SR)


def test_registry_lookup_is_lazy_and_helpful():
    assert {"logmel", "clap-laion-music", "vggish", "pann-cnn14-16k", "encodec-24khz"} <= set(EMBEDDERS.names())
    with pytest.raises(ConfigError, match="did you mean 'logmel'"):
        create_embedder("logmels")


def test_scores_are_named_after_the_embedder():
    from metrics.quality import report_key, score_embeddings

    emb = create_embedder("logmel")
    rng = np.random.default_rng(0)
    ref = np.concatenate([emb.embed(_tone(f, seconds=1.0) + 0.01 * rng.standard_normal(SR).astype(np.float32), SR)
                          for f in (220, 330, 440)])
    ev = np.concatenate([emb.embed(_tone(f, seconds=1.0) + 0.01 * rng.standard_normal(SR).astype(np.float32), SR)
                         for f in (247, 370, 494)])
    groups_r = np.repeat(np.arange(3), ref.shape[0] // 3)
    out = score_embeddings(ref, ev, embedder=emb, groups_reference=groups_r,
                           groups_evaluated=np.repeat(np.arange(3), ev.shape[0] // 3), n_boot=20)
    assert "fad_logmel" in out and "kad_logmel" in out and "fad" not in out
    assert out["embedder_pretrained"] is False and out["embedder_identity"] == emb.identity
    assert out["fad_logmel_detail"]["ci"]["unit"] == "clip"
    assert report_key("kad", "clap-laion-music") == "kad_clap_laion_music"


def test_scoring_the_same_audio_twice_gives_identical_numbers(tmp_path):
    from metrics.embedding_cache import EmbeddingCache
    from metrics.quality import score_embeddings

    rng = np.random.default_rng(7)
    clips = [(_tone(f, seconds=1.5) + 0.02 * rng.standard_normal(int(1.5 * SR)).astype(np.float32)) for f in
             (200, 300, 400, 500)]

    def run(cache):
        emb = create_embedder("logmel")
        frames = [cache.embed(emb, c, SR) if cache else emb.embed(c, SR) for c in clips]
        groups = np.concatenate([np.full(f.shape[0], i) for i, f in enumerate(frames)])
        allf = np.concatenate(frames)
        half = groups < 2
        return score_embeddings(allf[half], allf[~half], embedder=emb, groups_reference=groups[half],
                                groups_evaluated=groups[~half], n_boot=50, seed=1)

    first, second, cached = run(None), run(None), run(EmbeddingCache(tmp_path))
    assert first == second == cached
