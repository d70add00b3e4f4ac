"""Reports built from saved run folders only (never by running a model): tables, figures, audio
excerpts, an HTML report (:mod:`reports.build`, ``python -m reports``) and the run's ``summary.md``
(:mod:`reports.summary`). See docs/reports.md."""
