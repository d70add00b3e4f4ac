"""``python run_all.py``: the command line (options, ``--list``) and what each command runs.

Commands: ``--list`` prints presets, workloads, generators and fields; ``--report-only`` and
``--compare`` build reports from saved run folders (:mod:`reports`); anything else is a run:
configuration (:mod:`bench.app.config`), validation (:mod:`bench.app.plan`) and execution
(:mod:`bench.app.execute`). Exit status: 0 every cell ok, 1 a cell failed, 2 a configuration error.

This module imports no torch: only a run needs torch and the models, so the run's modules are
imported when a run starts, and ``--help``, ``--list``, ``--report-only`` and ``--compare`` work
where torch cannot be imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from bench.app.config import COMPILE_MODES, CONFIG_KEYS, EXECUTORS, PROGRESS_MODES, resolve_config
from bench.core.run_folder import resume_command
from bench.core.errors import ConfigError, RunStopped
from bench.core.presets import PRESETS, preset_fields
from bench.core.registry import GENERATORS, NULL_GENERATOR
from bench.core.storage import read_json
from bench.core.workloads import WORKLOADS, Workload, get_workloads
from reports.__main__ import main as report_main

log = logging.getLogger("bench")

DESCRIPTION = (
    "Run the streaming benchmark: every generator (regime) on the same workload, timed block by "
    "block, with FLOPs, memory, a real-time playback simulation and a Markdown summary. "
    "With no arguments: every registered generator on the 'default' workload at the 'cpu' preset, "
    "written to runs/<UTC time>_<git sha>/."
)
EPILOG = """\
overrides (--set, repeatable; also the [set] table of a config file):
  preset fields   dit.width=128  lmm.rvq_levels=4  dit.rope_mode=offset   (python run_all.py --list)
  drift fields    drift.horizon_s=120  drift.n_streams=4  drift.window_s=5   (docs/drift.md)
  workload fields workload.horizon_s=60  workload.steps=4  workload.cfg=true  workload.repeats=3
                  workload.scenario=realtime  workload.prebuffer_s=2  workload.warmup_blocks=1
                  workload.prompts="0:bach chorale;16:funk groove"   (seconds:prompt; ...)

config file (TOML; flags given on the command line win):
  preset = "cpu"
  workload = ["default", "prompt-switch"]
  generators = ["lmdm-causal", "lmm"]
  device = "auto"          # auto, cpu, cuda, cuda:1
  dtype = "float32"        # float32, bfloat16, float16
  out = "runs/my-run"
  executor = "ray"         # local (default) or ray
  drift_workers = 0        # drift stage processes: 0 automatic, 1 this process (docs/drift.md)
  ray_address = "auto"     # the Ray cluster this machine belongs to
  [set]
  "workload.horizon_s" = 32

examples:
  python run_all.py                                   # the default run
  python run_all.py --workload smoke --preset tiny    # seconds; checks the installation
  python run_all.py --generators lmdm-causal,lmm --set workload.horizon_s=120
  python run_all.py --workload paper --preset sao-small --device cuda --dtype bfloat16
  python run_all.py --out runs/x --resume             # finish an interrupted run
  python run_all.py --executor ray --ray-address auto --device cuda   # one Ray task per cell on a cluster

reports (from saved folders only; no model runs):
  python run_all.py --report-only runs/a              # rebuild runs/a/report
  python run_all.py --compare runs/a runs/b --out reports/a-vs-b

exit status: 0 all cells ok, 1 a cell failed (see its status.json) or results could not be written
(full disk, permissions), 2 bad configuration (nothing run), 130 interrupted (Ctrl-C; the message
gives the --resume command).
"""
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _names_epilog() -> str:
    """The epilog's first lines: what exists to choose from."""
    by_name = GENERATORS.by_name_only()
    return (f"presets:    {', '.join(PRESETS)}\n"
            f"workloads:  {', '.join(WORKLOADS)}\n"
            f"generators: {', '.join(GENERATORS.names())} (the null generator '{NULL_GENERATOR}' always runs: "
            "it measures\n            the harness's own overhead per block)\n"
            + (f"            run by name only, not in 'all': {', '.join(by_name)}\n" if by_name else "")
            + "\n")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What to run, where, and which stages."""
    parser.add_argument("--config", type=Path, help="TOML file with any of: " + ", ".join(CONFIG_KEYS))
    parser.add_argument("--preset", help="model sizes (default: cpu)")
    parser.add_argument("--workload", type=_csv, help="workload name(s), comma-separated (default: default)")
    parser.add_argument("--generators", type=_csv, help="generator names, comma-separated, or 'all' (default)")
    parser.add_argument("--device", help="auto (default: cuda if available), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", help="float32 (default), bfloat16, float16")
    parser.add_argument("--out", help="run folder (default: runs/<UTC time>_<git sha>)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue the run in --out: skip cells completed with the same hash")
    parser.add_argument("--allow-config-change", action="store_true", default=None,
                        help="with --resume: continue a run made with another configuration (both are recorded "
                             "in the manifest); without it such a resume is refused")
    parser.add_argument("--step-timeout", dest="step_timeout_s", type=float, metavar="S",
                        help="a generator step that does not return within S seconds fails its cell (default: 600)")
    parser.add_argument("--cell-timeout", dest="cell_timeout_s", type=float, metavar="S",
                        help="a cell whose steps run longer than S seconds in all fails (default: no limit)")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override a preset or workload field (repeatable)")
    parser.add_argument("--compile", choices=COMPILE_MODES,
                        help="torch.compile the generators' step passes in this mode (default: off = eager); "
                             "a generator that cannot compile fails its cell, and every cell records what ran")
    parser.add_argument("--no-flops", dest="flops", action="store_false", default=None,
                        help="skip the FLOPs pass (FLOPs are then reported as not measured)")
    parser.add_argument("--no-peak", dest="peak", action="store_false", default=None,
                        help="skip the matmul peak micro-benchmark (fraction of peak: not measured)")
    parser.add_argument("--progress", choices=PROGRESS_MODES, help="progress bars on stderr (default: auto)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads during the run (default: torch's own)")
    parser.add_argument("--no-drift", dest="drift", action="store_false", default=None,
                        help="skip the drift stage (long streams scored window by window)")
    parser.add_argument("--drift-workers", dest="drift_workers", type=int, metavar="N",
                        help="processes generating and scoring the drift streams: 0 (default) = automatic (on a "
                             "CPU one per torch thread, at most one per stream and per 1.5 GiB available; on a "
                             "GPU this process), 1 = this process (docs/drift.md)")
    parser.add_argument("--no-continuation", dest="continuation", action="store_false", default=None,
                        help="skip the continuation stage (held-out music contexts continued by every regime and "
                             "its random-init twin, scored for pitch, context fidelity and KAD)")
    parser.add_argument("--no-report", dest="report", action="store_false", default=None,
                        help="do not build the HTML report at the end (python run_all.py --report-only RUN_DIR later)")
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="who runs the cells: local (default; one after another here) or ray (one Ray task "
                             "per cell with a whole GPU or a whole node's CPUs; pip install 'live-music-bench[ray]')")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="--executor ray: the cluster to use (auto, host:6379, ray://host:10001); "
                             "default: RAY_ADDRESS, else a new local cluster")


def build_parser() -> argparse.ArgumentParser:
    """The ``python run_all.py`` argument parser (``--help`` documents every option)."""
    parser = argparse.ArgumentParser(prog="python run_all.py", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=_names_epilog() + EPILOG)
    _add_run_options(parser)
    parser.add_argument("--report-only", nargs="+", type=Path, metavar="RUN_DIR",
                        help="build the report (tables, figures, audio, HTML) from saved run folders and exit; runs nothing")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="report comparing run A with run B (deltas B - A, warnings when manifests differ)")
    parser.add_argument("--list", action="store_true", help="list presets, workloads, generators and fields, then exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def list_everything() -> str:
    """The text of ``--list``: presets, workloads, generators and the fields ``--set`` accepts."""
    lines = ["presets:"]
    lines += [f"  {p.name:<11} {p.description}" for p in PRESETS.values()]
    lines.append("workloads:")
    lines += [f"  {w.name:<22} {w.description}" for name in WORKLOADS for w in get_workloads(name)]
    lines.append("generators:")
    lines += [f"  {name}" for name in GENERATORS.names()]
    lines += [f"  {name} (by name only: --generators {name})" for name in GENERATORS.by_name_only()]
    lines.append("preset fields (--set FIELD=VALUE):")
    lines += [f"  {f}" for f in preset_fields() if not f.startswith("settings.")]
    lines.append("workload fields (--set workload.FIELD=VALUE):")
    lines += [f"  workload.{f.name}" for f in dataclasses.fields(Workload) if f.name != "name"]
    return "\n".join(lines) + "\n"


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr at INFO (``-v``: DEBUG, ``-q``: WARNING). fontTools, which matplotlib calls to
    subset the fonts of every PDF figure, logs each table it subsets at INFO (about 770 lines in a
    default run): it logs warnings only, unless ``-v``."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    root.setLevel(level)
    logging.getLogger("fontTools").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _report_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m reports`` arguments of ``--report-only`` / ``--compare`` (and ``--out``)."""
    argv = [str(p) for p in (args.report_only or [])]
    argv += ["--out", str(args.out)] if args.out else []
    argv += ["--compare", *map(str, args.compare)] if args.compare else []
    return argv


def _finished(out: object) -> str:
    """What the run folder holds: cells ok and failed so far."""
    statuses = [read_json(p) or {} for p in sorted(Path(str(out)).glob("cells/*/status.json"))]
    ok = [f"{s.get('generator')} x {s.get('workload')}" for s in statuses if s.get("status") == "ok"]
    failed = [f"{s.get('generator')} x {s.get('workload')}" for s in statuses if s.get("status") not in (None, "ok")]
    return (f"{len(ok)} cell(s) finished ok ({', '.join(ok) or 'none'}), {len(failed)} failed"
            + (f" ({', '.join(failed)})" if failed else ""))


def _stopped(exc: RunStopped, argv: Sequence[str]) -> int:
    """One paragraph for a run that stopped early (Ctrl-C, full disk, unwritable file) and its exit status."""
    again = resume_command(argv, exc.out)
    if exc.interrupted:
        log.error("interrupted (Ctrl-C): %s in %s. Finished cells are kept; continue with:\n  %s",
                  _finished(exc.out), exc.out, again)
        return EXIT_INTERRUPTED
    cause = exc.cause
    where = getattr(cause, "filename", None) or exc.out
    if getattr(cause, "errno", None) == errno.ENOSPC:
        what = f"the disk holding {where} is full"
    elif getattr(cause, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"{where} cannot be written ({getattr(cause, 'strerror', None) or cause})"
    else:
        what = f"writing {where} failed ({cause})"
    log.error("the run stopped: %s. %s so far in %s. Free space or fix the folder, then continue with:\n  %s",
              what, _finished(exc.out), exc.out, again)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None, clock: Any = None) -> int:
    """Entry point of ``python run_all.py``; ``clock`` lets tests inject a FakeClock. Returns the exit
    status (0 ok, 1 a cell failed or a write failed, 2 bad configuration, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the problem
        if exc.code in (0, None):
            raise
        return EXIT_CONFIG
    _setup_logging(args.verbose, args.quiet)
    if args.list:
        sys.stdout.write(list_everything())
        return EXIT_OK
    if args.report_only or args.compare:
        return report_main(_report_argv(args))
    try:
        cfg = resolve_config(args)
        # The one lazy import of the CLI, on purpose: a run needs torch and the models, and importing
        # them here keeps --help, --list, --report-only and --compare working where torch cannot be
        # imported (tests/test_architecture.py checks this).
        from bench.app.execute import execute_config

        return execute_config(cfg, clock, argv)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except RunStopped as exc:
        return _stopped(exc, argv)
    except Exception as exc:  # noqa: BLE001 - a message, not a traceback; the traceback at -v
        log.error("unexpected error (a bug in the harness; please report it): %s: %s", type(exc).__name__, exc)
        log.debug("traceback", exc_info=True)
        return EXIT_FAILED
