"""The CLAP path runs laion-clap's real code offline.

A randomly initialised CLAP model (HTSAT-base audio tower, as the default checkpoint uses; a
ONE-layer RoBERTa text tower to keep the checkpoint at ~330 MB instead of ~760 MB) is built by
laion-clap's own ``CLAP_Module`` in a subprocess whose Hugging Face cache is a temporary folder
holding a locally written ``roberta-base`` (config, a byte-level BPE vocabulary, random weights).
It is saved as a checkpoint shaped like the published ones (``state_dict`` with ``module.``
prefixes and numpy scalars beside it), reloaded with laion-clap's ``load_ckpt``, and embeds fixed
audio windows and prompts with laion-clap's API. In this process, :class:`ClapEmbedder` loads
the same checkpoint through the loader users use (no hub, no HF cache) and must reproduce those
embeddings. Sockets are disabled in both processes.
"""

from __future__ import annotations

import os

# laion-clap (also imported by frechet-audio-distance) must never reach for the hub (see metrics.embedders.base)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.embedders.clap import (
    POSITION_IDS_KEY,
    ClapEmbedder,
    check_tokenizer,
    clap_windows,
    load_clap_state,
    quantise_int16,
    repeat_pad,
)
from metrics.weights import ChecksumError, CheckpointError, MissingWeightsError

REPO = Path(__file__).resolve().parents[2]
SR = 48_000
PROMPTS = ["a solo piano playing a slow melody", "loud electric guitar", "bach chorale, organ"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The 2-core test machine is shared by several processes; oversubscribed intra-op threads make
    these small CPU forwards 10-20x slower (measured on EnCodec's LSTM). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- local RoBERTa files
def byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (written here from the scheme:
    printable Latin-1 bytes map to themselves, the others to code points from 256 upwards)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def write_roberta_dir(folder: Path, *, with_weights: bool) -> Path:
    """A small but real roberta-base stand-in: config (hidden 768 as laion-clap requires, one
    layer), byte-level vocab.json/merges.txt, and optionally random weights."""
    from transformers import RobertaConfig, RobertaModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for sym in byte_level_alphabet():
        vocab.setdefault(sym, len(vocab))
    merges = ["Ġ a", "Ġ s", "Ġ p", "i n", "e r", "o r"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = RobertaConfig(
        vocab_size=len(vocab), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
        bos_token_id=0, pad_token_id=1, eos_token_id=2,
    )
    if with_weights:
        torch.manual_seed(0)
        RobertaModel(config).save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    return folder


LAION_SIDE = textwrap.dedent(
    """
    import json, socket, sys
    import numpy as np, torch

    def _no_network(*a, **k):
        raise OSError("network disabled in this test")
    socket.socket.connect = _no_network
    socket.create_connection = _no_network

    out = sys.argv[1]
    import laion_clap

    torch.manual_seed(1234)
    api = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-base", device="cpu")
    # saved the way a current transformers saves it: no text_branch.embeddings.position_ids
    state = {"module." + k: v for k, v in api.model.state_dict().items()}
    torch.save({"epoch": np.int64(15), "best_metric": np.float64(0.5), "state_dict": state}, out + "/random_clap.pt")
    report = {}
    try:
        api.load_ckpt(out + "/random_clap.pt", verbose=False)  # fails before touching the model
        report["laion_load_ckpt"] = "loaded"
    except KeyError as exc:
        report["laion_load_ckpt"] = "KeyError: " + str(exc)
    windows = np.load(out + "/windows.npy")
    audio = api.get_audio_embedding_from_data(windows, use_tensor=False)
    prompts = json.load(open(out + "/prompts.json"))
    text = api.get_text_embedding(prompts, use_tensor=False)
    np.save(out + "/laion_audio.npy", audio)
    np.save(out + "/laion_text.npy", text)
    json.dump(report, open(out + "/report.json", "w"))
    """
)


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    return (tone + 0.05 * rng.standard_normal(t.shape[0])).astype(np.float32)


@pytest.fixture(scope="module")
def no_network():
    original = socket.socket.connect

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    socket.socket.connect = refuse
    yield
    socket.socket.connect = original


@pytest.fixture(scope="module")
def laion_run(tmp_path_factory, no_network):
    """Build, save and embed with laion-clap's own API in a subprocess (see module docstring)."""
    root = tmp_path_factory.mktemp("clap")
    hf_home = root / "hf"
    snapshot = hf_home / "hub" / "models--roberta-base" / "snapshots" / ("0" * 40)
    write_roberta_dir(snapshot, with_weights=True)
    (hf_home / "hub" / "models--roberta-base" / "refs").mkdir(parents=True)
    (hf_home / "hub" / "models--roberta-base" / "refs" / "main").write_text("0" * 40)
    clip = _clip(15.0)  # 15 s: one full window and a 5 s final window
    raw = clap_windows(clip.astype(np.float64), hop_samples=10 * SR, min_last_samples=5 * SR)
    np.save(root / "windows.npy", raw.astype(np.float32))
    (root / "prompts.json").write_text(json.dumps(PROMPTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", LAION_SIDE, str(root)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "root": root, "text_dir": snapshot, "clip": clip, "raw_windows": raw,
        "audio": np.load(root / "laion_audio.npy"), "text": np.load(root / "laion_text.npy"),
        "report": json.loads((root / "report.json").read_text()),
    }


@pytest.fixture(scope="module")
def loaded(laion_run):
    """The user-facing loader on the checkpoint laion-clap 1.1.7 itself cannot load."""
    emb = ClapEmbedder(checkpoint="random_clap.pt")
    emb.load(laion_run["root"] / "random_clap.pt", text_dir=laion_run["text_dir"])
    return emb, emb.embed(laion_run["clip"], SR)


@pytest.mark.slow
def test_embeddings_equal_laion_api_on_the_same_model(laion_run, loaded):
    embedder, audio = loaded  # (windows, 512)
    assert laion_run["report"]["laion_load_ckpt"].startswith("KeyError")  # the known 1.1.7 defect
    assert audio.shape == (2, 512) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, laion_run["audio"], rtol=0, atol=2e-5)
    text = embedder.embed_text(PROMPTS)
    np.testing.assert_allclose(text, laion_run["text"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    # the random model's embeddings must differ between windows and prompts (not a constant)
    assert np.abs(audio[0] - audio[1]).max() > 1e-3 and np.abs(text[0] - text[1]).max() > 1e-3


@pytest.mark.slow
def test_long_clips_score_identically_twice(laion_run, loaded):
    embedder, first = loaded
    assert np.array_equal(embedder.embed(laion_run["clip"], SR), first)  # 15 s clip, two windows
    assert "ckpt_sha256=" in embedder.identity and "not-loaded" not in embedder.identity
    assert "window=10s" in embedder.identity and "loudness=none" in embedder.identity


# ----------------------------------------------------------------------------- cheap checks (no model)
def test_windows_are_fixed_and_documented():
    mono = np.arange(27 * SR, dtype=np.float64)
    w = clap_windows(mono, hop_samples=10 * SR, min_last_samples=5 * SR)
    assert w.shape == (3, 480_000)  # 0-10 s, 10-20 s, 20-27 s (7 s >= 5 s: kept, repeat-padded)
    assert np.array_equal(w[1], mono[10 * SR:20 * SR])
    short = clap_windows(mono[: 23 * SR], hop_samples=10 * SR, min_last_samples=5 * SR)
    assert short.shape[0] == 2  # the 3 s tail is dropped
    only = clap_windows(mono[: 3 * SR], hop_samples=10 * SR, min_last_samples=5 * SR)
    assert only.shape[0] == 1 and np.array_equal(only[0][: 9 * SR], np.tile(mono[: 3 * SR], 3))
    assert np.all(only[0][9 * SR:] == 0)


def test_repeat_pad_and_quantise_match_laion_helpers():
    pytest.importorskip("laion_clap")
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    x = np.random.default_rng(0).uniform(-1.2, 1.2, 1000).astype(np.float32)
    assert np.array_equal(quantise_int16(x), int16_to_float32(float32_to_int16(x)))
    short = torch.from_numpy(x[:300])
    cfg = {"sample_rate": SR}
    feats = get_audio_features({}, short, 1000, data_truncating="rand_trunc", data_filling="repeatpad", audio_cfg=cfg)
    assert np.array_equal(feats["waveform"].numpy(), repeat_pad(x[:300], 1000))


def test_empty_tokenizer_is_refused(tmp_path):
    from transformers import RobertaTokenizer

    folder = write_roberta_dir(tmp_path / "rb", with_weights=False)
    good = RobertaTokenizer.from_pretrained(str(folder))
    check_tokenizer(good, str(folder))
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    empty = RobertaTokenizer.from_pretrained(str(folder))  # transformers does not complain
    with pytest.raises(Exception, match="tokenizer .* is empty"):
        check_tokenizer(empty, str(folder))


def test_missing_files_name_the_file_place_and_command(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        ClapEmbedder().load(directory=tmp_path)
    msg = str(info.value)
    assert "music_audioset_epoch_15_esc_90.14.pt" in msg and str(tmp_path) in msg
    assert "python -m metrics.weights fetch clap-music-audioset" in msg


def test_corrupt_default_checkpoint_is_refused_before_loading(tmp_path):
    (tmp_path / "music_audioset_epoch_15_esc_90.14.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ChecksumError, match="expected 2352471003"):
        ClapEmbedder().load(directory=tmp_path)


def test_embedding_before_load_is_a_clear_error():
    with pytest.raises(Exception, match="call .load"):
        ClapEmbedder().embed(np.zeros(SR, dtype=np.float32) + 0.1, SR)


class _Embeddings(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = torch.nn.Embedding(4, 2)


class _Text(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = _Embeddings()


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.text_branch = _Text()
        self.audio_projection = torch.nn.Linear(2, 2)


def test_only_position_ids_may_be_missing_or_extra(tmp_path):
    model = _Toy()
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    notes = load_clap_state(_Toy(), {**state, POSITION_IDS_KEY: torch.arange(4)[None]}, tmp_path / "a.pt")
    assert any("dropped" in n for n in notes)
    target = _Toy()
    load_clap_state(target, state, tmp_path / "b.pt")
    assert torch.equal(target.audio_projection.weight, state["audio_projection.weight"])
    broken = {k: v for k, v in state.items() if k != "audio_projection.bias"}
    with pytest.raises(CheckpointError, match="missing keys: audio_projection.bias"):
        load_clap_state(_Toy(), broken, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="unexpected keys: extra.weight"):
        load_clap_state(_Toy(), {**state, "extra.weight": torch.zeros(1)}, tmp_path / "d.pt")
