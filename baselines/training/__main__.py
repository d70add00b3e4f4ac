"""``python -m baselines.training <command>``: fit, train, publish and verify the checkpoints.

The committed checkpoints were made with (after ``python -m baselines.data build``)::

    python -m baselines.training rvq
    python -m baselines.training base
    python -m baselines.training encdec
    python -m baselines.training causal
    python -m baselines.training lmm
    python -m baselines.training arc        # ARC-Forcing of the block-causal model (after causal, base)
    python -m baselines.training publish
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import torch

from baselines.training.arc import ArcSettings
from baselines.training.export import checkpoints_dir, verify_checkpoints
from baselines.training.run import (
    DEFAULT_BATCH,
    DEFAULT_LR,
    DEFAULT_RUNS,
    DEFAULT_STEPS,
    RunOptions,
    fit_codebooks,
    publish,
    train_arc,
    train_diffusion,
    train_lmm,
)


def _common(p: argparse.ArgumentParser, model: str | None) -> None:
    p.add_argument("--data", help="built data set folder (default: the cache, see python -m baselines.data)")
    p.add_argument("--runs", default=str(DEFAULT_RUNS), help="folder of training runs (default: %(default)s)")
    p.add_argument("--preset", default="cpu", help="preset whose architecture is trained (default: cpu)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra preset override (repeatable), e.g. dit.depth=2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--no-progress", action="store_true")
    if model is None:
        return
    p.add_argument("--steps", type=int, help=f"optimiser steps (default: {DEFAULT_STEPS[model]})")
    p.add_argument("--batch", type=int, help=f"windows per step (default: {DEFAULT_BATCH[model]})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: {DEFAULT_LR[model]})")
    p.add_argument("--resume", action="store_true", help="continue the run in <runs>/<model> from its last state")
    p.add_argument("--max-minutes", type=float, help="save and stop after this long (resume later to finish)")
    p.add_argument("--save-every", type=int, default=100, help="steps between saved states (default: 100)")
    if model in ("encdec", "causal"):
        p.add_argument("--init", help="base weights to fine-tune (default: <runs>/base/model.safetensors)")
    if model == "arc":
        p.add_argument("--init", help="block-causal weights to post-train (default: <runs>/causal/model.safetensors "
                                      "if present, else the committed lmdm-causal checkpoint)")
        p.add_argument("--disc-init", help="base DiT the discriminator is cut from (default: <runs>/base/"
                                           "model.safetensors if present, else the committed outpaint checkpoint)")
        p.add_argument("--disc-lr", type=float, default=ArcSettings.disc_lr,
                       help="discriminator learning rate (default: %(default)s)")
        p.add_argument("--disc-update-probability", type=float, default=ArcSettings.disc_update_probability,
                       help="share of steps that update the discriminator (seeded; default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.training",
                                     description="Train the cpu preset's models on the embedded data set.")
    sub = parser.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("rvq", help="fit the LMM's RVQ codebooks (residual k-means)"), None)
    for model, text in (("base", "bidirectional base DiT (outpaint regime), random outpainting masks"),
                        ("encdec", "LMDM enc-dec fine-tune of the base (context router + enc-dec mask)"),
                        ("causal", "LMDM block-causal fine-tune of the base (context router + block-causal mask)"),
                        ("lmm", "LMM on the fitted RVQ tokens (teacher-forced cross-entropy)"),
                        ("arc", "ARC-Forcing post-training of the block-causal LMDM (rollouts + discriminator)")):
        _common(sub.add_parser(model, help=text), model)
    pub = sub.add_parser("publish", help="copy finished runs into baselines/checkpoints/<preset>/")
    _common(pub, None)
    pub.add_argument("--dest", help="target folder (default: baselines/checkpoints/<preset>)")
    ver = sub.add_parser("verify", help="check the committed checkpoints against SHA256SUMS")
    ver.add_argument("--dest", help="folder (default: baselines/checkpoints/cpu)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("baselines.training")

    if args.command == "verify":
        status = verify_checkpoints(args.dest or checkpoints_dir("cpu"))
        for name, state in status.items():
            log.info("%-28s %s", name, state)
        return 0 if status and all(s == "ok" for s in status.values()) else 1

    torch.set_num_threads(args.threads)  # the CLI owns the process: a global setting is fine here
    options = RunOptions(
        data=args.data, runs=args.runs, preset=args.preset, overrides=tuple(args.overrides), seed=args.seed,
        steps=getattr(args, "steps", None), batch=getattr(args, "batch", None), lr=getattr(args, "lr", None),
        resume=getattr(args, "resume", False), max_minutes=getattr(args, "max_minutes", None),
        progress=not args.no_progress, save_every=getattr(args, "save_every", 100),
    )
    if args.command == "rvq":
        fit_codebooks(options)
    elif args.command in ("base", "encdec", "causal"):
        train_diffusion(args.command, options, init=getattr(args, "init", None))
    elif args.command == "lmm":
        train_lmm(options)
    elif args.command == "arc":
        train_arc(options, init=args.init, disc_init=args.disc_init,
                  settings=ArcSettings(disc_lr=args.disc_lr, disc_update_probability=args.disc_update_probability))
    elif args.command == "publish":
        publish(options, dest=args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
