"""The drift stage: long streams per generator, windowed metrics over stream time, summaries.

For every generator, ``n_streams`` streams of ``horizon_s`` seconds are generated through the
harness's runner and written to WAV files block by block; every stream is then cut into
block-aligned windows and scored window by window (:mod:`metrics.drift.windowed`), and each
metric's series is summarised (:mod:`metrics.drift.summary`). Modules, one idea each:

- :mod:`~bench.app.drift.config`: the drift workload, its defaults and ``drift.*`` overrides, the
  metric settings;
- :mod:`~bench.app.drift.generate`: one generator's streams, through the runner;
- :mod:`~bench.app.drift.reference`: the reference set (data set, synthetic or a folder);
- :mod:`~bench.app.drift.score`: windowed metrics and summaries, the one-generator API
  (:func:`~bench.app.drift.score.run_drift`) and saved results;
- :mod:`~bench.app.drift.stage`: the stage of ``python run_all.py`` (every generator, tables on disk);
- :mod:`~bench.app.drift.parallel`: the stage's worker processes (streams and scoring as jobs);
- :mod:`~bench.app.drift.outcome`: what the stage keeps of one generator (status, streams, result);
- :mod:`~bench.app.drift.pytest_plugin`: the ``drift_baseline`` fixture for users' test suites.

This file imports nothing, so that loading the pytest plugin stays cheap.

Layout under the run folder (tables as Parquet + CSV, atomic writes)::

    drift/
        config.json                     drift workload, metric config, reference, status per generator,
                                        how the streams ran (execution: workers, threads per worker)
        audio/<generator>/stream<i>.wav
        streams.parquet|csv             one row per stream (seed, prompt, audio path, peak memory, wall s)
        windows.parquet|csv             one row per (generator, window): metrics and CIs over streams
        stream_windows.parquet|csv      one row per (generator, stream, window)
        summary.parquet|csv             one row per (generator, metric): slope, time to degrade, ratio
        status.parquet|csv              one row per generator: ok or failed, the error, generate_s and
                                        score_s (seconds generating and scoring its streams), wall_s
        stream_stability.parquet|csv    one row per (generator, stream): key agreement and changes, tempo CV
                                        (with the music descriptors on: drift.descriptors)
        reference_descriptors.parquet|csv  one row per reference clip: its music descriptors (idem)
        reference/clip0.wav             the reference set's first clip (the report's spectrogram strip)
        drift.md                        the Markdown section for the run summary
                                        (reports.drift_summary.render_drift_summary)
"""
