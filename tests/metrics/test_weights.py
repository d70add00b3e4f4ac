import hashlib
import json

import numpy as np
import pytest
import torch

from metrics import weights as W


def _entry(tmp_path, content: bytes, **hashes):
    src = tmp_path / "source.bin"
    src.write_bytes(content)
    return W.WeightEntry(
        name="thing", file_name="sub/thing.bin", url=src.as_uri(), licence="test", hash_source="test", **hashes
    )


def test_manifest_is_complete_and_never_invents_hashes():
    manifest = W.load_manifest()
    assert {"clap-music-audioset", "roberta-base-config", "roberta-base-vocab", "roberta-base-merges", "vggish",
            "pann-cnn14-16k", "encodec-24khz"} <= set(manifest)
    for e in manifest.values():
        assert e.url.startswith("https://") and e.licence and e.hash_source
        if e.sha256 is not None:
            assert len(e.sha256) == 64 and int(e.sha256, 16) >= 0
        if e.sha256_prefix is not None:
            assert e.file_name.split("-")[-1].startswith(e.sha256_prefix)  # torch.hub naming
        if not e.hash_known:
            assert "none found" in e.hash_source
    clap = manifest["clap-music-audioset"]
    assert clap.file_name == "music_audioset_epoch_15_esc_90.14.pt" and clap.size == 2352471003


def test_verify_reports_ok_mismatch_and_unknown(tmp_path):
    content = b"weights" * 1000
    sha = hashlib.sha256(content).hexdigest()
    f = tmp_path / "w.bin"
    f.write_bytes(content)
    assert W.verify_file(_entry(tmp_path, content, sha256=sha, size=len(content)), f).status == "ok"
    assert W.verify_file(_entry(tmp_path, content, sha256_prefix=sha[:8]), f).status == "ok"
    assert W.verify_file(_entry(tmp_path, content, md5=hashlib.md5(content).hexdigest()), f).status == "ok"
    bad = W.verify_file(_entry(tmp_path, content, sha256="0" * 64), f)
    assert bad.status == "mismatch" and sha in bad.message
    short = W.verify_file(_entry(tmp_path, content, size=len(content) + 1), f)
    assert short.status == "mismatch" and "bytes" in short.message
    unknown = W.verify_file(_entry(tmp_path, content), f)
    assert unknown.status == "unknown-hash" and "not verified" in unknown.message
    sidecar = json.loads((tmp_path / ("w.bin" + W.SIDECAR_SUFFIX)).read_text())
    assert sidecar["sha256"] == sha and sidecar["size"] == len(content)


def test_fetch_downloads_atomically_and_verifies(tmp_path):
    content = b"payload" * 500
    good = _entry(tmp_path, content, sha256=hashlib.sha256(content).hexdigest())
    result = W.fetch(good, tmp_path / "weights")
    assert result.status == "ok" and (tmp_path / "weights" / "sub" / "thing.bin").read_bytes() == content
    wrong = _entry(tmp_path, content, sha256="1" * 64)
    with pytest.raises(W.ChecksumError, match="failed verification"):
        W.fetch(wrong, tmp_path / "other")
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file()]


def test_missing_and_corrupt_files_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(W.WEIGHTS_ENV, str(tmp_path))
    entry = W.get_entry("encodec-24khz")
    with pytest.raises(W.MissingWeightsError) as info:
        W.locate(entry)
    msg = str(info.value)
    assert str(tmp_path / "encodec_24khz-d7cc33bc.th") in msg and W.WEIGHTS_ENV in msg
    assert "python -m metrics.weights fetch encodec-24khz" in msg and entry.url in msg
    (tmp_path / "encodec_24khz-d7cc33bc.th").write_bytes(b"corrupt")
    with pytest.raises(W.ChecksumError, match="sha256 prefix .* expected d7cc33bc.*fetch encodec-24khz"):
        W.require_verified(entry)
    custom = tmp_path / "my_finetune.th"
    custom.write_bytes(b"anything")
    path, sha, status = W.resolve_weights(entry, custom)
    assert status == "custom" and sha == hashlib.sha256(b"anything").hexdigest()
    with pytest.raises(KeyError, match="did you mean 'vggish'"):
        W.get_entry("vgish")


def test_safe_loading_allows_numpy_scalars_but_not_garbage(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": np.int64(3), "score": np.float64(0.9), "state_dict": {"w": torch.ones(2)}}, path)
    loaded = W.load_torch_file(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:50])
    with pytest.raises(W.CheckpointError, match="truncated"):
        W.load_torch_file(tmp_path / "trunc.pt")


def test_numpy_scalars_load_whichever_numpy_saved_them(tmp_path):
    # a pickle names numpy's builders by the saving numpy's module (numpy.core before 2.0,
    # numpy._core since); the other numpy's checkpoints (LAION's were saved with numpy 1.x) must load
    # too. The legacy format is one pickle stream, so the names can be rewritten in place.
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": np.int64(3), "table": np.arange(3.0), "w": torch.ones(2)}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    here, other = (b"numpy._core.", b"numpy.core.") if b"numpy._core.multiarray" in data else (b"numpy.core.", b"numpy._core.")
    (tmp_path / "other.pt").write_bytes(data.replace(here + b"multiarray", other + b"multiarray"))
    assert other + b"multiarray\nscalar" in (tmp_path / "other.pt").read_bytes()
    for name in ("ckpt.pt", "other.pt"):
        loaded = W.load_torch_file(tmp_path / name)
        assert loaded["epoch"] == 3 and loaded["table"].tolist() == [0.0, 1.0, 2.0]
        assert torch.equal(loaded["w"], torch.ones(2))


def test_cli(tmp_path, capsys):
    assert W.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "clap-music-audioset" in out and "licence" in out
    assert W.main(["verify", "vggish", "--dir", str(tmp_path)]) == 1
    assert "vggish: missing" in capsys.readouterr().out
    assert W.main(["verify", "nonsense", "--dir", str(tmp_path)]) == 2
