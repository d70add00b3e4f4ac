import numpy as np
import pytest

from metrics.quality.clap_score import PairingError, clap_score, clap_score_audio


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_pairs_by_id_and_keeps_per_clip_values():
    rng = np.random.default_rng(0)
    text = {cid: _unit(rng.standard_normal(8)) for cid in ("c", "a", "b")}
    audio = {"b": _unit(rng.standard_normal((2, 8))), "a": _unit(rng.standard_normal((1, 8))),
             "c": _unit(rng.standard_normal((3, 8)))}
    result = clap_score(audio, text, identity="clap|test")
    for cid in "abc":
        assert result.per_clip[cid] == pytest.approx(float((audio[cid] @ text[cid]).mean()))
    assert result.value == pytest.approx(np.mean(list(result.per_clip.values())))
    assert -1.0 <= result.value <= 1.0 and result.n_clips == 3 and result.identity == "clap|test"
    # the same clip with its own prompt scores 1; swapped prompts change the score (pairing matters)
    assert clap_score({"x": text["a"][None]}, {"x": text["a"]}, identity="i").value == pytest.approx(1.0)
    swapped = clap_score(audio, {"a": text["b"], "b": text["c"], "c": text["a"]}, identity="i")
    assert swapped.value != pytest.approx(result.value)


def test_unpaired_ids_are_listed_both_ways():
    a = {"1": np.ones((1, 4)), "2": np.ones((1, 4))}
    t = {"2": np.ones(4), "3": np.ones(4), "4": np.ones(4)}
    with pytest.raises(PairingError, match=r"2 prompt\(s\) without audio: 3, 4; 1 audio clip\(s\) without a prompt: 1"):
        clap_score(a, t, identity="i")


def test_bootstrap_over_clips_is_seeded():
    rng = np.random.default_rng(1)
    ids = [f"clip{i:02d}" for i in range(30)]
    audio = {i: _unit(rng.standard_normal((1, 16))) for i in ids}
    text = {i: _unit(rng.standard_normal(16)) for i in ids}
    r1 = clap_score(audio, text, identity="i", n_boot=200, seed=4)
    r2 = clap_score(audio, text, identity="i", n_boot=200, seed=4)
    assert r1.ci == r2.ci and r1.ci.unit == "clip" and r1.ci.low <= r1.value <= r1.ci.high


class _FakeClap:
    """Stands in for a loaded CLAP embedder: counts calls, embeds deterministically."""

    identity = "fake-clap|ckpt_sha256=0"

    def __init__(self):
        self.audio_calls = 0

    def embed(self, audio, sample_rate, source="audio"):
        self.audio_calls += 1
        return _unit(np.array([[float(np.mean(audio)), 1.0, 0.5]]))

    def embed_text(self, prompts):
        return _unit(np.array([[len(p), 1.0, 0.5] for p in prompts], dtype=np.float64))


def test_pairing_is_checked_before_any_audio_is_embedded():
    fake = _FakeClap()
    audio = {"a": (np.full(100, 0.1, np.float32), 16000)}
    with pytest.raises(PairingError, match="without a prompt: a"):
        clap_score_audio(fake, audio, {"b": "piano"})
    assert fake.audio_calls == 0
    result = clap_score_audio(fake, audio, {"a": "piano"})
    assert fake.audio_calls == 1 and result.identity == fake.identity
