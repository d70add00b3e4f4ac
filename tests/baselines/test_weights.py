import shutil

import pytest

from baselines import weights
from baselines.weights import resolve_weights
from bench.contract import ConfigError


def test_empty_means_seeded_init():
    assert resolve_weights("dit.weights", "", "outpaint") == ""


def test_builtin_resolves_per_regime_and_verifies_the_hash():
    for regime in ("outpaint", "lmdm-encdec", "lmdm-causal", "lmm"):
        path = resolve_weights("dit.weights", "builtin:cpu", regime)
        assert path.endswith(f"cpu/{regime}.safetensors")


def test_a_changed_builtin_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(weights.CHECKPOINTS_DIR / "cpu", tmp_path / "cpu")
    with open(tmp_path / "cpu" / "lmdm-causal.safetensors", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    monkeypatch.setattr(weights, "CHECKPOINTS_DIR", tmp_path)
    assert resolve_weights("dit.weights", "builtin:cpu", "lmdm-encdec")  # untouched files still load
    with pytest.raises(ConfigError, match="dit.weights.*sha256"):
        resolve_weights("dit.weights", "builtin:cpu", "lmdm-causal")


def test_unknown_builtin_and_missing_regime_name_the_field():
    with pytest.raises(ConfigError, match="lmm.weights.*no built-in checkpoints named 'nope'.*cpu"):
        resolve_weights("lmm.weights", "builtin:nope", "lmm")
    with pytest.raises(ConfigError, match="no built-in checkpoint for regime 'noise'"):
        resolve_weights("dit.weights", "builtin:cpu", "noise")


def test_a_directory_holds_one_file_per_regime(tmp_path):
    assert resolve_weights("dit.weights", str(tmp_path), "lmdm-encdec") == str(tmp_path / "lmdm-encdec.safetensors")
    assert resolve_weights("dit.weights", str(tmp_path / "x.safetensors"), "outpaint") == str(tmp_path / "x.safetensors")
