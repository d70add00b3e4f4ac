"""The roof of the house, the only layer that knows every package (core, baselines, metrics, reports).

Modules, one idea each:

- :mod:`~bench.app.cli`: ``python run_all.py``'s options and commands (torch-free);
- :mod:`~bench.app.config`: the run configuration from flags, a TOML file and ``--set`` (torch-free);
- :mod:`~bench.app.plan`: the configuration validated into objects (:class:`~bench.app.plan.Plan`);
- :mod:`~bench.app.execute`: a plan run end to end (manifest, peak, cells, tables, drift, summary, report);
- :mod:`~bench.app.cells`: the (generator, workload) cells, resumed or run, failures isolated;
- :mod:`~bench.app.run_tables`: the run tables aggregated from the cells' tables;
- :mod:`~bench.app.runner`, :mod:`~bench.app.clocks`, :mod:`~bench.app.flops`: the timed streaming loop;
- :mod:`~bench.app.peak`: the machine's matmul peak; :mod:`~bench.app.manifest`: provenance;
- :mod:`bench.app.drift`: the drift stage (long streams scored window by window) and its pytest plugin.
"""
