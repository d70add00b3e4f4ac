"""Storage: atomic writes, tables with a schema version, audio streaming, cell completeness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.core.storage import (
    SCHEMA_VERSION, AudioWriter, RunStore, atomic_write_text, cell_dir_name, read_json, read_table, write_json,
    write_table,
)


def test_atomic_write_replaces_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1, "nan": float("nan")})
    assert read_json(path) == {"schema_version": SCHEMA_VERSION, "a": 1, "nan": None}
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert read_json(path)["a"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # no temporary file left behind
    atomic_write_text(path, "{}")
    assert read_json(path) == {}


def test_tables_round_trip_in_parquet_and_csv_with_schema_version(tmp_path):
    df = pd.DataFrame({"generator": ["a", "b"], "latency_ns": [1, 2], "ok": [True, False]})
    write_table(tmp_path, "blocks", df)
    back = read_table(tmp_path, "blocks")
    assert (back.schema_version == SCHEMA_VERSION).all()
    pd.testing.assert_frame_equal(back.drop(columns="schema_version"), df)
    csv = pd.read_csv(tmp_path / "blocks.csv")
    assert list(csv.latency_ns) == [1, 2] and "schema_version" in csv
    assert "schema_version" not in df  # the caller's frame is untouched


def test_audio_writer_appends_blocks_and_moves_into_place_on_close(tmp_path):
    path = tmp_path / "audio" / "repeat0.wav"
    writer = AudioWriter(path, sample_rate=8000, channels=2)
    blocks = [np.random.default_rng(i).standard_normal((2, 100)).astype(np.float32) for i in range(3)]
    assert [writer.write(b) for b in blocks] == [0, 100, 200]
    assert not path.exists()  # only the temporary file exists while streaming
    writer.close()
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 8000
    np.testing.assert_array_equal(audio.T, np.concatenate(blocks, axis=1))  # float32 WAV is exact
    with pytest.raises(ValueError, match="channels=2"):
        AudioWriter(tmp_path / "b.wav", 8000, 2).write(np.zeros((1, 10), np.float32))


def test_aborted_audio_leaves_nothing(tmp_path):
    writer = AudioWriter(tmp_path / "a.wav", 8000, 1)
    writer.write(np.zeros((1, 10), np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_cell_is_complete_only_when_ok_with_the_same_hash_and_all_tables(tmp_path):
    store = RunStore(tmp_path)
    folder = store.reset_cell("gen", "w")
    assert not store.is_complete("gen", "w", "h1")
    tables = {name: pd.DataFrame({"x": [1]}) for name in ("blocks", "phases", "streams", "flops")}
    store.write_cell_tables("gen", "w", tables)
    store.write_status("gen", "w", {"status": "failed", "cell_hash": "h1"})
    assert not store.is_complete("gen", "w", "h1")
    store.write_status("gen", "w", {"status": "ok", "cell_hash": "h1"})
    assert store.is_complete("gen", "w", "h1") and not store.is_complete("gen", "w", "h2")
    (folder / "flops.parquet").unlink()
    assert not store.is_complete("gen", "w", "h1")
    (folder / "junk").write_text("left by a killed attempt")
    store.reset_cell("gen", "w")
    assert list(folder.iterdir()) == []


def test_cell_folder_names_are_safe():
    assert cell_dir_name("lmdm-causal", "context-sweep-c2s") == "lmdm-causal__context-sweep-c2s"
    assert "/" not in cell_dir_name("a/b", "c d")


def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    from bench.core.storage import RunFolderBusy, RunLock

    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with RunLock(tmp_path):
        pass


def test_safe_name_never_leaves_its_folder(tmp_path) -> None:
    from bench.core.storage import safe_name

    for name in ("../../x", "..", ".", "", "a/b\\c", "<b>|x", "/etc/passwd"):
        safe = safe_name(name)
        assert safe and "/" not in safe and "\\" not in safe and safe not in (".", "..")
        assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    assert safe_name("lmdm-causal") == "lmdm-causal"  # ordinary names are unchanged
