"""Bad audio and bad parameters fail with a ValueError that names the problem; imports stay light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.core.errors import ConfigError
from metrics.audio_io import AudioError
from metrics.descriptors import DescriptorConfig, PitchTracker, describe, key_stability
from metrics.descriptors.audio import mono_audio

SR = 16_000
GOOD = (0.1 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)


def with_nan() -> np.ndarray:
    x = GOOD.copy()
    x[800] = np.nan
    return x


BAD_AUDIO = [
    ("empty", np.zeros(0, np.float32), SR, "empty"),
    ("nan", with_nan(), SR, r"1 NaN/inf samples \(first at sample 800, 0.050 s\)"),
    ("inf", np.full(SR, np.inf, np.float32), SR, "NaN/inf"),
    ("stereo", np.stack([GOOD, GOOD]), SR, "need mono audio, got 2 channels"),
    ("samples-first", np.stack([GOOD, GOOD]).T, SR, r"looks like \(samples, channels\)"),
    ("3-d", GOOD.reshape(1, 1, -1), SR, r"expected audio shaped \(samples,\) or \(channels, samples\)"),
    ("zero-rate", GOOD, 0, "sample_rate must be a positive integer"),
    ("negative-rate", GOOD, -16000, "sample_rate must be a positive integer"),
    ("float-rate", GOOD, 16000.0, "sample_rate must be a positive integer"),
    ("text", np.array(["a", "b"]), SR, "must be numeric"),
    ("int16", (GOOD * 32767).astype(np.int16), SR, r"integer audio \(dtype int16\).*int16 / 32768"),
]


@pytest.mark.parametrize(("name", "audio", "sample_rate", "message"), BAD_AUDIO, ids=[b[0] for b in BAD_AUDIO])
def test_bad_audio_raises_a_value_error_naming_the_problem(
    name: str, audio: np.ndarray, sample_rate: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        mono_audio(audio, sample_rate)
    assert isinstance(info.value, AudioError)


@pytest.mark.parametrize("call", ["describe", "tracker", "key_stability"])
def test_public_entry_points_validate(call: str) -> None:
    stereo = np.stack([GOOD, GOOD])
    with pytest.raises(ValueError, match="need mono audio"):
        if call == "describe":
            describe(stereo, SR)
        elif call == "tracker":
            PitchTracker().track(stereo, SR)
        else:
            key_stability(stereo, SR, 0.5, 0.5)
    with pytest.raises(ValueError, match="NaN/inf"):
        describe(with_nan(), SR, config=DescriptorConfig(with_pitch=False))


@pytest.mark.parametrize(
    ("field", "value"),
    [("confidence_threshold", 1.5), ("gate_dbfs", 3.0), ("chroma_hop_s", 0.0), ("min_beats", 1),
     ("range_percentiles", (95.0, 5.0)), ("histogram_weighting", "energy")],
)
def test_impossible_config_names_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=f"DescriptorConfig.{field}"):
        DescriptorConfig(**{field: value})


def test_tracker_parameters_are_checked() -> None:
    for kwargs in ({"step_ms": 0.0}, {"chunk_s": -1.0}, {"reference_dbfs": 6.0}, {"max_gain_db": -1.0}):
        with pytest.raises(ValueError):
            PitchTracker(**kwargs)
    identity = PitchTracker().identity
    assert "pesto-pitch==2.0.1" in identity and "mir-1k_g7" in identity and "-20dBFS" in identity


def test_identity_names_the_thresholds() -> None:
    identity = DescriptorConfig().identity
    assert "conf>0.5" in identity and "-60dBFS" in identity and "Krumhansl-Kessler" in identity


def test_importing_the_package_loads_no_heavy_module() -> None:
    code = (
        "import sys, metrics.descriptors; "
        "heavy = [m for m in ('torch', 'librosa', 'pesto', 'torchaudio', 'pandas') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"heavy modules imported: {done.stdout} {done.stderr}"
