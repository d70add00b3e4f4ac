"""The continuation table: each regime (and its random-init twin) continuing held-out music.

Read from ``<run>/continuation/`` (written by ``bench.app.continuation``): one row per system,
the true continuations first. Columns: pitched fraction, continuation fidelity (paired -
shuffled chroma r) with its CI and whether it follows its context, log-mel KAD to the true
continuations with its CI, the KAD as a fraction of the random-init twin's, and the level.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.core.registry import SAME_RANDOM_INIT_AS
from bench.core.run_folder import RunSet
from bench.core.storage import CONTINUATION_TRUE_ROW, WEIGHTS_RANDOM_INIT
from reports.formatting import format_significant
from reports.table_model import Column, Table, prefix_run, run_columns, sort_rows

TITLE = "Continuation of held-out music"
TRUE_ROW, RANDOM_INIT = CONTINUATION_TRUE_ROW, WEIGHTS_RANDOM_INIT
_CI = ("pitched_fraction", "chroma_fidelity_difference", "kad_logmel")


def _with_twin_ratio(scores: pd.DataFrame) -> pd.DataFrame:
    """``kad_vs_twin``: a trained row's KAD over its random-init twin's (NaN without a twin). A
    regime whose random init is another's (``SAME_RANDOM_INIT_AS``, run once) uses that twin."""
    twins = scores[scores["weights"] == RANDOM_INIT].set_index("generator")["kad_logmel"]

    def twin_of(generator: str) -> str:
        return generator if generator in twins.index else SAME_RANDOM_INIT_AS.get(generator, generator)

    ratio = [float(k) / float(twins[twin_of(g)]) if w != RANDOM_INIT and twin_of(g) in twins.index
             and float(twins[twin_of(g)]) > 0 else np.nan
             for g, w, k in zip(scores["generator"], scores["weights"], scores["kad_logmel"])]
    return scores.assign(kad_vs_twin=ratio)


def _rows(scores: pd.DataFrame) -> pd.DataFrame:
    data = _with_twin_ratio(scores.copy())
    for key in _CI:
        data = data.rename(columns={f"{key}_low": f"{key}_ci_low", f"{key}_high": f"{key}_ci_high"})
    data["follows"] = ["yes" if bool(f) else "no" for f in data["follows_context"]]
    data.loc[data["generator"] == TRUE_ROW, "follows"] = "(ceiling)"
    data["_true"] = data["generator"] != TRUE_ROW
    data["_twin"] = data["weights"] == RANDOM_INIT
    data = sort_rows(data, ["_twin"])
    return data.sort_values(["_true"], kind="stable").drop(columns=["_true", "_twin"]).reset_index(drop=True)


def _notes(config: dict[str, Any]) -> list[str]:
    settings = config.get("settings", {})
    scorer = config.get("scorer", {})
    return [
        f"{settings.get('clips', '?')} held-out reference clips of the embedded data set: the first "
        f"{format_significant(config.get('context_s'), 4)} s prime each stream, {settings.get('blocks', '?')} blocks "
        f"({format_significant(config.get('generated_s'), 4)} s) are generated under the clip's short prompt "
        f"({config.get('steps', '?')} {config.get('sampler', '')} steps) and compared with the clip's true next seconds.",
        "Pitched: PESTO frames with confidence > 0.5 (level-normalised, energy-gated), mean over clips. Fidelity: "
        "chroma r of each continuation with its own context minus with the other clips' contexts; follows = "
        f"difference >= {scorer.get('follows_min_difference', 0.1)} with the CI above 0 (docs/descriptors.md).",
        "KAD: log-mel embedder (weight-free; never compare with pretrained-model KADs) against the true continuations; "
        "KAD / twin: the trained model's KAD over its random-init twin's (same architecture, seeded weights; "
        + "; ".join(f"{a}'s twin is {b}'s: same code and seeded weights" for a, b in SAME_RANDOM_INIT_AS.items())
        + "). "
        f"CIs: {scorer.get('n_boot', '?')} bootstrap resamples of the clips; a KAD's point estimate (unbiased) can "
        "lie below its interval, whose resamples repeat clips.",
    ]


def continuation_table(runs: RunSet) -> Table:
    """The continuation stage's scores, or a table saying why it is absent."""
    frames, notes, reasons = [], [], []
    for run in runs:
        config = run.continuation_config
        if run.continuation is None or run.continuation.empty:
            if config.get("reason"):
                reasons.append(str(config["reason"]))
            continue
        frames.append(prefix_run(run, runs, _rows(run.continuation)))
        notes = _notes(config)
        failed = [s for s in config.get("statuses", []) if s.get("status") != "ok"]
        notes += [f"{s['system']}: failed ({s.get('error', '')}); traceback in continuation/config.json" for s in failed]
    if not frames:
        why = reasons[0] if reasons else "not in this run: the continuation stage did not run (--no-continuation)"
        return Table("continuation", TITLE, pd.DataFrame(), [], [], [why])
    data = pd.concat(frames, ignore_index=True)
    columns = run_columns(runs) + [
        Column("generator", "regime", kind="text"), Column("weights", "weights", kind="text"),
        Column("pitched_fraction", "pitched fraction", ci=True),
        Column("chroma_fidelity_difference", "fidelity: paired - shuffled r", "higher", ci=True),
        Column("follows", "follows its context", kind="text"),
        Column("kad_logmel", "KAD logmel", "lower", ci=True),
        Column("kad_vs_twin", "KAD / twin", "lower"),
        Column("level_dbfs", "level (dBFS)"),
    ]
    return Table("continuation", TITLE, data, columns, [], notes,
                 ci_text="The true continuation is a reference, never ranked. [a, b]: seeded bootstrap 95% CI over clips.")


__all__ = ["continuation_table"]
