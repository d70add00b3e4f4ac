import shutil

import pytest
import torch
from safetensors.torch import save_file

from baselines import weights
from baselines.weights import load_checkpoint, resolve_weights
from bench.core.errors import ConfigError


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


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))


def test_load_checkpoint_loads_a_fitting_file_and_returns_the_extras(tmp_path):
    source = _net()
    path = tmp_path / "net.safetensors"
    save_file({**source.state_dict(), "extra": torch.arange(3)}, str(path))
    target = _net()
    extras = load_checkpoint("x.weights", str(path), target, "the test net", extra_keys=("extra", "absent"))
    assert list(extras) == ["extra"] and torch.equal(extras["extra"], torch.arange(3))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))


def test_load_checkpoint_names_every_problem_and_the_fix(tmp_path):
    state = _net().state_dict()
    state.pop("1.bias")
    state["0.weight"] = torch.zeros(5, 3)
    state["1.weight"] = torch.zeros(4, dtype=torch.int32)
    state["surplus"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ConfigError) as err:
        load_checkpoint("x.weights", str(path), _net(), "the test net")
    message = str(err.value)
    for words in ("x.weights", "does not match the test net", "missing keys: 1.bias", "unexpected keys: surplus",
                  "wrong shapes: 0.weight (5, 3) vs model (4, 3)", "wrong dtypes: 1.weight torch.int32",
                  "set x.weights='' for seeded weights"):
        assert words in message


def test_load_checkpoint_refuses_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match=r"x.weights: checkpoint .* does not exist.*x.weights=''"):
        load_checkpoint("x.weights", str(tmp_path / "missing.safetensors"), _net(), "the test net")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="x.weights: cannot read .* as safetensors"):
        load_checkpoint("x.weights", str(garbage), _net(), "the test net")
