"""LAION-CLAP embeddings through laion-clap's own model code, reproducibly and offline.

Default: the music checkpoint ``music_audioset_epoch_15_esc_90.14.pt`` with the HTSAT-base
audio tower and the RoBERTa text tower, no feature fusion.

Windowing (fixed and documented; laion-clap itself RANDOMLY crops audio longer than 10 s):

- audio is averaged to mono and resampled to 48 kHz (``scipy.signal.resample_poly``), no
  loudness normalisation, then quantised through int16 exactly as laion-clap's
  ``get_audio_embedding_from_data`` does;
- windows of 10 s (480000 samples) start every ``hop_s`` seconds (default 10 s: no overlap);
- a final partial window is kept when it holds at least ``min_last_window_s`` (default 5 s) of
  audio, or when it is the clip's only window; it is repeat-padded the way laion-clap pads short
  clips ("repeatpad": whole repetitions, then zeros). Clips shorter than 1 s are rejected;
- one L2-normalised 512-d embedding per window: ``frames = windows``; no pooling.

Every window is exactly 480000 samples, so laion-clap's random crop never triggers and the
embeddings are deterministic.

Loading (:meth:`ClapEmbedder.load`) reads two explicit local things, never the hub:

- the CLAP checkpoint (verified against the weights manifest when its name is listed there),
  loaded with ``torch.load(weights_only=True)``. A state dict saved by a current transformers
  has no ``text_branch.embeddings.position_ids``; laion-clap 1.1.7's ``load_ckpt`` then raises
  KeyError. Here exactly that one key may be absent (or present and dropped); any OTHER missing
  or unexpected key is an error that lists the keys;
- a RoBERTa folder (``config.json``, ``vocab.json``, ``merges.txt``; no RoBERTa weights: the
  CLAP checkpoint holds the text tower's weights). laion-clap's model constructor calls
  ``RobertaModel.from_pretrained('roberta-base')``, which needs the hub; during construction only,
  a context manager substitutes a stand-in that builds RoBERTa from the local config.
  An empty tokenizer (what transformers silently returns offline when the vocabulary files are
  missing) is detected and refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from metrics import numba_cache
from metrics.audio_io import AudioError
from metrics.embedders.base import RESAMPLER, Embedder, EmbedderError, require_offline_hub
from metrics.weights import (
    CheckpointError,
    MissingWeightsError,
    file_sha256,
    get_entry,
    load_manifest,
    load_state_dict_strict,
    load_torch_file,
    locate,
    resolve_weights,
    weights_dir,
)

log = logging.getLogger(__name__)

WINDOW_SAMPLES = 480_000  # 10 s at 48 kHz, laion-clap's clip_samples
CLAP_SAMPLE_RATE = 48_000
POSITION_IDS_KEY = "text_branch.embeddings.position_ids"
TEXT_FILES = {  # file in the RoBERTa folder -> weights-manifest entry
    "config.json": "roberta-base-config", "vocab.json": "roberta-base-vocab", "merges.txt": "roberta-base-merges",
}
TEXT_MAX_TOKENS = 77  # laion-clap's tokenizer settings
_CONSTRUCT_LOCK = threading.Lock()


def repeat_pad(window: np.ndarray, length: int) -> np.ndarray:
    """laion-clap's "repeatpad": whole repetitions of ``window``, then zeros up to ``length``."""
    n = window.shape[0]
    reps = length // n
    out = np.zeros(length, dtype=window.dtype)
    out[: reps * n] = np.tile(window, reps)
    return out


def clap_windows(mono: np.ndarray, *, hop_samples: int, min_last_samples: int) -> np.ndarray:
    """(T,) mono at 48 kHz -> (W, 480000) windows (see module docstring)."""
    n = mono.shape[0]
    windows = []
    start = 0
    while start < n:
        chunk = mono[start:start + WINDOW_SAMPLES]
        if chunk.shape[0] == WINDOW_SAMPLES:
            windows.append(chunk)
        elif chunk.shape[0] >= min_last_samples or not windows:
            windows.append(repeat_pad(chunk, WINDOW_SAMPLES))
        if start + WINDOW_SAMPLES >= n:
            break
        start += hop_samples
    return np.stack(windows)


def quantise_int16(x: np.ndarray) -> np.ndarray:
    """laion-clap's int16 round trip: clip to [-1, 1], x 32767, truncate to int16, / 32767."""
    clipped = np.clip(x, -1.0, 1.0)
    return ((clipped * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def check_tokenizer(tokenizer: Any, source: str, vocab_rows: int | None = None) -> None:
    """Refuse an empty or mismatched tokenizer (offline transformers returns one silently)."""
    probe = tokenizer("a solo piano playing a slow melody")["input_ids"]
    special = set(getattr(tokenizer, "all_special_ids", []))
    ordinary = [i for i in probe if i not in special]
    if len(tokenizer) <= 5 or not ordinary:
        raise EmbedderError(
            f"the RoBERTa tokenizer from {source} is empty ({len(tokenizer)} tokens; a test sentence maps only to "
            f"special tokens). transformers returns such a tokenizer, without an error, when vocab.json/merges.txt "
            f"are missing offline; CLAP text embeddings would be garbage. Put roberta-base's vocab.json and "
            f"merges.txt in {source} (`python -m metrics.weights fetch roberta-base-vocab roberta-base-merges`)"
        )
    if vocab_rows is not None and max(probe) >= vocab_rows:
        raise EmbedderError(
            f"the tokenizer from {source} produces token id {max(probe)} but the text tower has {vocab_rows} "
            f"embedding rows: tokenizer and checkpoint do not belong together"
        )


def _import_laion() -> tuple[Any, Any]:
    """laion-clap's ``create_model`` and ``get_audio_features`` (imported lazily)."""
    require_offline_hub("laion-clap")
    numba_cache.librosa()  # laion-clap imports librosa: its numba cache is compiled by one process at a time
    try:
        import laion_clap  # noqa: F401  (puts clap_module on sys.path)
        from clap_module.factory import create_model
        from laion_clap.training.data import get_audio_features
    except ImportError as exc:
        raise EmbedderError(
            f"the CLAP embedder needs laion-clap (`pip install -e '.[metrics]'`): {exc}"
        ) from exc
    return create_model, get_audio_features


@contextlib.contextmanager
def _roberta_from_local_config(text_dir: Path) -> Iterator[None]:
    """While constructing laion-clap's CLAP model, build RoBERTa from ``text_dir/config.json``
    instead of downloading ``roberta-base`` (laion-clap hard-codes the hub name)."""
    model_module = sys.modules["clap_module.model"]
    original = model_module.RobertaModel
    from transformers import RobertaConfig

    class _LocalRoberta:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> Any:
            if name != "roberta-base":
                raise EmbedderError(f"laion-clap asked for text model {name!r}; only 'roberta-base' is supported")
            return original(RobertaConfig.from_pretrained(str(text_dir)))  # weights come from the CLAP checkpoint

    with _CONSTRUCT_LOCK:
        model_module.RobertaModel = _LocalRoberta
        try:
            yield
        finally:
            model_module.RobertaModel = original


def clean_state_dict(raw: Any, path: Path) -> dict[str, Any]:
    """Checkpoint object -> state dict without a DataParallel ``module.`` prefix."""
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no state dict inside (top-level type {type(raw).__name__})")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_clap_state(model: Any, state: dict[str, Any], path: Path) -> list[str]:
    """Strictly load ``state`` into ``model``; only ``position_ids`` may be absent or extra.
    Returns notes about the tolerated key."""
    expected = set(model.state_dict().keys())
    notes = []
    if POSITION_IDS_KEY in state and POSITION_IDS_KEY not in expected:
        state = {k: v for k, v in state.items() if k != POSITION_IDS_KEY}
        notes.append(f"dropped {POSITION_IDS_KEY} (a buffer this transformers version does not store)")
    elif POSITION_IDS_KEY in expected and POSITION_IDS_KEY not in state:
        notes.append(f"{POSITION_IDS_KEY} absent from the checkpoint; kept the model's arange buffer")
    load_state_dict_strict(
        model, state, path, "the CLAP model (is it a checkpoint of this amodel, without fusion?)",
        tolerate=[POSITION_IDS_KEY],
    )
    return notes


class ClapEmbedder(Embedder):
    """LAION-CLAP audio (per 10 s window) and text embeddings. See the module docstring."""

    name: ClassVar[str] = "clap-laion-music"
    pretrained: ClassVar[bool] = True
    needs_weights: ClassVar[bool] = True
    sample_rate = CLAP_SAMPLE_RATE
    feature_dim = 512
    min_samples = CLAP_SAMPLE_RATE  # 1 s

    def __init__(
        self,
        checkpoint: str = "music_audioset_epoch_15_esc_90.14.pt",
        amodel: str = "HTSAT-base",
        hop_s: float = 10.0,
        min_last_window_s: float = 5.0,
        batch_windows: int = 4,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        if not 0 < hop_s <= 10.0:
            raise EmbedderError(f"hop_s must be in (0, 10] seconds, got {hop_s}")
        if not 0 < min_last_window_s <= 10.0:
            raise EmbedderError(f"min_last_window_s must be in (0, 10] seconds, got {min_last_window_s}")
        self.checkpoint = checkpoint
        self.amodel = amodel
        self.hop_samples = int(round(hop_s * CLAP_SAMPLE_RATE))
        self.min_last_samples = int(round(min_last_window_s * CLAP_SAMPLE_RATE))
        self.batch_windows = int(batch_windows)
        self.device = device
        self.text_sha256: str | None = None
        self.checkpoint_file: str | None = None
        self.load_notes: list[str] = []
        self._model: Any = None
        self._tokenizer: Any = None
        self._audio_cfg: dict[str, Any] | None = None

    @property
    def identity(self) -> str:
        return self._identity(
            model=f"laion-clap:{self.amodel}+roberta(fusion=off)",
            ckpt=self.checkpoint_file or self.checkpoint,
            ckpt_sha256=self.checkpoint_sha256 or "not-loaded",
            text_sha256=self.text_sha256 or "not-loaded",
            sr=CLAP_SAMPLE_RATE,
            window=f"{WINDOW_SAMPLES / CLAP_SAMPLE_RATE:g}s",
            hop=f"{self.hop_samples / CLAP_SAMPLE_RATE:g}s",
            last_window=f"repeatpad>={self.min_last_samples / CLAP_SAMPLE_RATE:g}s",
            quantise="int16",
            pooling="none(per-window,l2)",
            channels=self.channels,
            resample=RESAMPLER,
            loudness="none",
        )

    # ----------------------------------------------------------------------------- loading
    def load(
        self,
        path: str | Path | None = None,
        *,
        text_dir: str | Path | None = None,
        directory: str | Path | None = None,
    ) -> "ClapEmbedder":
        """Load the CLAP checkpoint (``path``, default ``<weights dir>/<checkpoint>``) and the
        RoBERTa config/tokenizer folder (``text_dir``, default ``<weights dir>/roberta-base``)."""
        import torch

        manifest = load_manifest()
        entry = next((e for e in manifest.values() if e.file_name == self.checkpoint), None)
        if entry is not None:
            ckpt_path, sha, _ = resolve_weights(entry, path, directory)  # a differently named file is "custom"
        else:
            if path is None:
                raise MissingWeightsError(
                    f"checkpoint {self.checkpoint!r} is not in the weights manifest; pass its local path to load()"
                )
            ckpt_path = Path(path)
            if not ckpt_path.is_file():
                raise MissingWeightsError(f"CLAP checkpoint not found at {ckpt_path}")
            sha = file_sha256(ckpt_path)
        tdir = Path(text_dir) if text_dir is not None else weights_dir(directory) / "roberta-base"
        text_paths = []
        for fname, entry_name in TEXT_FILES.items():
            text_entry = get_entry(entry_name, manifest)
            text_paths.append(locate(text_entry, tdir / fname))
        text_hash = hashlib.sha256()
        for p in text_paths:
            text_hash.update(p.name.encode())
            text_hash.update(bytes.fromhex(file_sha256(p)))

        create_model, _ = _import_laion()
        raw = load_torch_file(ckpt_path)
        state = clean_state_dict(raw, ckpt_path)
        with _roberta_from_local_config(tdir):
            model, model_cfg = create_model(
                self.amodel, "roberta", precision="fp32", device=torch.device(self.device), enable_fusion=False
            )
        self.load_notes = load_clap_state(model, state, ckpt_path)
        for note in self.load_notes:
            log.info("%s: %s", ckpt_path.name, note)
        model.eval()
        from transformers import RobertaTokenizer

        tokenizer = RobertaTokenizer.from_pretrained(str(tdir))
        check_tokenizer(tokenizer, str(tdir), model.text_branch.embeddings.word_embeddings.num_embeddings)
        self._model, self._tokenizer, self._audio_cfg = model, tokenizer, model_cfg["audio_cfg"]
        self.checkpoint_sha256 = sha
        self.checkpoint_file = ckpt_path.name
        self.text_sha256 = text_hash.hexdigest()
        self._loaded = True
        return self

    # ----------------------------------------------------------------------------- audio
    def windows(self, audio: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
        """The exact (W, 480000) float32 windows the model sees (after int16 quantisation)."""
        mono = self.prepare(audio, sample_rate, source=source)
        if mono.shape[0] < self.min_samples:
            raise AudioError(f"{source}: {mono.shape[0] / CLAP_SAMPLE_RATE:.3f} s is too short for CLAP (needs >= 1 s)")
        return quantise_int16(clap_windows(mono, hop_samples=self.hop_samples, min_last_samples=self.min_last_samples))

    def _embed_mono(self, mono: np.ndarray) -> np.ndarray:
        wins = quantise_int16(clap_windows(mono, hop_samples=self.hop_samples, min_last_samples=self.min_last_samples))
        return self.embed_windows(wins)

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """(W, 480000) float32 windows -> (W, 512) L2-normalised embeddings."""
        import torch

        self._require_loaded()
        _, get_audio_features = _import_laion()
        out = []
        with torch.no_grad():
            for a in range(0, windows.shape[0], self.batch_windows):
                batch = []
                for w in windows[a:a + self.batch_windows]:
                    if w.shape[0] != WINDOW_SAMPLES:
                        raise EmbedderError(f"CLAP windows must have {WINDOW_SAMPLES} samples, got {w.shape[0]}")
                    batch.append(get_audio_features(
                        {}, torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)), WINDOW_SAMPLES,
                        data_truncating="rand_trunc", data_filling="repeatpad", audio_cfg=self._audio_cfg,
                    ))
                out.append(self._model.get_audio_embedding(batch).detach().cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float32)

    # ----------------------------------------------------------------------------- text
    def embed_text(self, prompts: Sequence[str]) -> np.ndarray:
        """(N,) prompts -> (N, 512) L2-normalised text embeddings."""
        import torch

        self._require_loaded()
        if isinstance(prompts, str):
            raise TypeError("embed_text takes a list of prompts, not one string")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("every prompt must be a string")
        tokens = self._tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        )
        with torch.no_grad():
            emb = self._model.get_text_embedding(dict(tokens))
        return emb.detach().cpu().numpy().astype(np.float32)
