"""The embedded data set: seeded plan, split by piece, key estimation, renderer pitch, WAV I/O,
and a tiny real build that is byte-identical when repeated."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")

from baselines.data.__main__ import main as data_main  # noqa: E402
from baselines.data.build import (  # noqa: E402
    BuildConfig,
    DatasetMissingError,
    build_dataset,
    load_dataset,
    read_wav,
    wav_bytes,
)
from baselines.data.corpus import COLLECTIONS, NoteEvent, plan_pieces, tune_type  # noqa: E402
from baselines.data.prompts import estimate_key, full_prompt, short_prompt, tempo_word  # noqa: E402
from baselines.data.render import ENSEMBLES, normalise, render_events  # noqa: E402

TINY = BuildConfig(clips=4, collections=("bach",))


@pytest.fixture(scope="module")
def tiny_builds(tmp_path_factory):
    """The same 4-clip build made twice, in two folders."""
    a = build_dataset(tmp_path_factory.mktemp("a") / "ds", TINY)
    b = build_dataset(tmp_path_factory.mktemp("b") / "ds", TINY)
    return a, b


def test_plan_is_seeded_interleaved_and_split_by_piece():
    plan = plan_pieces(0)
    assert plan == plan_pieces(0)
    assert [p.source for p in plan] != [p.source for p in plan_pieces(1)]
    assert [p.collection for p in plan[: len(COLLECTIONS)]] == [c.key for c in COLLECTIONS]  # round-robin
    assert sum(c.quota for c in COLLECTIONS) >= len(plan)
    for piece in plan:
        assert piece.split == ("reference" if piece.index % 10 == 9 else "train")
    sources = [p.source for p in plan]
    assert len(sources) == len(set(sources))  # a score is in one split only


def _scale(tonic: int, steps: list[int]) -> list[NoteEvent]:
    return [NoteEvent(0, float(i), 1.0 + (s == 0) * 2.0, tonic + s) for i, s in enumerate(steps)]


def test_estimate_key_on_scales_and_transposition():
    major = _scale(60, [0, 2, 4, 5, 7, 9, 11, 12, 7, 4, 0])
    minor = _scale(57, [0, 2, 3, 5, 7, 8, 11, 12, 7, 3, 0])  # A harmonic minor
    assert estimate_key(major) == "c major"
    assert estimate_key(major, transpose=7) == "g major"
    assert estimate_key(minor) == "a minor"
    assert estimate_key([]) == ""


def test_prompt_text():
    assert tempo_word(60) == "slow" and tempo_word(100) == "moderate" and tempo_word(200) == "fast"
    assert full_prompt("baroque chorale", "bach", "church organ", 84, "g minor") == (
        "baroque chorale by bach, church organ, moderate tempo, 84 bpm, g minor"
    )
    assert full_prompt("reel fiddle tune", "traditional", "banjo", 180, "") == (
        "reel fiddle tune, traditional, banjo, fast tempo, 180 bpm"
    )
    assert short_prompt("bach chorale", "organ") == "bach chorale, organ"
    assert tune_type("Golden Wedding Hornpipe") == "hornpipe" and tune_type("Bourree") == ""


def test_renderer_plays_the_transposed_pitch():
    note = [NoteEvent(0, 0.0, 4.0, 69)]  # A4 for 2 s at 120 bpm
    audio = render_events(note, ENSEMBLES["flute"], bpm=120, transpose=-12, velocities=[100],
                          sample_rate=16000, max_seconds=10.0)
    assert audio.dtype == np.float32 and audio.shape[0] == int(3.0 * 16000)  # 2 s + 1 s tail
    steady = audio[4000:28000].astype(np.float64)
    steady -= steady.mean()
    # fundamental period: the autocorrelation peak over lags of 160..800 Hz (all harmonics align there)
    ac = np.array([np.dot(steady[:-lag], steady[lag:]) for lag in range(20, 101)])
    f0_hz = 16000 / (20 + int(np.argmax(ac)))
    assert abs(f0_hz - 220.0) < 220.0 * 0.03  # A4 transposed an octave down
    again = render_events(note, ENSEMBLES["flute"], 120, -12, [100], 16000, 10.0)
    assert np.array_equal(audio, again)  # deterministic


def test_normalise_hits_rms_or_peak_limit():
    x = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.01
    y, gain = normalise(x, target_rms=0.15, peak_limit=0.98)
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(0.15, rel=1e-4)
    spiky = np.zeros(1000, dtype=np.float32)
    spiky[10] = 0.5
    z, _ = normalise(spiky, target_rms=0.15, peak_limit=0.98)
    assert np.max(np.abs(z)) == pytest.approx(0.98, rel=1e-6)
    with pytest.raises(ValueError, match="silent"):
        normalise(np.zeros(10, dtype=np.float32), 0.1, 0.9)


def test_wav_roundtrip(tmp_path):
    x = (np.sin(np.arange(1000) * 0.1) * 0.5).astype(np.float32)
    data = wav_bytes(x, 16000)
    assert data == wav_bytes(x, 16000)
    (tmp_path / "x.wav").write_bytes(data)
    y, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000 and np.max(np.abs(y - x)) <= 1.0 / 32767


def test_tiny_build_is_byte_identical_and_consistent(tiny_builds):
    a, b = tiny_builds
    assert not a.skipped_existing and not b.skipped_existing
    assert (a.root / "manifest.json").read_bytes() == (b.root / "manifest.json").read_bytes()
    clips = a.manifest["clips"]
    assert len(clips) == 4
    for clip in clips:
        data = (a.root / clip["file"]).read_bytes()
        assert data == (b.root / clip["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == clip["sha256"]
        audio, rate = read_wav(a.root / clip["file"])
        assert rate == 16000 and audio.shape[0] == TINY.clip_samples == clip["samples"]
        assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > TINY.silence_rms
        assert clip["collection"] == "bach" and clip["prompt"].startswith("baroque chorale by bach, ")
        assert clip["short_prompt"].startswith("bach chorale, ")
        assert ENSEMBLES[clip["ensemble"]].prompt in clip["prompt"]
        assert f"{clip['bpm']} bpm" in clip["prompt"]
    assert "GPL-2" in (a.root / "LICENSE.md").read_text()
    assert load_dataset(a.root).verify() == []


def test_same_config_is_not_rebuilt_and_corruption_is_detected(tiny_builds, tmp_path):
    a, _ = tiny_builds
    again = build_dataset(a.root, TINY)
    assert again.skipped_existing
    assert data_main(["verify", "--out", str(a.root)]) == 0
    clip = a.manifest["clips"][0]
    path = a.root / clip["file"]
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-2] + b"\x00\x01")
        assert load_dataset(a.root).verify() == [clip["file"]]
        assert data_main(["verify", "--out", str(a.root)]) == 1
    finally:
        path.write_bytes(original)


def test_missing_dataset_names_the_build_command(tmp_path):
    with pytest.raises(DatasetMissingError, match="python -m baselines.data build"):
        load_dataset(tmp_path / "nothing")


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="unknown collection"):
        BuildConfig(collections=("jazz",))
    with pytest.raises(ValueError, match="clips"):
        BuildConfig(clips=0)


def test_manifest_records_its_inputs(tiny_builds):
    a, _ = tiny_builds
    manifest = json.loads((a.root / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 0 and manifest["config"]["collections"] == ["bach"]
    assert len(manifest["sources"]["soundfont_sha256"]) == 64
    assert manifest["sources"]["versions"]["music21"] != "not installed"
