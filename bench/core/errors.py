"""The errors every layer raises for bad input, and the one "did you mean" helper they share."""

from __future__ import annotations

import difflib
from typing import Any, Iterable


class ConfigError(ValueError):
    """An impossible or unknown configuration. The message names the field and what is allowed."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name``, or ``""`` when none is
    close. Every unknown-name error appends this, so suggestions read the same everywhere."""
    hint = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


class RunFolderError(ValueError):
    """A folder that cannot be used as a run folder (missing, not a run folder, damaged), or, for the
    reports built from run folders, a report folder that cannot be written. The message names the
    problem and the fix."""


class RunStopped(Exception):
    """A run that stopped before its end: Ctrl-C (``interrupted``) or a write that failed (``cause``, an
    OSError: a full disk, a folder that is not writable). ``out`` is the run folder, for the summary of
    what finished and the ``--resume`` command."""

    def __init__(self, out: Any, cause: BaseException, interrupted: bool) -> None:
        super().__init__(str(cause))
        self.out, self.cause, self.interrupted = out, cause, interrupted
