"""Build the data set: plan -> parse -> render (seeded variants) -> normalise -> cut -> write.

Every random choice comes from a ``numpy`` generator seeded by ``(seed, piece source, variant)``,
so a piece renders the same whatever else is built, and re-running the same build gives
byte-identical clips and manifest (the manifest holds no time stamps; the build time goes to
``build_info.json``). Clips are 16-bit PCM mono WAV files written with the standard library's
``wave`` module. The build writes into ``<out>/clips/<split>/`` and writes ``manifest.json``
LAST: a folder with a manifest is a complete build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import wave
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm import tqdm

from baselines.data.corpus import COLLECTIONS, COLLECTIONS_BY_KEY, Collection, plan_pieces, parse_events, tune_type
from baselines.data.licence import LICENCE_NOTE
from baselines.data.prompts import estimate_key, full_prompt, short_prompt
from baselines.data.render import ENSEMBLES, normalise, render_events, soundfont_sha256
from bench.core.hashing import stable_hash

log = logging.getLogger(__name__)

FORMAT = "live-music-bench-dataset/1"
MANIFEST = "manifest.json"
CACHE_ENV = "LIVE_MUSIC_BENCH_CACHE"
DEFAULT_CACHE_ROOT = Path("~/.cache/live-music-bench")
SPLITS = ("train", "reference")


def default_dataset_dir() -> Path:
    """``$LIVE_MUSIC_BENCH_CACHE/dataset`` (default ``~/.cache/live-music-bench/dataset``)."""
    return Path(os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_ROOT))).expanduser() / "dataset"


@dataclass(frozen=True)
class BuildConfig:
    """Everything that changes the built bytes."""

    seed: int = 0
    clips: int = 1000  # total clips (the build stops when it has this many)
    sample_rate: int = 16000
    clip_s: float = 8.0
    max_render_s: float = 72.0  # each render plays at most the first this-many seconds of a piece
    max_clips_per_render: int = 4  # clips kept from one render (variant v keeps clip slots v, v+V, ...)
    target_rms: float = 0.15  # per-render loudness normalisation (about -16.5 dBFS)
    peak_limit: float = 0.98
    silence_rms: float = 0.01  # clips quieter than this after normalisation are dropped
    transpose_range: tuple[int, int] = (-5, 6)  # semitones, inclusive
    velocity_range: tuple[int, int] = (72, 105)  # per part, inclusive
    reference_every: int = 10  # every N-th piece of the plan is held out (reference split)
    collections: tuple[str, ...] = tuple(c.key for c in COLLECTIONS)

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1, got {self.clips}")
        if self.clip_s <= 0 or self.sample_rate <= 0:
            raise ValueError("clip_s and sample_rate must be > 0")
        unknown = [k for k in self.collections if k not in COLLECTIONS_BY_KEY]
        if unknown:
            raise ValueError(f"unknown collection(s) {unknown}; known: {', '.join(COLLECTIONS_BY_KEY)}")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_s * self.sample_rate))


@dataclass(frozen=True)
class RenderChoice:
    """The seeded choices of one render of one piece."""

    ensemble: str
    bpm: int
    transpose: int
    velocities: tuple[int, ...]


def choose_render(config: BuildConfig, collection: Collection, source: str, variant: int, n_parts: int) -> RenderChoice:
    rng = np.random.default_rng(stable_hash("render", int(config.seed), source, int(variant)) % (2**63))
    ensemble = collection.ensembles[int(rng.integers(len(collection.ensembles)))]
    lo, hi = collection.bpm_range
    bpm = int(rng.integers(lo, hi + 1))
    t_lo, t_hi = config.transpose_range
    transpose = int(rng.integers(t_lo, t_hi + 1))
    v_lo, v_hi = config.velocity_range
    velocities = tuple(int(v) for v in rng.integers(v_lo, v_hi + 1, size=max(1, n_parts)))
    return RenderChoice(ensemble, bpm, transpose, velocities)


# ------------------------------------------------------------------------------ WAV I/O
def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """(samples,) float in [-1, 1] -> 16-bit PCM mono WAV bytes (deterministic)."""
    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM mono WAV -> ((samples,) float32 in [-1, 1), sample rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM (as the data set writes), got "
                             f"{w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bits")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0), rate


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _versions() -> dict[str, str]:
    out = {}
    for name in ("music21", "pretty_midi", "tinysoundfont", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ------------------------------------------------------------------------------ build
@dataclass
class BuildResult:
    root: Path
    manifest: dict[str, Any]
    wall_s: float
    skipped_existing: bool = False
    clips_by_split: dict[str, int] = field(default_factory=dict)


def build_dataset(out: str | Path | None = None, config: BuildConfig | None = None, *, force: bool = False,
                  progress: bool = False) -> BuildResult:
    """Build the data set into ``out`` (default :func:`default_dataset_dir`).

    If ``out`` already holds a complete build with the same config, nothing is rebuilt (unless
    ``force``). A different config or ``force`` rebuilds from scratch.
    """
    config = config or BuildConfig()
    root = Path(out).expanduser() if out is not None else default_dataset_dir()
    manifest_path = root / MANIFEST
    if manifest_path.is_file() and not force:
        existing = json.loads(manifest_path.read_text())
        if existing.get("config") == _config_dict(config) and existing.get("format") == FORMAT:
            log.info("data set already built in %s (same config); use --force to rebuild", root)
            if not (root / "LICENSE.md").is_file() or (root / "LICENSE.md").read_text() != LICENCE_NOTE:
                _atomic_write(root / "LICENSE.md", LICENCE_NOTE.encode())  # the note may have been updated
            return BuildResult(root, existing, 0.0, skipped_existing=True, clips_by_split=_count(existing))
        log.info("data set in %s was built with another config: rebuilding", root)
    if manifest_path.exists():
        manifest_path.unlink()  # the folder is incomplete from here on
    if (root / "clips").exists():
        shutil.rmtree(root / "clips")
    root.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    collections = tuple(COLLECTIONS_BY_KEY[k] for k in config.collections)
    plan = plan_pieces(config.seed, collections, config.reference_every)
    clips: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    bar = _progress(total=config.clips, enabled=progress)
    for piece in plan:
        if len(clips) >= config.clips:
            break
        collection = COLLECTIONS_BY_KEY[piece.collection]
        try:
            parsed = parse_events(piece.source)
        except Exception as exc:  # noqa: BLE001 - a corpus file music21 cannot read is skipped, and recorded
            log.warning("skipping %s: %s: %s", piece.source, type(exc).__name__, exc)
            skipped.append({"source": piece.source, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        for variant in range(collection.variants):
            made = _render_piece(config, collection, piece, parsed, variant, root)
            made = made[: config.clips - len(clips)]
            clips.extend(made)
            bar.update(len(made))
            if len(clips) >= config.clips:
                break
    bar.close()
    manifest = {
        "format": FORMAT,
        "config": _config_dict(config),
        "sources": {
            "corpus": "music21 corpus (bundled with the music21 wheel)",
            "soundfont": "TimGM6mb.sf2 (bundled with the pretty_midi wheel)",
            "soundfont_sha256": soundfont_sha256(),
            "versions": _versions(),
        },
        "licence": "see LICENSE.md (music21 corpus terms; TimGM6mb SoundFont: GPL-2 per Debian)",
        "clips": clips,
        "skipped": skipped,
    }
    _atomic_write(root / "LICENSE.md", LICENCE_NOTE.encode())
    _atomic_write(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    wall_s = time.perf_counter() - started
    counts = _count(manifest)
    info = {"wall_s": round(wall_s, 2), "clips": counts, "pieces_planned": len(plan), "skipped": len(skipped)}
    _atomic_write(root / "build_info.json", (json.dumps(info, indent=1) + "\n").encode())
    log.info("built %d clips (%s) in %.1f s into %s", len(clips), counts, wall_s, root)
    return BuildResult(root, manifest, wall_s, clips_by_split=counts)


def _config_dict(config: BuildConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as read back


def _count(manifest: dict[str, Any]) -> dict[str, int]:
    counts = {s: 0 for s in SPLITS}
    for clip in manifest.get("clips", []):
        counts[clip["split"]] = counts.get(clip["split"], 0) + 1
    return counts


def _render_piece(config: BuildConfig, collection: Collection, piece: Any, parsed: Any, variant: int,
                  root: Path) -> list[dict[str, Any]]:
    choice = choose_render(config, collection, piece.source, variant, parsed.n_parts)
    ensemble = ENSEMBLES[choice.ensemble]
    max_s = config.max_render_s
    try:
        audio = render_events(parsed.events, ensemble, choice.bpm, choice.transpose, choice.velocities,
                              config.sample_rate, max_seconds=max_s)
        audio, gain = normalise(audio, config.target_rms, config.peak_limit)
    except ValueError as exc:
        log.warning("skipping render %s v%d: %s", piece.source, variant, exc)
        return []
    # key and prompts describe the notes actually heard (the first max_s seconds)
    heard = [e for e in parsed.events if e.onset_q * 60.0 / choice.bpm < max_s]
    key = estimate_key(heard, choice.transpose)
    style, short_style = collection.style, collection.short_style
    if collection.key == "folk":
        kind = tune_type(parsed.title + " " + piece.source)
        if kind:
            style, short_style = f"{kind} fiddle tune", f"folk {kind}"
    composer = collection.composer or parsed.composer or "anonymous"
    prompt = full_prompt(style, composer, ensemble.prompt, choice.bpm, key)
    short = short_prompt(short_style, ensemble.short)
    n = config.clip_samples
    out: list[dict[str, Any]] = []
    slots = [k for k in range(audio.shape[0] // n) if k % collection.variants == variant]
    for k in slots[: config.max_clips_per_render]:
        segment = audio[k * n:(k + 1) * n]
        rms = float(np.sqrt(np.mean(np.square(segment, dtype=np.float64))))
        if rms < config.silence_rms:
            continue
        clip_id = f"{piece.index:04d}-{collection.key}-v{variant}-c{k}"
        rel = f"clips/{piece.split}/{clip_id}.wav"
        data = wav_bytes(segment, config.sample_rate)
        _atomic_write(root / rel, data)
        out.append({
            "id": clip_id,
            "file": rel,
            "split": piece.split,
            "sha256": hashlib.sha256(data).hexdigest(),
            "samples": int(segment.shape[0]),
            "start_s": round(k * config.clip_s, 6),
            "collection": collection.key,
            "source": piece.source,
            "title": parsed.title,
            "composer": composer,
            "variant": variant,
            "ensemble": choice.ensemble,
            "programs": [ensemble.program_of(p) for p in range(parsed.n_parts)],
            "bpm": choice.bpm,
            "transpose": choice.transpose,
            "key": key,
            "gain": round(float(gain), 6),
            "prompt": prompt,
            "short_prompt": short,
        })
    return out


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    return tqdm(total=total, unit="clip", desc="building data set")


# ------------------------------------------------------------------------------ reading
class DatasetMissingError(FileNotFoundError):
    """No complete build where one was expected; the message gives the command that builds it."""


@dataclass(frozen=True)
class Dataset:
    """A built data set: its folder and parsed manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["config"]["sample_rate"])

    def clips(self, split: str | None = None) -> list[dict[str, Any]]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return [c for c in self.manifest["clips"] if split is None or c["split"] == split]

    def read(self, clip: dict[str, Any]) -> np.ndarray:
        """(samples,) float32 audio of one clip."""
        audio, rate = read_wav(self.root / clip["file"])
        if rate != self.sample_rate:
            raise ValueError(f"{clip['file']}: sample rate {rate} != the manifest's {self.sample_rate}")
        return audio

    def manifest_sha256(self) -> str:
        return hashlib.sha256((self.root / MANIFEST).read_bytes()).hexdigest()

    def verify(self) -> list[str]:
        """Clips whose file is missing or whose sha256 differs from the manifest (empty = all good)."""
        bad = []
        for clip in self.manifest["clips"]:
            path = self.root / clip["file"]
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != clip["sha256"]:
                bad.append(clip["file"])
        return bad


def load_dataset(root: str | Path | None = None) -> Dataset:
    """The complete build in ``root`` (default :func:`default_dataset_dir`)."""
    root = Path(root).expanduser() if root is not None else default_dataset_dir()
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetMissingError(
            f"no built data set in {root} (no {MANIFEST}). Build it with: python -m baselines.data build --out {root}"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DatasetMissingError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}: rebuild with --force")
    return Dataset(root, manifest)


def iter_audio(dataset: Dataset, clips: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], np.ndarray]]:
    for clip in clips:
        yield clip, dataset.read(clip)


__all__ = [
    "BuildConfig", "BuildResult", "RenderChoice", "Dataset", "DatasetMissingError", "build_dataset",
    "load_dataset", "default_dataset_dir", "read_wav", "wav_bytes", "choose_render", "iter_audio", "CACHE_ENV",
    "MANIFEST", "SPLITS",
]
