"""The embedded music data set: music21's corpus rendered through a General MIDI SoundFont.

Build it (seeded, byte-reproducible) with ``python -m baselines.data build [--out DIR] [--clips N]``
into ``~/.cache/live-music-bench/dataset`` (or ``$LIVE_MUSIC_BENCH_CACHE/dataset``); read it with
:func:`load_dataset`. Modules, one idea each:

- :mod:`~baselines.data.corpus`: which scores (seeded plan, split by piece) and score -> note events;
- :mod:`~baselines.data.render`: note events -> audio with tinysoundfont and ``TimGM6mb.sf2``;
- :mod:`~baselines.data.prompts`: text prompts from metadata (style, composer, instruments, tempo, key);
- :mod:`~baselines.data.build`: the build (variants, normalisation, clips, manifest) and reading;
- :mod:`~baselines.data.licence`: the licence note written next to the clips.

Heavy packages (music21, tinysoundfont, scipy) are imported only when a build runs.
"""

from baselines.data.build import (
    BuildConfig,
    Dataset,
    DatasetMissingError,
    build_dataset,
    default_dataset_dir,
    load_dataset,
    read_wav,
)

__all__ = [
    "BuildConfig", "Dataset", "DatasetMissingError", "build_dataset", "default_dataset_dir", "load_dataset",
    "read_wav",
]
