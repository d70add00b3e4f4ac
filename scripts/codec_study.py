"""Measure candidate codecs on the embedded data set: what they keep, what they cost, what a tiny
model can learn from them. The numbers behind ``docs/codec.md``.

Candidates (all 16 kHz mono, hop 500 = 32 latent frames per second, decoded in 1 s blocks with
``previous`` exactly as the streaming regimes do):

- ``mdct-64``: today's DiT codec, MDCT bins 0-1 kHz (``baselines.codec.MDCTCodec``);
- ``mdct-256-log``: MDCT bins 0-4 kHz, log-companded ``sign(c) * log1p(|c| / 1e-3) / 4``;
- ``spectral``: ``baselines.spectral_codec.SpectralCodec`` with its defaults (log-magnitude bands
  0-8 kHz, single DFT bins below 1 kHz, phase vocoder with the phase remembered across blocks);
- ``spectral-4k``: the same, 0-4 kHz; ``spectral-lin500``: single bins only below 500 Hz;
- ``spectral-phase0``: the ``spectral`` latents decoded with every phase 0 (no vocoder);
- ``spectral-gl<n>``: the same latents decoded by ``n`` Griffin-Lim iterations per block from
  phase 0 (stateless; the block's ``previous`` frame included): the classic decoder.

Per candidate, on the reference split (pieces never in training):

- round trip (encode, decode in 1 s blocks): PESTO pitched-frame retention, i.e. frames pitched
  in both / frames pitched in the original (``metrics.descriptors``: confidence > 0.5, level
  >= -60 dBFS); the same counting only frames whose pitch is within 50 cents of the original's
  (in polyphony PESTO follows one voice, and a changed balance makes it follow another); the
  median pitch error (cents) over frames pitched in both; log-mel distance to the original (mean
  |dB| difference, 64 mel bands over 0-8 kHz, 1024-point window, hop 256, floor -100 dB), also
  over the bands centred below 4 kHz;
- decode milliseconds per second of audio (one 32-frame block with ``previous``, median of
  ``--repeats``, one thread: the machine is shared, so compare within a run) and
  ``decode_flops`` per second;
- the LMM's RVQ (8 levels x 256 codes, ``baselines.training.rvq.fit_rvq`` on training latents):
  SNR against the latents' variance, and pitched-frame retention of codec + RVQ round trips;
- learnability proxies: latent 1st/99th percentiles and the lag-1 autocorrelation of
  standardised latents (1 = every frame equals the one before);
- probe: a 2-layer MLP (256 hidden, residual to the last frame) predicting the next
  standardised frame from the 8 before, trained ``--probe-steps`` steps (MSE, Adam, seeded) on
  training clips; its held-out fraction of unexplained variance; from each probe clip's first 4 s
  it continues 2 s frame by frame, with its mean prediction ("mean") or with Gaussian noise of the
  per-dimension held-out residual std added each frame ("sampled": a tiny Gaussian AR model); the
  decoded continuation's pitched fraction and level, next to the real continuation's.

    python scripts/codec_study.py             # 24 clips, probe on 12: ~7 min on 2 shared cores
    python scripts/codec_study.py --clips 108 --probe-clips 36 --rvq-clips 36 --out runs/codec-study

Writes ``<out>/codec_study.csv`` and ``<out>/codec_study.md`` (default ``runs/codec-study``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from baselines.codec import Codec, MDCTCodec, ResidualVQ  # noqa: E402
from baselines.data.build import Dataset, load_dataset  # noqa: E402
from baselines.spectral_codec import SpectralCodec, SpectralCodecConfig  # noqa: E402
from baselines.training.rvq import fit_rvq  # noqa: E402
from bench.core.presets import CodecConfig  # noqa: E402
from metrics.descriptors import PitchTrack, PitchTracker  # noqa: E402
from metrics.descriptors.pitch import pitched_mask  # noqa: E402

log = logging.getLogger("codec_study")

SAMPLE_RATE = 16000
HOP = 500
BLOCK_FRAMES = 32  # 1 s blocks, the cpu preset's
CONTEXT_FRAMES = 128  # 4 s
CONTINUATION_FRAMES = 64  # 2 s
PROBE_HISTORY = 8
PROBE_HIDDEN = 256
CENTS_AGREE = 50.0
PROBE_CLAMP = 8.0  # standard deviations
RVQ_LEVELS, RVQ_SIZE = 8, 256  # the cpu preset's LMM


# ------------------------------------------------------------------------------------ candidates
class CompandedMDCT(Codec):
    """MDCT bins with log companding: latent = sign(c) * log1p(|c| / eps) * scale (exact inverse)."""

    def __init__(self, bins: int, eps: float = 1e-3, scale: float = 0.25) -> None:
        self.inner = MDCTCodec(CodecConfig(SAMPLE_RATE, 1, HOP, bins))
        self.sample_rate, self.channels, self.hop, self.latent_dim = SAMPLE_RATE, 1, HOP, bins
        self.eps, self.scale = eps, scale

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.inner.encode(audio)
        return torch.sign(c) * torch.log1p(c.abs() / self.eps) * self.scale

    def _expand(self, z: torch.Tensor) -> torch.Tensor:
        limit = self.scale * math.log1p(4.0 / self.eps)  # |c| <= 4, as the spectral codec clamps its bands
        return torch.sign(z) * self.eps * torch.expm1(z.abs().clamp(max=limit) / self.scale)

    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        prev = None if previous is None else self._expand(previous)
        return self.inner.decode(self._expand(latents), previous=prev)

    def decode_flops(self, frames: int) -> float:
        return self.inner.decode_flops(frames)


class FixedPhaseSpectral(Codec):
    """SpectralCodec latents, decoded with every phase 0 (ablation: no phase reconstruction)."""

    def __init__(self, base: SpectralCodec) -> None:
        self.base = base
        self.sample_rate, self.channels, self.hop, self.latent_dim = base.sample_rate, 1, base.hop, base.latent_dim

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return self.base.encode(audio)

    def magnitudes(self, latents: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        prev = torch.zeros_like(latents[:1]) if previous is None else previous.reshape(1, -1)
        return self.base.bin_magnitudes(torch.cat([prev, latents]))  # (1, F+1, K)

    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        mag = self.magnitudes(latents, previous)
        return self.base.overlap_add(mag, torch.zeros_like(mag))

    def decode_flops(self, frames: int) -> float:
        return self.base.decode_flops(frames)


class GriffinLimSpectral(FixedPhaseSpectral):
    """SpectralCodec latents decoded by ``iterations`` Griffin-Lim iterations per block (stateless)."""

    def __init__(self, base: SpectralCodec, iterations: int) -> None:
        super().__init__(base)
        self.iterations = iterations

    def decode(self, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        mag = self.magnitudes(latents, previous)  # (1, F+1, K)
        n = self.hop
        phase = torch.zeros_like(mag)
        for _ in range(self.iterations):
            audio = self.base.overlap_add(mag, phase)  # (1, F * N): segments 0..F-1 of frames -1..F-1
            padded = torch.nn.functional.pad(audio, (n, 0))  # frame -1's first half (before the block): zeros
            _, phase = self.base.analyse(padded)  # frames -1 .. F-1 re-analysed: (1, F+1, K)
        return self.base.overlap_add(mag, phase)

    def decode_flops(self, frames: int) -> float:
        rows = frames + 1
        analysis = 2.0 * rows * 2 * HOP * 2 * self.base.bins
        return self.base.decode_flops(frames) + self.iterations * (analysis + self.base.decode_flops(frames))


@dataclass
class Candidate:
    name: str
    codec: Codec
    kept: str  # kept band, words


def candidates(gl_iterations: int) -> list[Candidate]:
    def spectral(**changes: float) -> SpectralCodec:
        return SpectralCodec(SpectralCodecConfig(**changes))

    return [
        Candidate("mdct-64", MDCTCodec(CodecConfig(SAMPLE_RATE, 1, HOP, 64)), "0-1 kHz"),
        Candidate("mdct-256-log", CompandedMDCT(256), "0-4 kHz"),
        Candidate("spectral", spectral(), "0-8 kHz"),
        Candidate("spectral-4k", spectral(max_hz=4000.0), "0-4 kHz"),
        Candidate("spectral-lin500", spectral(linear_below_hz=500.0), "0-8 kHz"),
        Candidate("spectral-phase0", FixedPhaseSpectral(spectral()), "0-8 kHz"),
        Candidate(f"spectral-gl{gl_iterations}", GriffinLimSpectral(spectral(), gl_iterations), "0-8 kHz"),
    ]


# ------------------------------------------------------------------------------------ measures
def decode_blocks(codec: Codec, latents: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """Decode (F, D) latents in 1 s blocks as the regimes do -> (F * hop,) audio."""
    parts = []
    for start in range(0, latents.shape[0], BLOCK_FRAMES):
        block = latents[start:start + BLOCK_FRAMES]
        parts.append(codec.decode(block, previous=previous))
        previous = block[-1]
    return torch.cat(parts, dim=1)[0]


class LogMel:
    """64 mel bands (0-8 kHz), 1024-point window, hop 256, power in dB floored at -100 dB."""

    def __init__(self) -> None:
        import librosa  # heavy: numba

        self.filters = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=1024, n_mels=64, fmin=0.0,
                                                            fmax=8000.0)).float()  # (64, 513)
        centres_hz = librosa.mel_frequencies(n_mels=66, fmin=0.0, fmax=8000.0)[1:-1]
        self.below_4k = torch.from_numpy(centres_hz < 4000.0)  # (64,)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs() ** 2
        return 10 * torch.log10(torch.clamp(self.filters @ spec, min=1e-10))  # (64, T)

    def distance_db(self, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
        diff = (self(a) - self(b)).abs()
        return float(diff.mean()), float(diff[self.below_4k].mean())


class Tracks:
    """PESTO tracks; those of the unchanged originals are computed once and reused across codecs."""

    def __init__(self) -> None:
        self.tracker = PitchTracker()
        self._originals: dict[str, PitchTrack] = {}

    def original(self, key: str, audio: np.ndarray) -> PitchTrack:
        if key not in self._originals:
            self._originals[key] = self.tracker(audio, SAMPLE_RATE)
        return self._originals[key]

    def __call__(self, audio: np.ndarray) -> PitchTrack:
        return self.tracker(audio, SAMPLE_RATE)


def pitch_compare(a: PitchTrack, b: PitchTrack) -> dict[str, Any]:
    """Frames pitched in the original ``a``, in both, in both within 50 cents; the |cents| errors."""
    pa, pb = pitched_mask(a), pitched_mask(b)
    both = pa & pb
    cents = 100.0 * np.abs(a.midi[both] - b.midi[both])
    return {"orig": int(pa.sum()), "both": int(both.sum()), "agree": int((cents <= CENTS_AGREE).sum()),
            "frames": len(a), "cents": cents}


def decode_ms(codec: Codec, latents: torch.Tensor, repeats: int) -> float:
    """Median ms to decode one 1 s block (with ``previous``)."""
    block, previous = latents[1:1 + BLOCK_FRAMES], latents[0]
    codec.decode(block, previous=previous)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        codec.decode(block, previous=previous)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def latent_stats(latents: torch.Tensor) -> dict[str, float]:
    """Range and smoothness of (clips, frames, D) latents."""
    flat = latents.reshape(-1, latents.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp(min=1e-8)
    z = (latents - mean) / std
    lag1 = (z[:, 1:] * z[:, :-1]).mean() / (z * z).mean()
    sample = flat.flatten()[::7]  # torch.quantile's input size is limited
    return {"p1": float(torch.quantile(sample, 0.01)), "p99": float(torch.quantile(sample, 0.99)),
            "std": float(flat.std()), "lag1": float(lag1)}


# ------------------------------------------------------------------------------------ probe
class Probe(torch.nn.Module):
    """Next standardised frame from the ``PROBE_HISTORY`` before it: 2 hidden layers, residual to the last."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(PROBE_HISTORY * dim, PROBE_HIDDEN), torch.nn.GELU(),
            torch.nn.Linear(PROBE_HIDDEN, PROBE_HIDDEN), torch.nn.GELU(), torch.nn.Linear(PROBE_HIDDEN, dim),
        )

    def forward(self, history: torch.Tensor) -> torch.Tensor:  # (N, H, D) -> (N, D)
        return history[:, -1] + self.net(history.flatten(1))


def train_probe(z: torch.Tensor, steps: int, seed: int) -> tuple[Probe, torch.Tensor, float]:
    """Train on standardised (clips, frames, D) latents; returns the probe, the per-dim residual std
    and the fraction of variance it leaves unexplained (both on the last 10 % of clips, held out)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_val = max(1, z.shape[0] // 10)
    train, val = z[:-n_val], z[-n_val:]
    probe = Probe(z.shape[-1])
    opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        clip = torch.randint(train.shape[0], (128,), generator=gen)
        start = torch.randint(train.shape[1] - PROBE_HISTORY, (128,), generator=gen)
        rows = start[:, None] + torch.arange(PROBE_HISTORY + 1)[None]
        window = train[clip[:, None], rows]  # (128, H+1, D)
        loss = (probe(window[:, :-1]) - window[:, -1]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        windows = val.unfold(1, PROBE_HISTORY + 1, 1).permute(0, 1, 3, 2).reshape(-1, PROBE_HISTORY + 1, z.shape[-1])
        resid = probe(windows[:, :-1]) - windows[:, -1]
        fvu = float(resid.pow(2).mean() / windows[:, -1].var(dim=0).mean())
    return probe, resid.std(0), fvu


def rollout(probe: Probe, context: torch.Tensor, frames: int, noise_std: torch.Tensor | None,
            gen: torch.Generator) -> torch.Tensor:
    """Continue standardised (T, D) context by ``frames`` frames -> (frames, D)."""
    seq = context.clone()
    with torch.no_grad():
        for _ in range(frames):
            nxt = probe(seq[None, -PROBE_HISTORY:])[0]
            if noise_std is not None:
                nxt = nxt + noise_std * torch.randn(nxt.shape, generator=gen)
            nxt = nxt.clamp(-PROBE_CLAMP, PROBE_CLAMP)  # an unstable rollout saturates instead of overflowing
            seq = torch.cat([seq, nxt[None]])
    return seq[context.shape[0]:]


# ------------------------------------------------------------------------------------ driver
def encode_split(codec: Codec, dataset: Dataset, clips: list[dict[str, Any]]) -> torch.Tensor:
    """(clips, frames, D) latents of whole clips."""
    return torch.stack([codec.encode(torch.from_numpy(dataset.read(c))[None]) for c in clips])


def level_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-12)))


def study(args: argparse.Namespace) -> list[dict[str, Any]]:
    dataset = load_dataset(args.dataset)
    reference = dataset.clips("reference")
    ref_clips = reference[:: max(1, len(reference) // args.clips)][: args.clips]
    probe_clips = reference[:: max(1, len(reference) // args.probe_clips)][: args.probe_clips]
    train_clips = dataset.clips("train")
    train_clips = train_clips[:: max(1, len(train_clips) // args.train_clips)][: args.train_clips]
    tracks, logmel = Tracks(), LogMel()
    originals = {c["file"]: dataset.read(c) for c in ref_clips + probe_clips}
    rows = []
    for cand in candidates(args.gl_iterations):
        t0 = time.perf_counter()
        codec = cand.codec
        row: dict[str, Any] = {"codec": cand.name, "kept": cand.kept, "frame_rate_hz": codec.frame_rate_hz,
                               "latent_dim": codec.latent_dim}
        latents = {c["file"]: codec.encode(torch.from_numpy(originals[c["file"]])[None]) for c in ref_clips}
        # round trip
        counts = {"orig": 0, "both": 0, "agree": 0}
        cents, mel_all, mel_4k = [], [], []
        for clip in ref_clips:
            x = originals[clip["file"]]
            y = decode_blocks(codec, latents[clip["file"]]).numpy()
            cmp = pitch_compare(tracks.original(clip["file"], x), tracks(y))
            for key in counts:
                counts[key] += cmp[key]
            cents.append(cmp["cents"])
            d_all, d_4k = logmel.distance_db(torch.from_numpy(x), torch.from_numpy(y))
            mel_all.append(d_all)
            mel_4k.append(d_4k)
        row["pitched_retained"] = counts["both"] / max(1, counts["orig"])
        row["pitched_retained_50c"] = counts["agree"] / max(1, counts["orig"])
        row["median_abs_cents"] = float(np.median(np.concatenate(cents))) if counts["both"] else float("nan")
        row["logmel_db"], row["logmel_db_below_4k"] = float(np.mean(mel_all)), float(np.mean(mel_4k))
        # cost
        row["decode_ms_per_s"] = decode_ms(codec, latents[ref_clips[0]["file"]], args.repeats)
        row["decode_mflop_per_s"] = codec.decode_flops(BLOCK_FRAMES) / 1e6
        # learnability proxies, RVQ and probe: once per latent space (the decoder ablations share spectral's)
        if isinstance(codec, FixedPhaseSpectral):
            shared = ("rvq_", "probe_", "lag1", "p1", "p99")
            row.update({k: float("nan") for k, _, _ in COLUMNS if k.startswith(shared)})
        else:
            train = encode_split(codec, dataset, train_clips)  # (clips, frames, D)
            row.update(latent_stats(train))
            row.update(rvq_study(args, codec, train, ref_clips, originals, latents, tracks))
            row.update(probe_study(args, codec, train, probe_clips, originals, tracks))
        row["seconds"] = time.perf_counter() - t0
        log.info("%s: %s", cand.name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        rows.append(row)
    return rows


def rvq_study(args: argparse.Namespace, codec: Codec, train: torch.Tensor, clips: list[dict[str, Any]],
              originals: dict[str, np.ndarray], latents: dict[str, torch.Tensor], tracks: Tracks) -> dict[str, float]:
    """Fit the LMM's RVQ (8 x 256, ``baselines.training.rvq``) on training latents; round trip through it."""
    flat = train.reshape(-1, train.shape[-1])
    fit = fit_rvq(flat, RVQ_LEVELS, RVQ_SIZE, iters=args.rvq_iters, seed=args.seed, max_frames=args.rvq_frames)
    rvq = ResidualVQ(flat.shape[-1], RVQ_LEVELS, RVQ_SIZE)
    rvq.load_codebooks(fit.codebooks)
    counts = {"orig": 0, "both": 0, "agree": 0}
    for clip in clips[: args.rvq_clips]:
        z = latents[clip["file"]]
        y = decode_blocks(codec, rvq.dequantize(rvq.quantize(z))).numpy()
        cmp = pitch_compare(tracks.original(clip["file"], originals[clip["file"]]), tracks(y))
        for key in counts:
            counts[key] += cmp[key]
    variance = float(flat.var(dim=0).mean())
    return {"rvq_snr_db": 10 * math.log10(variance / fit.residual_energy[-1]),
            "rvq_pitched_retained": counts["both"] / max(1, counts["orig"]),
            "rvq_pitched_retained_50c": counts["agree"] / max(1, counts["orig"])}


def probe_study(args: argparse.Namespace, codec: Codec, train: torch.Tensor, probe_clips: list[dict[str, Any]],
                originals: dict[str, np.ndarray], tracks: Tracks) -> dict[str, float]:
    """Train the probe on (clips, frames, D) training latents; continue each probe clip's first 4 s."""
    flat = train.reshape(-1, train.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp(min=1e-4)
    probe, resid_std, fvu = train_probe((train - mean) / std, args.probe_steps, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    stats: dict[str, list[float]] = {
        f"probe_{m}_{k}": [] for m in ("mean", "sampled", "real") for k in ("pitched", "dbfs")
    }
    for clip in probe_clips:
        x = originals[clip["file"]]
        context = codec.encode(torch.from_numpy(x[: CONTEXT_FRAMES * HOP])[None])  # spectral: remembers the phase
        real = x[CONTEXT_FRAMES * HOP:(CONTEXT_FRAMES + CONTINUATION_FRAMES) * HOP]
        for mode, noise in (("mean", None), ("sampled", resid_std)):
            z = rollout(probe, (context - mean) / std, CONTINUATION_FRAMES, noise, gen) * std + mean
            y = decode_blocks(codec, z, previous=context[-1]).numpy()
            stats[f"probe_{mode}_pitched"].append(float(pitched_mask(tracks(y)).mean()))
            stats[f"probe_{mode}_dbfs"].append(level_dbfs(y))
        stats["probe_real_pitched"].append(float(pitched_mask(tracks.original(clip["file"] + "#cont", real)).mean()))
        stats["probe_real_dbfs"].append(level_dbfs(real))
    return {"probe_fvu": fvu, **{k: float(np.mean(v)) for k, v in stats.items()}}


COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("codec", "codec", str), ("kept", "kept band", str),
    ("frame_rate_hz", "frames/s", lambda v: f"{v:g}"), ("latent_dim", "dim", str),
    ("pitched_retained", "pitched kept", lambda v: f"{v:.3f}"),
    ("pitched_retained_50c", "pitched kept, <=50 c", lambda v: f"{v:.3f}"),
    ("median_abs_cents", "median err (c)", lambda v: f"{v:.1f}"),
    ("logmel_db", "log-mel dB 0-8k", lambda v: f"{v:.2f}"),
    ("logmel_db_below_4k", "log-mel dB 0-4k", lambda v: f"{v:.2f}"),
    ("decode_ms_per_s", "decode ms / s", lambda v: f"{v:.2f}"),
    ("decode_mflop_per_s", "decode MFLOP / s", lambda v: f"{v:.1f}"),
    ("rvq_snr_db", "RVQ 8x256 SNR dB", lambda v: f"{v:.1f}"),
    ("rvq_pitched_retained", "RVQ: pitched kept", lambda v: f"{v:.3f}"),
    ("rvq_pitched_retained_50c", "RVQ: kept, <=50 c", lambda v: f"{v:.3f}"),
    ("p1", "latent p1", lambda v: f"{v:.3g}"), ("p99", "latent p99", lambda v: f"{v:.3g}"),
    ("lag1", "lag-1 autocorr", lambda v: f"{v:.3f}"),
    ("probe_fvu", "probe unexplained var.", lambda v: f"{v:.3f}"),
    ("probe_mean_pitched", "probe mean: pitched", lambda v: f"{v:.3f}"),
    ("probe_mean_dbfs", "probe mean: dBFS", lambda v: f"{v:.1f}"),
    ("probe_sampled_pitched", "probe sampled: pitched", lambda v: f"{v:.3f}"),
    ("probe_sampled_dbfs", "probe sampled: dBFS", lambda v: f"{v:.1f}"),
    ("probe_real_pitched", "real cont.: pitched", lambda v: f"{v:.3f}"),
    ("probe_real_dbfs", "real cont.: dBFS", lambda v: f"{v:.1f}"),
]


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(fmt: Callable[[Any], str], value: Any) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "-"
        return fmt(value)

    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(fmt, row.get(key, float("nan"))) for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="data set folder (default: the cache's)")
    parser.add_argument("--clips", type=int, default=24, help="reference clips for the round trip (of 108)")
    parser.add_argument("--probe-clips", type=int, default=12, help="reference clips the probe continues")
    parser.add_argument("--train-clips", type=int, default=300, help="training clips the probe learns from")
    parser.add_argument("--probe-steps", type=int, default=1500)
    parser.add_argument("--rvq-clips", type=int, default=24, help="round-trip clips also scored through the RVQ")
    parser.add_argument("--rvq-iters", type=int, default=8, help="Lloyd iterations per RVQ level")
    parser.add_argument("--rvq-frames", type=int, default=40000, help="training frames the RVQ is fitted on")
    parser.add_argument("--gl-iterations", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=50, help="timed decodes per candidate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/codec-study")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = study(args)
    table = markdown(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "codec_study.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = (f"{len(rows)} codecs; round trip on {args.clips} reference clips, probe on {args.probe_clips} "
              f"(trained {args.probe_steps} steps on {args.train_clips} training clips), seed {args.seed}, "
              f"{args.threads} thread(s); {time.perf_counter() - t0:.0f} s\n\n")
    (out / "codec_study.md").write_text(header + table)
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
