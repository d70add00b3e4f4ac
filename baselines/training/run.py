"""The training commands: RVQ fit, base DiT, the two LMDM fine-tunes, the LMM, and publishing.

Each command reads the built data set, trains into ``<runs>/<model>/`` (state, loss log, the
float16 EMA export ``model.safetensors`` and ``run.json``), and :func:`publish` copies finished
runs into ``baselines/checkpoints/<preset>/`` under their regime names (see ``export.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from baselines.data.build import Dataset, load_dataset
from baselines.dit import build_dit, parameter_count
from baselines.lmdm_causal import ARC_REGIME, BlockCausalGenerator
from baselines.lmm import RVQ_CODEBOOKS_KEY, LMMNet, lmm_parameter_count
from baselines.training.arc import ArcSettings, ArcTask, Discriminator
from baselines.training.data import LatentBank, TokenBank, encode_clips
from baselines.training.diffusion import TASK_REGIME, DiffusionTask, Geometry
from baselines.training.export import (
    MAX_FILE_BYTES,
    checkpoints_dir,
    save_half,
    update_config,
)
from baselines.training.lmm import LMMTask
from baselines.training.loop import LoopConfig, LoopResult, train
from baselines.training.presets import CPU_TRAINED_OVERRIDES, PRESET_NAME, training_preset
from baselines.training.rvq import fit_rvq
from baselines.transformer import init_parameters
from baselines.weights import sha256_of
from bench.core.presets import Preset

log = logging.getLogger(__name__)

EXPORT_FILE = "model.safetensors"
RUN_FILE = "run.json"
RVQ_FILE = "rvq.safetensors"
DEFAULT_RUNS = Path("runs/train")
MODEL_NAMES = {"base": "base", "encdec": "encdec", "causal": "causal", "lmm": "lmm", "arc": "arc"}
MODEL_REGIME = {**TASK_REGIME, "lmm": "lmm", "arc": ARC_REGIME}

# Defaults of the committed run (docs/data_and_training.md has the measured times).
DEFAULT_STEPS = {"base": 6000, "encdec": 1500, "causal": 1500, "lmm": 6000, "arc": 600}
DEFAULT_BATCH = {"base": 12, "encdec": 12, "causal": 12, "lmm": 8, "arc": 4}
DEFAULT_LR = {"base": 5e-4, "encdec": 2e-4, "causal": 2e-4, "lmm": 1e-3, "arc": 2e-5}


@dataclass(frozen=True)
class RunOptions:
    """What every training command shares."""

    data: str | None = None  # data set folder (default: the cache)
    runs: str = str(DEFAULT_RUNS)
    preset: str = PRESET_NAME
    overrides: tuple[str, ...] = ()  # on top of the trained-architecture overrides
    seed: int = 0
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    resume: bool = False
    max_minutes: float | None = None
    progress: bool = True
    p_silence: float = 0.15
    save_every: int = 100

    def preset_obj(self) -> Preset:
        return training_preset(self.preset, self.overrides)

    def all_overrides(self) -> list[str]:
        return list(CPU_TRAINED_OVERRIDES if self.preset == PRESET_NAME else ()) + list(self.overrides)

    def loop(self, model: str) -> LoopConfig:
        return LoopConfig(
            name=model, steps=self.steps or DEFAULT_STEPS[model], batch=self.batch or DEFAULT_BATCH[model],
            lr=self.lr or DEFAULT_LR[model], warmup_steps=min(100, max(1, (self.steps or DEFAULT_STEPS[model]) // 10)),
            seed=self.seed, save_every=self.save_every,
        )


def _geometry(preset: Preset, frame_rate_hz: float) -> tuple[int, int]:
    return preset.settings.frames(frame_rate_hz)  # (context_frames, block_frames)


def _data_info(dataset: Dataset) -> dict[str, Any]:
    return {"manifest_sha256": dataset.manifest_sha256(), "train_clips": len(dataset.clips("train")),
            "reference_clips": len(dataset.clips("reference")), "build_config": dataset.manifest["config"]}


def _write_run(folder: Path, info: dict[str, Any]) -> None:
    (folder / RUN_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def _arch(config: Any) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d.pop("weights", None)
    return d


# ------------------------------------------------------------------------------------ RVQ
def fit_codebooks(options: RunOptions, iters: int = 15) -> Path:
    """Fit the LMM's RVQ codebooks on the training split -> ``<runs>/rvq/rvq.safetensors``."""
    preset = options.preset_obj()
    cfg = preset.lmm
    dataset = load_dataset(options.data)
    latents = encode_clips(dataset, dataset.clips("train"), cfg.codec)  # (n, F, D)
    fit = fit_rvq(latents, cfg.rvq_levels, cfg.codebook_size, iters=iters, seed=options.seed)
    folder = Path(options.runs) / "rvq"
    folder.mkdir(parents=True, exist_ok=True)
    save_half({RVQ_CODEBOOKS_KEY: fit.codebooks}, folder / RVQ_FILE)
    _write_run(folder, {
        "model": "rvq", "levels": cfg.rvq_levels, "size": cfg.codebook_size, "dim": cfg.codec.latent_dim,
        "iters": iters, "seed": options.seed, "frames": fit.frames, "snr_db": [round(v, 3) for v in fit.snr_db()],
        "data": _data_info(dataset), "preset": options.preset, "preset_overrides": options.all_overrides(),
    })
    log.info("rvq: SNR after each level (dB): %s", ", ".join(f"{v:.2f}" for v in fit.snr_db()))
    return folder / RVQ_FILE


def load_codebooks(options: RunOptions) -> torch.Tensor:
    """The RVQ codebooks fitted by :func:`fit_codebooks` for ``options`` (float32)."""
    path = Path(options.runs) / "rvq" / RVQ_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no fitted codebooks at {path}: run `python -m baselines.training rvq` first")
    return load_file(str(path))[RVQ_CODEBOOKS_KEY].float()


# ------------------------------------------------------------------------------ diffusion
def train_diffusion(task: str, options: RunOptions, init: str | None = None) -> LoopResult:
    """Train the base DiT (``task="base"``) or fine-tune it (``"encdec"``, ``"causal"``)."""
    preset = options.preset_obj()
    cfg = preset.dit
    folder = Path(options.runs) / MODEL_NAMES[task]
    if task == "base":
        init_desc = f"seeded init (dit.init_seed={cfg.init_seed})"
        model = build_dit(dataclasses.replace(cfg, weights=""))  # the preset may name the committed weights
    else:
        init_path = Path(init) if init else Path(options.runs) / "base" / EXPORT_FILE
        if not init_path.is_file():
            raise FileNotFoundError(f"{task} fine-tunes the base model, but {init_path} does not exist: "
                                    "train it first (`python -m baselines.training base`) or pass --init FILE")
        init_desc = f"{init_path.name} sha256 {sha256_of(init_path)}"
        model = build_dit(dataclasses.replace(cfg, weights=str(init_path)))
    dataset = load_dataset(options.data)
    bank = LatentBank.from_dataset(dataset, "train", cfg)
    context, block = _geometry(preset, cfg.codec.frame_rate_hz)
    geometry = Geometry(context, block)
    loop = options.loop(task)
    result = train(model, DiffusionTask(task, model, bank, geometry, loop.batch, options.p_silence).loss, loop, folder,
                   resume=options.resume, max_minutes=options.max_minutes, progress=options.progress)
    _export(folder, task, result, loop, options, dataset, parameter_count(cfg), _arch(cfg), {
        "init": init_desc, "geometry_frames": {"context": context, "block": block}, "p_silence": options.p_silence,
    })
    return result


# ------------------------------------------------------------------------------------ ARC
def _arc_init(given: str | None, run_model: str, regime: str, options: RunOptions) -> Path:
    """The weights ARC starts from: ``given``, else this chain's run, else the committed checkpoint."""
    if given:
        path = Path(given)
    else:
        run_path = Path(options.runs) / MODEL_NAMES[run_model] / EXPORT_FILE
        path = run_path if run_path.is_file() else checkpoints_dir(options.preset) / f"{regime}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"ARC-Forcing needs the {regime} weights, but {path} does not exist: train them "
                                f"(`python -m baselines.training {run_model}`) or pass the file")
    return path


def train_arc(options: RunOptions, init: str | None = None, disc_init: str | None = None,
              settings: ArcSettings | None = None) -> LoopResult:
    """ARC-Forcing post-training of the block-causal LMDM (baselines/training/arc.py)."""
    settings = settings or ArcSettings()
    preset = options.preset_obj()
    cfg = preset.dit
    init_path = _arc_init(init, "causal", "lmdm-causal", options)
    disc_path = _arc_init(disc_init, "base", "outpaint", options)
    run_preset = dataclasses.replace(preset, dit=dataclasses.replace(cfg, weights=str(init_path)))
    gen = BlockCausalGenerator(run_preset, preset.settings)
    base = build_dit(dataclasses.replace(cfg, weights=str(disc_path)))
    disc = Discriminator(base, settings.disc_layers or max(1, cfg.depth // 2))
    dataset = load_dataset(options.data)
    bank = LatentBank.from_dataset(dataset, "train", cfg)
    loop = options.loop("arc")
    task = ArcTask(gen, disc, bank, settings, loop.batch)
    folder = Path(options.runs) / MODEL_NAMES["arc"]
    result = train(gen.dit, task.loss, loop, folder, resume=options.resume, max_minutes=options.max_minutes,
                   progress=options.progress, companions={"discriminator": disc, "disc_optimizer": task.disc_optimizer},
                   extra_columns=task.extra_columns, extra_values=task.extra_values)
    context, block = _geometry(preset, cfg.codec.frame_rate_hz)
    _export(folder, "arc", result, loop, options, dataset, parameter_count(cfg), _arch(cfg), {
        "init": f"{init_path.name} sha256 {sha256_of(init_path)}",
        "discriminator_init": f"{disc_path.name} sha256 {sha256_of(disc_path)} (first {disc.layers} layers)",
        "arc": {**dataclasses.asdict(settings), "disc_logsnr": list(settings.disc_logsnr),
                "stream_steps": gen.steps, "sampler": "pingpong (rollouts)"},
        "geometry_frames": {"context": context, "block": block},
        "final_disc_values": dict(zip(task.extra_columns, [round(v, 6) for v in task.last_values])),
    })
    return result


# ------------------------------------------------------------------------------------ LMM
def train_lmm(options: RunOptions) -> LoopResult:
    preset = options.preset_obj()
    cfg = preset.lmm
    codebooks = load_codebooks(options)
    net = LMMNet(cfg, device="meta").to_empty(device="cpu")
    init_parameters(net, torch.Generator().manual_seed(cfg.init_seed))  # the generator's seeded init
    dataset = load_dataset(options.data)
    bank = TokenBank.from_dataset(dataset, "train", cfg, codebooks)
    context, block = _geometry(preset, cfg.codec.frame_rate_hz)
    loop = options.loop("lmm")
    folder = Path(options.runs) / "lmm"
    task = LMMTask(net, cfg, bank, context, block, loop.batch, options.p_silence)
    result = train(net, task.loss, loop, folder, resume=options.resume, max_minutes=options.max_minutes,
                   progress=options.progress)
    result.ema[RVQ_CODEBOOKS_KEY] = codebooks
    rvq_info = json.loads((Path(options.runs) / "rvq" / RUN_FILE).read_text())
    _export(folder, "lmm", result, loop, options, dataset, lmm_parameter_count(cfg), _arch(cfg), {
        "init": f"seeded init (lmm.init_seed={cfg.init_seed})", "geometry_frames": {"context": context, "block": block},
        "p_silence": options.p_silence, "rvq": {k: rvq_info[k] for k in ("levels", "size", "dim", "iters", "seed",
                                                                         "frames", "snr_db")},
    })
    return result


# ------------------------------------------------------------------------------------ export
def _export(folder: Path, model: str, result: LoopResult, loop: LoopConfig, options: RunOptions, dataset: Dataset,
            parameters: int, architecture: dict[str, Any], extra: dict[str, Any]) -> None:
    regime = MODEL_REGIME[model]
    size = save_half(result.ema, folder / EXPORT_FILE,
                     metadata={"regime": regime, "preset": options.preset, "format": "live-music-bench/1"})
    info = {
        "model": model, "regime": regime, "preset": options.preset, "preset_overrides": options.all_overrides(),
        "architecture": architecture, "parameters": parameters,
        "training": {**dataclasses.asdict(loop), "betas": list(loop.betas), **extra,
                     "weights_exported": "EMA", "threads": torch.get_num_threads()},
        "steps_done": result.step, "finished": result.finished,
        "final_loss": round(result.final_loss, 6), "final_loss_window": "mean of the last 50 steps",
        "wall_s": round(result.wall_s, 1), "data": _data_info(dataset),
        "file_bytes": size, "sha256": sha256_of(folder / EXPORT_FILE),
    }
    _write_run(folder, info)
    log.info("%s: %d steps, final loss %.4f, %.1f min, %s (%d bytes)", model, result.step, result.final_loss,
             result.wall_s / 60, folder / EXPORT_FILE, size)


def publish(options: RunOptions, dest: str | None = None,
            models: tuple[str, ...] = ("base", "encdec", "causal", "lmm", "arc"),
            allow_unfinished: bool = False) -> Path:
    """Copy finished runs into ``dest`` (default ``baselines/checkpoints/<preset>``) under their
    regime names, update ``config.json`` and ``SHA256SUMS``."""
    target = Path(dest) if dest else checkpoints_dir(options.preset)
    target.mkdir(parents=True, exist_ok=True)
    for model in models:
        folder = Path(options.runs) / MODEL_NAMES[model]
        run_path = folder / RUN_FILE
        if not run_path.is_file():
            log.warning("publish: no finished run in %s (skipped)", folder)
            continue
        info = json.loads(run_path.read_text())
        if not info["finished"] and not allow_unfinished:
            raise ValueError(f"{folder} stopped at step {info['steps_done']} of {info['training']['steps']}: "
                             "resume it (--resume) before publishing")
        if info["file_bytes"] >= MAX_FILE_BYTES:
            raise ValueError(f"{folder / EXPORT_FILE} is {info['file_bytes']} bytes, over the {MAX_FILE_BYTES} limit")
        name = f"{info['regime']}.safetensors"
        shutil.copyfile(folder / EXPORT_FILE, target / name)
        entry = {k: v for k, v in info.items() if k not in ("preset", "preset_overrides")}
        entry["file"] = name
        update_config(target, info["preset"], info["preset_overrides"], info["regime"], entry)
        log.info("published %s -> %s", folder / EXPORT_FILE, target / name)
    return target


__all__ = [
    "RunOptions", "fit_codebooks", "train_diffusion", "train_lmm", "train_arc", "publish", "DEFAULT_STEPS", "EXPORT_FILE",
    "RUN_FILE", "MODEL_REGIME",
]
