"""``python -m reports RUN_DIR... [--out DIR] [--compare A B]``: build the report from saved runs.

Examples::

    python -m reports runs/20261124T083000Z_ab12cd34              # -> runs/.../report/index.html
    python -m reports runs/a runs/b --out reports/both             # two runs side by side
    python -m reports --compare runs/a runs/b --out reports/a-vs-b  # A versus B with deltas

Exit status: 0 on success, 2 when a folder cannot be reported on (the message says why).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from reports.audio_clips import DEFAULT_CLIP_S
from reports.build import build_report
from reports.errors import ReportError

log = logging.getLogger("reports")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m reports``."""
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description=("Build tables (CSV, Markdown, LaTeX), paper-style figures (PDF + PNG), audio excerpts and an "
                     "HTML report from saved run folders. Never runs a model."),
    )
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="run folders written by run_all.py")
    parser.add_argument("--out", type=Path, help="report folder (default: RUN_DIR/report for a single run)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="compare run A with run B: deltas B - A and warnings when their manifests differ")
    parser.add_argument("--clip-s", type=float, default=DEFAULT_CLIP_S, help="length of audio excerpts in seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Build the report the arguments ask for; 0 on success, 2 when a folder cannot be reported on."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    if not args.run_dirs and not args.compare:
        log.error("give at least one run folder (or --compare A B)")
        return 2
    try:
        index = build_report(args.run_dirs, args.out, compare=tuple(args.compare) if args.compare else None,
                             clip_s=args.clip_s)
    except ReportError as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(f"{index}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
