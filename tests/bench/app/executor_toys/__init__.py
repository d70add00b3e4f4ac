"""Toy generators for the executor tests, in an importable module of their own: a Ray worker is a
fresh process that imports a generator by its registry target (``module:Class``), and the cell's
code hash covers this folder only, so edits elsewhere in tests/ never change it.

Both toys are the null generator (seeded noise) with a fault that is on while the file named by the
environment variable :data:`FAULT_FLAG_ENV` exists (a worker inherits the variable when its cluster
starts; the test removes the file to "fix" the generator, keeping its code, so its hash, the same).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from baselines.noise import NoiseGenerator, NoiseState
from bench.core.contract import NULL_RECORDER, PhaseRecorder, StepResult

FAULT_FLAG_ENV = "LMB_TEST_FAULT_FLAG"
KILL_BLOCK = 2  # the timed stream's block whose step kills the worker (smoke: 8 blocks, 1 warm-up)
RAISE_BLOCK = 3
TARGETS = {"toy-crash": f"{__name__}:CrashingNoise", "toy-raise": f"{__name__}:RaisingNoise"}


def fault_on() -> bool:
    """Whether the fault flag file exists."""
    path = os.environ.get(FAULT_FLAG_ENV)
    return bool(path) and Path(path).exists()


class CrashingNoise(NoiseGenerator):
    """Kills its own process (SIGKILL, as the OOM killer or a lost node would) in block 2."""

    name = "toy-crash"

    def step(self, state: NoiseState, control: Any,
             recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, NoiseState]:
        if state.block_index == KILL_BLOCK and fault_on():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(state, control, recorder)


class RaisingNoise(NoiseGenerator):
    """Raises RuntimeError in block 3 (a Python failure inside the cell)."""

    name = "toy-raise"

    def step(self, state: NoiseState, control: Any,
             recorder: PhaseRecorder = NULL_RECORDER) -> tuple[StepResult, NoiseState]:
        if state.block_index == RAISE_BLOCK and fault_on():
            raise RuntimeError(f"toy failure at block {RAISE_BLOCK}")
        return super().step(state, control, recorder)
