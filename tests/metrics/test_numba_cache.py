"""metrics.numba_cache: librosa's numba cache is compiled by one process at a time.

Two processes that import librosa at once on a cold numba cache corrupt it (every later process
that loads it dies with SIGSEGV); the drift stage's workers and pytest-xdist's workers did so on a
fresh install. Without the lock, the slow test below corrupted its cache in 4 of 4 tries here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from metrics import numba_cache

ROOT = Path(__file__).resolve().parents[2]

# loads librosa the plain way (no lock) from the cache the racers left, and uses what they compiled
PLAIN_USER = textwrap.dedent("""
    import numpy as np, librosa
    x = np.random.default_rng(0).standard_normal(22050 * 4).astype(np.float32)
    env = librosa.onset.onset_strength(y=x, sr=22050).astype(np.float64)
    print(len(librosa.onset.onset_detect(onset_envelope=env, sr=22050)), len(librosa.beat.beat_track(y=x, sr=22050)[1]))
""")
LOCKED_USER = "from metrics import numba_cache; numba_cache.librosa()"
# prints when librosa's import began in this process (a thread watches sys.modules)
WATCHED_USER = textwrap.dedent("""
    import sys, threading, time
    seen = []
    def watch():
        while "librosa" not in sys.modules:
            time.sleep(0.005)
        seen.append(time.time())
    threading.Thread(target=watch, daemon=True).start()
    from metrics import numba_cache
    numba_cache.librosa()
    time.sleep(0.1)
    print(seen[0])
""")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def test_the_first_librosa_import_waits_for_another_process_holding_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the child's temporary folder is tmp_path too
    lock = numba_cache.lock_path()
    assert lock.parent == tmp_path and str(os.getuid()) in lock.name  # one lock file per user
    with numba_cache.exclusive(lock):
        child = subprocess.Popen([sys.executable, "-c", WATCHED_USER], env=_env(TMPDIR=str(tmp_path)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3.0)  # the child starts and would begin importing librosa within this if it did not wait
        released_at = time.time()
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert float(out.strip().splitlines()[-1]) >= released_at  # its import of librosa began after the release


def test_a_lock_file_that_cannot_be_opened_warns_and_does_not_stop_the_caller(tmp_path, caplog):
    (tmp_path / "a-file").write_text("")
    ran = []
    with caplog.at_level("WARNING", logger="metrics.numba_cache"):
        with numba_cache.exclusive(tmp_path / "a-file" / "x.lock"):  # its folder is a file
            ran.append(True)
    assert ran == [True] and "cannot open the lock file" in caplog.text


def test_librosa_is_returned_once_ready_and_the_warm_up_clip_has_onsets():
    module = numba_cache.librosa()
    assert numba_cache.librosa() is module and module.__name__ == "librosa"
    clip = numba_cache.warm_up_clip()
    assert clip.dtype.name == "float32" and clip.shape == (int(numba_cache.WARM_SAMPLE_RATE * numba_cache.WARM_DURATION_S),)
    onsets = module.onset.onset_detect(y=clip, sr=numba_cache.WARM_SAMPLE_RATE, units="time")
    assert 4 <= len(onsets) <= 8  # a click every 0.5 s over 3 s


@pytest.mark.slow
def test_two_processes_compiling_a_cold_cache_at_once_leave_it_usable(tmp_path):
    """~40 s on 2 cores: both racers compile librosa's numba functions into an empty cache."""
    env = _env(NUMBA_CACHE_DIR=str(tmp_path / "numba"), TMPDIR=str(tmp_path))
    racers = [subprocess.Popen([sys.executable, "-c", LOCKED_USER], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for racer in racers:
        _, err = racer.communicate(timeout=600)
        assert racer.returncode == 0, err
    assert list((tmp_path / "numba").rglob("*.nbi"))  # the cache was written
    user = subprocess.run([sys.executable, "-c", PLAIN_USER], env=env, capture_output=True, text=True, timeout=600)
    assert user.returncode == 0, f"exit {user.returncode} (-11: SIGSEGV, a corrupted numba cache): {user.stderr}"
