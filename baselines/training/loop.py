"""A small, seeded, resumable training loop shared by every model.

- Randomness: step ``k`` draws everything (windows, prompts, t, noise) from its own
  ``torch.Generator`` seeded by ``(task name, seed, k)``, so the RNG "state" of a run is just
  (seed, step) and a resumed run draws exactly what an uninterrupted one would (tested).
- Optimiser: AdamW, linear warm-up then cosine decay to ``min_lr_ratio * lr`` at ``steps``,
  gradient clipping; an exponential moving average (EMA) of the weights is kept and exported.
- State: ``<out>/train_state.pt`` (model, EMA, optimiser, step, accumulated wall time, config)
  is written atomically every ``save_every`` steps and at the end; ``resume=True`` continues
  from it (a different config is refused with a message naming the differing fields).
- Log: ``<out>/loss.csv`` (step, loss, lr, grad_norm, wall_s), truncated to the saved step on
  resume so a crash never leaves duplicate rows; a tqdm bar on stderr.
- ``max_minutes`` stops early (after saving): rerun with ``resume=True`` to finish.
- Companions: objects a task trains beside the model (ARC-Forcing's discriminator and its
  optimiser) are saved in the state and restored on resume under their names; a task's
  ``extra_values()`` (for example the discriminator's loss) are logged as extra ``loss.csv`` columns.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm import tqdm

from bench.core.hashing import stable_hash

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
LOSS_FILE = "loss.csv"
LOSS_COLUMNS = ("step", "loss", "lr", "grad_norm", "wall_s")


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings (part of the resumability check and the checkpoint's config)."""

    name: str  # task name, part of the per-step seed
    steps: int
    batch: int
    lr: float = 3e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    save_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got {self.steps} and {self.batch}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(config: LoopConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(stable_hash("train", config.name, int(config.seed), int(step)) % (2**63))


@dataclass
class LoopResult:
    step: int  # steps completed
    finished: bool  # reached config.steps
    final_loss: float  # mean loss over the last (up to) 50 steps
    wall_s: float  # accumulated training wall time (over resumes)
    ema: dict[str, torch.Tensor]  # the EMA weights (float32)


class EMA:
    """Exponential moving average of a module's floating parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(decay).add_(v.detach().float(), alpha=1.0 - decay)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _config_dict(config: LoopConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["betas"] = list(d["betas"])
    return d


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Generator], torch.Tensor],
    config: LoopConfig,
    out: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    progress: bool = True,
    extra_state: dict[str, Any] | None = None,
    companions: Mapping[str, Any] | None = None,
    extra_columns: Sequence[str] = (),
    extra_values: Callable[[], Sequence[float]] | None = None,
) -> LoopResult:
    """Train ``model`` with ``loss_fn(generator) -> scalar`` (see module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.train()
    model.requires_grad_(True)
    optimizer = _optimizer(model, config)
    ema = EMA(model, config.ema_decay)
    state_path, loss_path = out / STATE_FILE, out / LOSS_FILE
    companions = dict(companions or {})
    start, wall_before = _resume(out, config, model, optimizer, ema, companions) if resume else (0, 0.0)
    if start == 0:
        with loss_path.open("w", newline="") as f:
            csv.writer(f).writerow(LOSS_COLUMNS + tuple(extra_columns))
    save = functools.partial(_save_state, state_path, config, model, optimizer, ema, extra_state or {}, companions)
    bar = tqdm(total=config.steps, initial=start, desc=config.name, unit="step", mininterval=2.0) if progress else None
    began = time.perf_counter()
    recent: list[float] = _recent_losses(loss_path)
    step = start
    stopped_early = False
    with loss_path.open("a", newline="") as f:
        writer = csv.writer(f)
        while step < config.steps:
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(step_generator(config, step))
            if not torch.isfinite(loss):
                save(step, wall_before + time.perf_counter() - began)
                raise FloatingPointError(f"{config.name}: loss is {loss.item()} at step {step} (state saved at step {step})")
            grad_norm = _update(model, optimizer, ema, loss, config, step)
            step += 1
            value = float(loss.detach())
            recent = (recent + [value])[-50:]
            wall = wall_before + time.perf_counter() - began
            extras = [f"{v:.6f}" for v in extra_values()] if extra_values is not None else []
            writer.writerow([step, f"{value:.6f}", f"{lr:.3e}", f"{grad_norm:.4f}", f"{wall:.2f}", *extras])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
            if step % config.save_every == 0 or step == config.steps:
                f.flush()
                save(step, wall)
            if max_minutes is not None and (time.perf_counter() - began) > 60.0 * max_minutes and step < config.steps:
                f.flush()
                save(step, wall)
                log.warning("%s: stopped at step %d of %d after %.1f min (resume to finish)",
                            config.name, step, config.steps, max_minutes)
                stopped_early = True
                break
    if bar is not None:
        bar.close()
    model.eval()
    model.requires_grad_(False)
    wall = wall_before + time.perf_counter() - began
    final = sum(recent) / len(recent) if recent else float("nan")
    return LoopResult(step=step, finished=not stopped_early and step >= config.steps, final_loss=final, wall_s=wall,
                      ema={k: v.clone() for k, v in ema.shadow.items()})


def _optimizer(model: torch.nn.Module, config: LoopConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on biases, norms or embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or "embed" in name else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=config.betas,
    )


def _resume(out: Path, config: LoopConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            ema: EMA, companions: Mapping[str, Any] | None = None) -> tuple[int, float]:
    """Restore model, optimiser and EMA from ``out``'s saved state and cut the loss log back to it;
    (steps done, wall seconds so far), or (0, 0.0) when nothing was saved. A run saved with other
    settings is refused, naming the settings that differ."""
    state_path = out / STATE_FILE
    if not state_path.is_file():
        log.info("no %s in %s: starting from step 0", STATE_FILE, out)
        return 0, 0.0
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    saved, current = state["config"], _config_dict(config)
    if saved != current:
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ValueError(f"cannot resume {out}: the saved run used other settings ({', '.join(diff)}); "
                         "use the same settings or a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    ema.shadow = {k: v.float() for k, v in state["ema"].items()}
    for name, companion in (companions or {}).items():
        if name not in state.get("companions", {}):
            raise ValueError(f"cannot resume {out}: its saved state has no {name!r}; use a new --out")
        companion.load_state_dict(state["companions"][name])
    start, wall_s = int(state["step"]), float(state["wall_s"])
    _truncate_log(out / LOSS_FILE, start)
    log.info("resumed %s at step %d", out, start)
    return start, wall_s


def _save_state(path: Path, config: LoopConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA,
                extra_state: dict[str, Any], companions: Mapping[str, Any], step: int, wall_s: float) -> None:
    """Write everything a resumed run needs (and ``extra_state``) to ``path``, atomically."""
    state = {
        "step": step, "wall_s": wall_s, "config": _config_dict(config),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema.shadow,
        "rng": {"scheme": "per-step torch.Generator seeded by (name, seed, step)", "seed": config.seed},
        "companions": {name: companion.state_dict() for name, companion in companions.items()},
        **extra_state,
    }
    _atomic_torch_save(state, path)


def _update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA, loss: torch.Tensor,
            config: LoopConfig, step: int) -> float:
    """One optimiser step on ``loss`` (gradients clipped to ``config.grad_clip``) and the EMA
    update; the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
    optimizer.step()
    ema.update(model, step)
    return grad_norm


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        with path.open("w", newline="") as f:
            csv.writer(f).writerow(LOSS_COLUMNS)
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _recent_losses(path: Path) -> list[float]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [float(r[1]) for r in rows[-50:] if r]


def read_loss_log(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``loss.csv`` as dicts of floats."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


__all__ = ["LoopConfig", "LoopResult", "EMA", "train", "step_generator", "read_loss_log", "STATE_FILE", "LOSS_FILE"]
