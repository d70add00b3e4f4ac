"""``python -m baselines.data build|verify|info``: build, check or describe the data set."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from baselines.data.build import BuildConfig, build_dataset, default_dataset_dir, load_dataset


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.data",
        description="The embedded data set: music21's corpus rendered with the TimGM6mb SoundFont.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or confirm) the data set; seeded and byte-reproducible")
    b.add_argument("--out", help=f"folder (default: {default_dataset_dir()})")
    b.add_argument("--clips", type=int, default=BuildConfig.clips, help="total clips (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="seed of every choice (default: 0)")
    b.add_argument("--force", action="store_true", help="rebuild even if the same build exists")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, help_text in (("verify", "re-hash every clip against the manifest"),
                            ("info", "clip counts, prompts and build time")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--out", help=f"folder (default: {default_dataset_dir()})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("baselines.data")
    if args.command == "build":
        try:
            config = BuildConfig(seed=args.seed, clips=args.clips)
        except ValueError as exc:
            parser.error(str(exc))
        result = build_dataset(args.out, config, force=args.force, progress=not args.no_progress)
        log.info("data set: %s  clips: %s  manifest sha256: %s", result.root, result.clips_by_split,
                 load_dataset(result.root).manifest_sha256())
        return 0
    dataset = load_dataset(args.out)
    if args.command == "verify":
        bad = dataset.verify()
        if bad:
            log.error("%d clip(s) differ from the manifest, e.g. %s: rebuild with --force", len(bad), bad[:3])
            return 1
        log.info("all %d clips match the manifest's sha256", len(dataset.clips()))
        return 0
    info_path = dataset.root / "build_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    summary = {
        "root": str(dataset.root), "manifest_sha256": dataset.manifest_sha256(),
        "clips": {s: len(dataset.clips(s)) for s in ("train", "reference")},
        "build_wall_s": info.get("wall_s", "not recorded"),
        "examples": [c["prompt"] for c in dataset.clips()[:5]],
    }
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
