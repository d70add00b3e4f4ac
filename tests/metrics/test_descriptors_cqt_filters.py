"""The in-memory memo of librosa's constant-Q filter bases: same chroma bitwise, built once,
copies handed out, unmemoisable arguments passed through."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.descriptors import cqt_filters
from metrics.descriptors.tonality import chroma_cqt
from tests.metrics.descriptor_audio import SAMPLE_RATE, c_major_scale_midis, sequence


def test_chroma_with_the_memo_equals_librosa_without_it_bitwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from librosa.core import constantq

    audio = sequence(c_major_scale_midis(), bpm=150.0)
    memo = cqt_filters.install()
    assert isinstance(memo, cqt_filters.FilterMemo)
    assert getattr(constantq, "__vqt_filter_fft") is memo
    assert cqt_filters.install() is memo  # idempotent
    assert memo.build.__module__ == "librosa.core.constantq"  # it wraps librosa's own builder
    chroma_cqt(audio, SAMPLE_RATE)  # fills the memo for this setting
    hits = memo.hits
    cached = [chroma_cqt(audio, SAMPLE_RATE).chroma for _ in range(2)]  # hits; a modified copy would differ
    assert memo.hits > hits

    monkeypatch.setattr(constantq, "__vqt_filter_fft", memo.build)  # librosa as shipped
    monkeypatch.setattr(cqt_filters, "install", lambda: None)
    plain = chroma_cqt(audio, SAMPLE_RATE).chroma
    for chroma in cached:
        np.testing.assert_array_equal(chroma, plain)


def test_the_memo_builds_once_and_hands_out_copies() -> None:
    calls = []

    def build(sr, freqs, window="hann"):
        calls.append(sr)
        return np.asarray(freqs, dtype=np.float64) * sr, 8, np.ones(3)

    memo = cqt_filters.FilterMemo(build)
    freqs = np.array([1.0, 2.0])
    first = memo(4.0, freqs, window="hann")
    first[0][:] = -1.0  # the caller modifies its result in place, as librosa's cqt does
    second = memo(4.0, freqs, window="hann")
    np.testing.assert_array_equal(second[0], [4.0, 8.0])
    assert calls == [4.0] and (memo.hits, memo.misses) == (1, 1)
    memo(4.0, freqs + 1.0, window="hann")  # other frequencies: another basis
    memo(4.0, freqs, window=("kaiser", 4.0))  # another window
    assert len(calls) == 3 and len(memo.entries) == 3


def test_unhashable_arguments_are_built_every_time_and_the_memo_is_bounded() -> None:
    calls = []

    def build(sr, window):
        calls.append(sr)
        return np.full(2, sr)

    memo = cqt_filters.FilterMemo(build, max_entries=2)
    memo(1.0, np.hanning)  # a callable window: no key
    memo(1.0, np.hanning)
    assert calls == [1.0, 1.0] and not memo.entries
    for sr in (1.0, 2.0, 3.0):
        memo(sr, "hann")
    assert len(memo.entries) == 2  # the oldest was dropped
    memo(1.0, "hann")
    assert calls[-1] == 1.0 and memo.misses == 4


def test_a_librosa_without_the_function_runs_uncached_with_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from librosa.core import constantq

    monkeypatch.delattr(constantq, "__vqt_filter_fft")
    monkeypatch.setattr(cqt_filters, "_warned", False)
    with caplog.at_level("WARNING", logger="metrics.descriptors.cqt_filters"):
        assert cqt_filters.install() is None
        assert cqt_filters.install() is None
    assert caplog.text.count("rebuilt on every call") == 1  # once per process, not once per clip
