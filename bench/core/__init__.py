"""The floor of the house: errors, config dataclasses (settings, presets, workloads), the registry,
hashing, phase names, the generator contract and the run-folder schema with its readers and
writers. It imports nothing else of ours; only :mod:`bench.core.contract` imports torch, so reports
and metrics can use the rest without it. Importing this package imports none of its modules."""
