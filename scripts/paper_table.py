"""Print the paper-scale table: every registered regime at the sao-small, mrt-base and mrt-large
presets with their native stream settings, next to the published model sizes.

    python scripts/paper_table.py                    # all presets, all regimes
    python scripts/paper_table.py --presets mrt-base --regimes lmm outpaint
    python scripts/paper_table.py --no-token-passes  # skip the CPU twin runs (meta only, instant)

Parameters and analytic FLOPs come from models built on ``device="meta"`` (no weights, no
memory). Token-passes per block are MEASURED, not derived: each regime is built a second time
with its widths and depths shrunk to a toy size (every sequence length, step count, codebook and
level count unchanged, so the count of query token-passes is the same) and streamed for two blocks
on the CPU; ``StepInfo.tokens_processed`` of block 0 (first) and block 1 (steady) is reported.
A regime that cannot be imported or built gets a row saying so instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from baselines.sat_dit import resolve_config_path
from bench.core.presets import Preset, apply_overrides, get_preset
from bench.core.registry import GENERATORS
from bench.core.settings import Control

PRESETS = ("sao-small", "sao-small-sat", "mrt-base", "mrt-large")
# Rows that are a preset run with a different backbone: "sao-small-sat" is stable-audio-tools' own
# DiT built from Stable Audio Open Small's config (dit.arch=sat, baselines/sat_dit.py) instead of our
# look-alike; the stream is sao-small's. Only the diffusion regimes change.
VARIANTS = {"sao-small-sat": ("sao-small", ["dit.arch=sat", "dit.config=builtin:sao-small"])}
DIFFUSION_REGIMES = ("outpaint", "lmdm-encdec", "lmdm-causal", "lmdm-causal-arc")
DIFFUSION_PUBLISHED = "SAO-small: 341M"
PUBLISHED = {
    ("mrt-large", "lmm"): "Magenta RT: ~800M quoted",
    **{(p, "musicgen"): "musicgen-small: ~300M decoder (+ T5-base, EnCodec)" for p in ("sao-small", "mrt-base", "mrt-large")},
}
TWIN_OVERRIDES = {  # toy widths/depths; lengths, steps, codebooks and levels unchanged.
    # Applied in order and validated one by one: heads first, so every width stays divisible.
    "dit.heads": 2, "dit.width": 16, "dit.depth": 1, "dit.mlp_mult": 1, "dit.cond_dim": 8,
    "lmm.heads": 2, "lmm.width": 16, "lmm.mlp_hidden": 16,
    "lmm.encoder_layers": 1, "lmm.temporal_layers": 1, "lmm.depth_layers": 1,
    "musicgen.size": "tiny",  # same 50 Hz frames and 4 codebooks: the same token-passes
}

log = logging.getLogger("paper_table")


@dataclass
class Row:
    preset: str
    regime: str
    params_m: float | None = None
    gflop_first: float | None = None
    gflop_steady: float | None = None
    gflop_per_audio_s: float | None = None
    block_s: float | None = None
    passes_first: int | None = None
    passes_steady: int | None = None
    published: str = ""
    note: str = ""


def published_size(preset: str, regime: str) -> str:
    if (preset, regime) in PUBLISHED:
        return PUBLISHED[(preset, regime)]
    if regime in ("outpaint", "lmdm-encdec", "lmdm-causal"):
        return DIFFUSION_PUBLISHED
    return ""


def load_preset(name: str) -> Preset:
    """A preset by name, or a :data:`VARIANTS` row's preset with its overrides."""
    if name in VARIANTS:
        base, overrides = VARIANTS[name]
        return apply_overrides(get_preset(base), overrides)
    return get_preset(name)


def _twin(preset: Preset, scratch: Path) -> Preset:
    """The toy-width twin of ``preset``: for a sat backbone, its model config shrunk the same way
    (written as JSON into ``scratch``: the twin's widths come from the config, not from dit.*)."""
    twin = apply_overrides(preset, TWIN_OVERRIDES)
    if preset.dit.arch != "sat":
        return twin
    doc = json.loads(resolve_config_path(preset.dit.config).read_text())
    doc["model"]["diffusion"]["config"].update(embed_dim=64, depth=1, num_heads=2, cond_token_dim=8,
                                               global_cond_dim=8)
    path = scratch / "twin_config.json"
    path.write_text(json.dumps(doc))
    return apply_overrides(twin, [f"dit.config={path}", "dit.cond_dim=8"])


def measure_token_passes(preset_name: str, regime: str) -> tuple[int, int]:
    """tokens_processed of the first and a steady block, from a toy-width twin on the CPU."""
    with tempfile.TemporaryDirectory(prefix="paper-table-") as scratch:  # the twin's config, removed after
        preset = _twin(load_preset(preset_name), Path(scratch))
        gen = GENERATORS.create(regime, preset, preset.settings, device="cpu")
        control = Control("paper table")
        state = gen.start(control, seed=0)
        first, state = gen.step(state, control)
        steady, state = gen.step(state, control)
        gen.stop(state)
    return first.info.tokens_processed, steady.info.tokens_processed


def build_row(preset_name: str, regime: str, token_passes: bool) -> Row:
    row = Row(preset_name, regime, published=published_size(preset_name, regime))
    preset = load_preset(preset_name)
    try:
        gen = GENERATORS.create(regime, preset, preset.settings, device="meta")
        row.params_m = gen.num_parameters() / 1e6
        first, steady = sum(gen.analytic_flops(True).values()), sum(gen.analytic_flops(False).values())
        row.gflop_first, row.gflop_steady = first / 1e9, steady / 1e9
        row.block_s = gen.spec.block_s
        row.gflop_per_audio_s = steady / 1e9 / gen.spec.block_s
    except Exception as exc:  # noqa: BLE001 - one regime failing must not hide the others
        row.note = f"not built on meta: {type(exc).__name__}: {exc}".splitlines()[0][:160]
        log.debug("%s", traceback.format_exc())
        return row
    if token_passes:
        try:
            row.passes_first, row.passes_steady = measure_token_passes(preset_name, regime)
        except Exception as exc:  # noqa: BLE001
            row.note = f"token-passes not measured: {type(exc).__name__}: {exc}".splitlines()[0][:160]
    else:
        row.note = "token-passes not measured (--no-token-passes)"
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def to_markdown(rows: list[Row]) -> str:
    lines = [
        "| preset | regime | params (M) | block (s) | GFLOP/block first | GFLOP/block steady "
        "| GFLOP per audio s | token-passes/block (first / steady) | published size | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if r.passes_first is None:
            passes = "n/a"
        elif r.passes_first == r.passes_steady:
            passes = str(r.passes_first)
        else:
            passes = f"{r.passes_first} / {r.passes_steady}"
        lines.append(
            f"| {r.preset} | {r.regime} | {_fmt(r.params_m, '.1f')} | {_fmt(r.block_s, '.2f')} "
            f"| {_fmt(r.gflop_first, '.1f')} | {_fmt(r.gflop_steady, '.1f')} | {_fmt(r.gflop_per_audio_s, '.1f')} "
            f"| {passes} | {r.published} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--regimes", nargs="+", default=None, help="default: every registered generator")
    parser.add_argument("--no-token-passes", action="store_true", help="skip the CPU twin runs")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    torch.set_grad_enabled(False)  # a script, not a library: no caller state to preserve
    regimes = args.regimes or GENERATORS.names() + GENERATORS.by_name_only()  # musicgen too
    started = time.perf_counter()
    rows = [build_row(p, r, not args.no_token_passes) for p in args.presets for r in regimes
            if p not in VARIANTS or r in DIFFUSION_REGIMES]
    print(to_markdown(rows))
    settings = {p: load_preset(p).settings for p in args.presets if p not in VARIANTS}
    print()
    print("Native streams: " + "; ".join(
        f"{p}: context {s.context_s:.2f} s, block {s.block_s:.2f} s, {s.steps} steps, CFG {'on' if s.cfg else 'off'}"
        for p, s in settings.items()
    ))
    print(f"(built in {time.perf_counter() - started:.1f} s; FLOPs analytic, matmuls + dense attention; "
          "parameter counts exclude text encoders and the weight-free codec, except musicgen's, which include "
          "its T5-base encoder and EnCodec)")
    return 0 if all(not r.note.startswith("not built") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
