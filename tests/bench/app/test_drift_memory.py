"""Memory stays bounded over the horizon: audio goes to disk as produced and is read back window
by window, so the peak resident memory of a 30-minute stream equals that of a 1-minute one.

The stream is scored without the music descriptors: they cost about 0.8 s per 10 s window on a
2-core machine (PESTO, chroma, beat tracking), 150 s of this test's 200 s with them, and they get
audio the same way, one window at a time. That they keep nothing of a window is shown by
tests/metrics/test_drift_descriptor_windows.py. Without them the peak is also lower (755 against
about 1000 MiB, set by the descriptors' models), so what the scoring loop keeps shows sooner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs in a fresh interpreter: generate one stream of HORIZON seconds (tiny preset, 10 s blocks,
# the drift-tilt test generator) through the runner into a WAV, then score every 10 s window (signal
# statistics, log-mel embedding, KAD/FAD against a reference, a small bootstrap; no music
# descriptors, see the module docstring); print the peak RSS.
SCRIPT = r"""
import json, sys, tempfile, dataclasses, resource
from pathlib import Path
from baselines.degrading import TiltDriftGenerator
from bench.app.drift.config import DriftWorkload, DriftMetricsConfig
from bench.app.drift.generate import generate_streams
from bench.app.drift.score import prepare_scoring, score_streams
from bench.core.presets import get_preset
from bench.core.workloads import Workload

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

horizon = float(sys.argv[1])
preset = get_preset("tiny")
stream = Workload(name="memory", context_s=10.0, block_s=10.0, horizon_s=horizon, steps=3, warmup_blocks=0)
drift = DriftWorkload(name="drift-memory", stream=stream, n_streams=1, window_s=10.0, hop_s=10.0,
                      descriptors=False)
config = DriftMetricsConfig(bootstrap_resamples=10, reference_clips=2)
with tempfile.TemporaryDirectory() as tmp:
    streams = generate_streams(TiltDriftGenerator, preset, drift, Path(tmp), generator_kwargs={"onset_s": 30.0})
    stream_peak = int(streams["peak_mem_bytes"].iloc[0])
    reference, embedder, clap = prepare_scoring(preset, drift, config, streams)
    result = score_streams(streams, drift, config, reference, embedder, clap)
print(json.dumps({
    "audio_s": float(streams["audio_s"].iloc[0]), "windows": len(result.windows),
    "stream_peak_bytes": stream_peak, "peak_bytes": vm("VmHWM"),
    "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def measure(horizon_s: float) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(horizon_s)], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[3], timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_peak_memory_does_not_grow_with_the_horizon() -> None:
    short, long = measure(60.0), measure(1800.0)
    assert long["audio_s"] == 1800.0 and long["windows"] == 180
    audio_mib = 1800 * 8000 * 4 / 2**20  # what keeping the stream's float32 audio in memory would cost
    growth_mib = (long["peak_bytes"] - short["peak_bytes"]) / 2**20
    stream_growth_mib = (long["stream_peak_bytes"] - short["stream_peak_bytes"]) / 2**20
    print(f"peak RSS 60 s: {short['peak_bytes'] / 2**20:.1f} MiB, 1800 s: {long['peak_bytes'] / 2**20:.1f} MiB "
          f"(growth {growth_mib:+.1f} MiB; the stream's audio alone is {audio_mib:.1f} MiB)")
    assert growth_mib < 0.2 * audio_mib, (short, long)
    assert stream_growth_mib < 0.2 * audio_mib, (short, long)
