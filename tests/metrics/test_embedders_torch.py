"""VGGish, PANN (Cnn14, 16 kHz) and EnCodec embedders with seeded random weights (no downloads)."""

import os

# laion-clap (also imported by frechet-audio-distance) must never reach for the hub (see metrics.embedders.base)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from metrics.embedders import create_embedder
from metrics.weights import CheckpointError

SR = 16000


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The 2-core test machine is shared by several processes; oversubscribed intra-op threads make
    these small CPU forwards 10-20x slower (measured on EnCodec's LSTM). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _noise(seconds, sr, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def test_pann_frames_pool_to_the_models_own_clip_embedding():
    pytest.importorskip("frechet_audio_distance")
    import torch.nn.functional as F

    from metrics.embedders.pann import build_cnn14_16k, pre_head_frames

    torch.manual_seed(0)
    emb = create_embedder("pann-cnn14-16k")
    emb.model = build_cnn14_16k()  # random weights instead of the real checkpoint
    emb._loaded = True
    x = _noise(1.5, SR)
    frames = emb.embed(x, SR)  # (T', 2048)
    assert frames.shape == (4, 2048) and frames.dtype == np.float32  # 151 STFT frames // 32
    with torch.no_grad():
        wave = torch.from_numpy(x)[None]
        pre = pre_head_frames(emb.model, wave)  # (1, T', 2048)
        pooled = F.relu(emb.model.fc1(pre.max(dim=1).values + pre.mean(dim=1)))
        theirs = emb.model(wave)["embedding"]  # frechet-audio-distance's model, clip level
    np.testing.assert_allclose(pooled.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.relu(emb.model.fc1(pre))[0].detach().numpy(), frames, rtol=1e-5, atol=1e-6)
    assert "per-frame" in emb.identity and emb.pretrained


def test_pann_and_vggish_refuse_checkpoints_of_another_model(tmp_path):
    pytest.importorskip("frechet_audio_distance")
    torch.save({"model": {"not.a.layer": torch.zeros(1)}}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="does not match Cnn14_16k"):
        create_embedder("pann-cnn14-16k").load(tmp_path / "wrong.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong_vggish.pth")
    with pytest.raises(CheckpointError, match="does not match VGGish"):
        create_embedder("vggish").load(tmp_path / "wrong_vggish.pth")


def test_encodec_loads_a_local_state_dict_and_gives_75_frames_per_second(tmp_path):
    pytest.importorskip("encodec")
    from metrics.embedders.encodec import build_encodec_24khz

    torch.manual_seed(1)
    reference = build_encodec_24khz()
    torch.save(reference.state_dict(), tmp_path / "random_encodec.th")
    emb = create_embedder("encodec-24khz").load(tmp_path / "random_encodec.th")
    x = _noise(1.0, 24000, seed=2)
    frames = emb.embed(x, 24000)
    assert frames.shape == (75, 128)
    with torch.no_grad():
        direct = reference.encoder(torch.from_numpy(x)[None, None])[0].T.numpy()
    np.testing.assert_allclose(frames, direct, rtol=1e-5, atol=1e-6)
    assert emb.checkpoint_sha256 in emb.identity and "75Hz" in emb.identity
    assert emb.embed(_noise(0.5, 48000, seed=2), 48000).shape == (38, 128)  # resampled to 24 kHz


def test_vggish_layout_matches_the_published_checkpoint_and_examples_are_096s():
    from metrics.embedders.vggish import build_vggish, vggish_examples, vggish_mel_matrix

    shapes = {k: tuple(v.shape) for k, v in build_vggish().state_dict().items()}
    published = {  # parameter names and shapes of vggish-10086976.pth (harritaylor/torchvggish)
        "features.0.weight": (64, 1, 3, 3), "features.3.weight": (128, 64, 3, 3),
        "features.6.weight": (256, 128, 3, 3), "features.8.weight": (256, 256, 3, 3),
        "features.11.weight": (512, 256, 3, 3), "features.13.weight": (512, 512, 3, 3),
        "embeddings.0.weight": (4096, 12288), "embeddings.2.weight": (4096, 4096), "embeddings.4.weight": (128, 4096),
    }
    for name, shape in published.items():
        assert shapes[name] == shape
        assert shapes[name.replace("weight", "bias")] == (shape[0],)
    assert len(shapes) == 2 * len(published)
    t = np.arange(3 * SR) / SR
    ex = vggish_examples(0.3 * np.sin(2 * np.pi * 1000.0 * t))
    assert ex.shape == (3, 96, 64)  # 298 frames of 10 ms -> 3 whole examples
    peak_band = int(np.argmax(ex.mean(axis=(0, 1))))
    assert vggish_mel_matrix()[int(round(1000 / (SR / 2) * 256)), peak_band] > 0.5  # 1 kHz lands in its band


def test_vggish_embeds_with_random_weights():
    from metrics.embedders.vggish import build_vggish

    torch.manual_seed(2)
    emb = create_embedder("vggish")
    emb.model, emb._loaded = build_vggish(), True
    out = emb.embed(_noise(2.5, SR, seed=3), SR)
    assert out.shape == (2, 128) and out.dtype == np.float32 and (out < 0).any()  # no final ReLU
