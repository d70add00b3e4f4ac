"""The harness, in two layers: :mod:`bench.core` (imported by everything, imports nothing of ours)
and :mod:`bench.app` (imports everything). See docs/architecture.md."""
