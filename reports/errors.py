"""The error the reports raise: a folder that cannot be reported on (a run folder that is missing,
not a run folder or damaged, or a report folder that would overwrite foreign files).

:class:`ReportError` is :class:`bench.core.errors.RunFolderError` under the reports' name: the run
folders are read by :mod:`bench.core.run_folder`, which cannot know the reports, and one class
means ``except ReportError`` catches every such problem, whichever layer found it. The message
names the problem and the fix.
"""

from __future__ import annotations

from bench.core.errors import RunFolderError

ReportError = RunFolderError

__all__ = ["ReportError"]
