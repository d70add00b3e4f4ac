"""What the drift stage keeps of one generator (its status record, its streams and its result), and
scoring its streams into it in this process."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.app.drift.score import Scorer
from bench.core.storage import STATUS_FAILED, STATUS_OK
from metrics.drift.regression import DriftResult

log = logging.getLogger(__name__)
STATUS_COLUMNS = ("generator", "status", "error", "wall_s", "generate_s", "score_s")


@dataclass
class Outcome:
    """One generator's drift outcome: ``streams`` when its streams were generated (kept also when
    scoring failed), ``result`` when they were scored."""

    generator: str
    status: dict[str, Any]
    streams: pd.DataFrame | None = None
    result: DriftResult | None = None


def status_record(generator: str, generate_s: float, score_s: float | None, exc: BaseException | None
                  ) -> dict[str, Any]:
    """One generator's status record: ``wall_s`` is its generation plus scoring time; ``score_s`` is
    None when nothing was scored (generation failed) or when a worker's scoring job did not return."""
    failed = exc is not None
    return {"generator": generator, "status": STATUS_FAILED if failed else STATUS_OK,
            "error": f"{type(exc).__name__}: {exc}" if failed else "",
            "traceback": "".join(traceback.format_exception(exc)) if failed else "",
            "wall_s": generate_s + (score_s or 0.0), "generate_s": generate_s, "score_s": score_s}


def score_outcome(generator: str, streams: pd.DataFrame, scorer: Scorer, generate_s: float) -> Outcome:
    """The outcome of scoring one generator's streams in this process; a failure is caught into its
    status."""
    t0 = time.perf_counter()
    try:
        result = scorer(streams)
    except Exception as exc:  # noqa: BLE001 - one failure never stops the other generators
        log.error("drift %s: scoring failed: %s", generator, exc)
        return Outcome(generator, status_record(generator, generate_s, time.perf_counter() - t0, exc), streams)
    score_s = time.perf_counter() - t0
    log.info("drift %s: ok (generated in %.1f s, scored in %.1f s)", generator, generate_s, score_s)
    return Outcome(generator, status_record(generator, generate_s, score_s, None), streams, result)
