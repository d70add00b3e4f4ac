"""Which scores of music21's corpus the data set uses, and how a score becomes note events.

The corpus ships inside the ``music21`` wheel (about 3,000 encodings). A :class:`Collection`
names one repertory (a folder and file suffixes), the words its prompts use, the ensembles it may
be rendered with and its tempo range. :func:`plan_pieces` draws a seeded, fixed-size sample of
files from every collection and interleaves them, so any prefix of the plan spans several styles
(a 4-clip test build and the full build start the same way).

:func:`parse_events` turns one parsed score into :class:`NoteEvent` rows (part, onset and
duration in quarter notes, MIDI pitch): ties merged, grace notes (zero duration) and unpitched
notes dropped, repeats not expanded, tempo marks ignored (the renderer picks a tempo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.hashing import stable_hash


@dataclass(frozen=True)
class Collection:
    """One repertory of the corpus and how the data set treats it."""

    key: str  # short name used in clip ids
    folder: str  # folder under music21/corpus (searched recursively)
    suffixes: tuple[str, ...]  # file suffixes taken (".mxl", ".krn", ...)
    style: str  # prompt words for the style ("baroque chorale")
    short_style: str  # the short prompt's style ("bach chorale")
    composer: str  # composer word for prompts ("" = from the score's metadata, else "anonymous")
    ensembles: tuple[str, ...]  # keys of baselines.data.render.ENSEMBLES
    bpm_range: tuple[int, int]  # quarter notes per minute, inclusive
    quota: int  # files drawn for the full plan
    variants: int  # renders per piece (different ensemble / tempo / transposition)
    name_prefix: str = ""  # keep only files whose name starts with this

    def matches(self, path: Path) -> bool:
        return path.suffix in self.suffixes and path.name.startswith(self.name_prefix)


_CHAMBER = ("string quartet", "piano", "woodwind quartet")
_EARLY = ("choir", "church organ", "recorder consort", "string ensemble", "brass ensemble")
_FOLK = ("fiddle", "flute", "accordion", "tin whistle", "banjo", "harp", "piano", "nylon guitar")

COLLECTIONS: tuple[Collection, ...] = (
    Collection("bach", "bach", (".mxl",), "baroque chorale", "bach chorale", "bach",
               ("church organ", "choir", "string quartet", "brass ensemble", "woodwind quartet", "piano",
                "harpsichord"), (60, 100), quota=70, variants=3, name_prefix="bwv"),
    Collection("palestrina", "palestrina", (".krn",), "renaissance mass", "palestrina mass", "palestrina",
               _EARLY, (110, 170), quota=40, variants=2),
    Collection("monteverdi", "monteverdi", (".mxl",), "italian madrigal", "monteverdi madrigal", "monteverdi",
               _EARLY, (80, 130), quota=10, variants=2),
    Collection("trecento", "trecento", (".xml",), "medieval song", "medieval song", "",
               ("recorder consort", "church organ", "harp", "string ensemble", "nylon guitar"), (80, 140),
               quota=20, variants=2),
    Collection("mozart", "mozart", (".mxl",), "classical chamber music", "mozart quartet", "mozart",
               _CHAMBER, (70, 140), quota=6, variants=2, name_prefix="movement"),
    Collection("haydn", "haydn", (".mxl",), "classical chamber music", "haydn quartet", "haydn",
               _CHAMBER, (70, 140), quota=5, variants=2),
    Collection("folk", "ryansMammoth", (".abc",), "fiddle tune", "fiddle tune", "traditional",
               _FOLK, (150, 220), quota=70, variants=3),
)
COLLECTIONS_BY_KEY = {c.key: c for c in COLLECTIONS}

TUNE_TYPES = ("reel", "jig", "hornpipe", "strathspey", "march", "waltz", "polka")


@dataclass(frozen=True)
class PlannedPiece:
    """One file of the plan: which collection, which corpus file, and its split."""

    index: int  # position in the plan
    collection: str
    source: str  # path relative to music21's corpus folder, with forward slashes
    split: str  # "train" or "reference"


@dataclass(frozen=True)
class NoteEvent:
    part: int  # index of the part (voice) in the score, top staff first
    onset_q: float  # quarter notes from the start
    duration_q: float  # quarter notes (> 0)
    pitch: int  # MIDI note number


@dataclass(frozen=True)
class ParsedPiece:
    title: str
    composer: str  # lower-case surname-ish word(s), "" when the metadata has none
    n_parts: int
    events: tuple[NoteEvent, ...]


def corpus_root() -> Path:
    """The folder of music21's bundled corpus."""
    import music21

    return Path(music21.__file__).resolve().parent / "corpus"


def list_sources(collection: Collection, root: Path | None = None) -> list[str]:
    """Files of ``collection`` (relative to the corpus root, sorted)."""
    root = corpus_root() if root is None else root
    folder = root / collection.folder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"music21's corpus has no folder {folder}: install the data extra (pip install -e '.[data]'), "
            "whose music21 wheel carries the corpus"
        )
    files = [p for p in folder.rglob("*") if p.is_file() and collection.matches(p)]
    return sorted(p.relative_to(root).as_posix() for p in files)


def plan_pieces(seed: int, collections: tuple[Collection, ...] = COLLECTIONS, reference_every: int = 10,
                root: Path | None = None) -> list[PlannedPiece]:
    """A seeded sample of ``quota`` files per collection, interleaved round-robin in the order of
    ``collections``. Every ``reference_every``-th piece of the plan (indices 9, 19, ... for 10)
    goes to the reference split, so the split is by piece (no score is in both splits)."""
    if reference_every < 2:
        raise ValueError(f"reference_every must be >= 2 (one reference piece in N), got {reference_every}")
    per_collection: list[list[str]] = []
    for coll in collections:
        files = list_sources(coll, root)
        rng = np.random.default_rng(stable_hash("plan", int(seed), coll.key) % (2**63))
        order = rng.permutation(len(files))
        per_collection.append([files[i] for i in order[: coll.quota]])
    interleaved: list[tuple[str, str]] = []
    longest = max((len(files) for files in per_collection), default=0)
    for rank in range(longest):
        for coll, files in zip(collections, per_collection):
            if rank < len(files):
                interleaved.append((coll.key, files[rank]))
    return [
        PlannedPiece(index=i, collection=key, source=src,
                     split="reference" if i % reference_every == reference_every - 1 else "train")
        for i, (key, src) in enumerate(interleaved)
    ]


def _composer_word(raw: Any) -> str:
    if not raw:
        return ""
    words = [w for w in str(raw).replace(",", " ").split() if w.isalpha()]
    return words[-1].lower() if words else ""


def parse_events(source: str, root: Path | None = None) -> ParsedPiece:
    """Parse one corpus file with music21 into note events (see module docstring).

    A file holding several pieces (an ABC "opus") yields its first piece.
    """
    from music21 import converter, stream

    root = corpus_root() if root is None else root
    parsed = converter.parse(str(root / source))
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise ValueError(f"{source}: the file holds no score")
        parsed = scores[0]
    meta = parsed.metadata
    title = (meta.title if meta is not None and meta.title else Path(source).stem) or Path(source).stem
    composer = _composer_word(meta.composer if meta is not None else "")
    parts = list(parsed.parts) or [parsed]
    events: list[NoteEvent] = []
    for part_index, part in enumerate(parts):
        flat = part.stripTies(inPlace=False).flatten()
        for element in flat.notes:
            duration = float(element.quarterLength)
            pitches = getattr(element, "pitches", ())
            if duration <= 0 or not pitches:
                continue  # grace notes and unpitched percussion
            onset = float(element.offset)
            for pitch in pitches:
                events.append(NoteEvent(part_index, onset, duration, int(pitch.midi)))
    if not events:
        raise ValueError(f"{source}: no pitched notes")
    events.sort(key=lambda e: (e.onset_q, e.part, e.pitch, e.duration_q))
    return ParsedPiece(title=str(title), composer=composer, n_parts=len(parts), events=tuple(events))


def tune_type(title: str) -> str:
    """The dance type named in a folk tune's title ("reel", "jig", ...), or ""."""
    lower = title.lower()
    for kind in TUNE_TYPES:
        if kind in lower:
            return kind
    return ""


__all__ = [
    "Collection", "COLLECTIONS", "COLLECTIONS_BY_KEY", "PlannedPiece", "NoteEvent", "ParsedPiece",
    "corpus_root", "list_sources", "plan_pieces", "parse_events", "tune_type",
]
