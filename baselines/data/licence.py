"""The licence note written next to every built data set (``LICENSE.md``) and into the docs.

Sources of each statement (read from the installed packages and the distribution's package
metadata, not guessed):

- music21's corpus: ``music21/corpus/license.txt`` and ``music21/corpus/essenFolksong/license.txt``
  in the music21 10.5.1 wheel; music21 itself: BSD-3-Clause (``music21-*.dist-info/licenses``).
- TimGM6mb.sf2: the copy inside pretty_midi 0.2.11.post0 carries no copyright field in its
  SoundFont INFO chunk (only ``INAM=TimGM6mb``, ``ISFT=Awave Studio v8.5``), and pretty_midi's
  own licence (MIT, Colin Raffel) does not mention it. Debian packages the same SoundFont as
  ``timgm6mb-soundfont`` 1.3-5 ("TimGM6mb SoundFont from MuseScore 1.3"); its
  ``/usr/share/doc/timgm6mb-soundfont/copyright`` says: Copyright 2004 Tim Brechbill, 2010 David
  Bolton, License GPL-2, quoting Tim Brechbill: "I created some of the samples myself and all
  others are either public domain or fall under the terms of the GNU General Public License."
  (The two files differ byte for byte; the Debian one is MuseScore's copy.)
- tinysoundfont 0.3.7 (the renderer): MIT (its ``dist-info/licenses``).
"""

from __future__ import annotations

LICENCE_NOTE = """\
# Licence of this data set

This data set is generated on your machine by `python -m baselines.data build`; nothing in it is
downloaded. It is made of two inputs, each under its own terms:

1. **Scores: music21's corpus** (shipped inside the `music21` wheel, BSD-3-Clause software).
   The corpus's own notice (`music21/corpus/license.txt`) says the encodings are distributed
   "with the permission of the encoders (and, where needed, the composers or arrangers)", that
   "some encodings included in the corpus may not be used for commercial uses or have other
   restrictions", and that to the best of the music21 authors' knowledge each piece is out of
   copyright in the United States or licensed for use. The compositions used here (Bach
   chorales, Palestrina, Monteverdi, trecento songs, Mozart and Haydn quartets, and fiddle tunes
   from Ryan's Mammoth Collection, 1883) are centuries old; the ENCODINGS may carry
   restrictions, notably on commercial use. Treat the rendered audio as **non-commercial,
   research use** unless you have checked each encoding's terms.
2. **Sounds: the TimGM6mb General MIDI SoundFont** (`TimGM6mb.sf2`, shipped inside the
   `pretty_midi` wheel). The copy in pretty_midi carries no licence of its own. Debian
   distributes the same SoundFont (package `timgm6mb-soundfont`, from MuseScore 1.3) under the
   **GPL-2**: Copyright 2004 Tim Brechbill, 2010 David Bolton; its author states that he made
   some samples himself and that all others are public domain or GPL.

Rendering: tinysoundfont 0.3.7 (MIT). The audio files may be derived works of both inputs; keep
this note with them, and do not redistribute the clips without checking both licences for your
use.
"""

__all__ = ["LICENCE_NOTE"]
