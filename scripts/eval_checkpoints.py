"""Score the committed checkpoints against their random-initialised twins on held-out clips.

For each of the first ``--clips`` clips of the data set's REFERENCE split (pieces never seen in
training), the clip's first ``context_s`` seconds (4 s at the cpu preset) prime a stream, each
regime generates ``--blocks`` blocks under the clip's short prompt, and the generated audio is
compared with the clip's true continuation. Every regime runs twice: with its trained checkpoint
and with the seeded random init of the same architecture (its "twin").

References. The models can only emit what their codec keeps, and the default embedder
(``logmel``: 64 log-mel bands up to 8 kHz, a log floor at -100 dB) turns any band limit into a
large distance. So each model family is scored against the true continuations passed through ITS
codec (encode + decode): the DiT regimes against the DiT codec's round trip, the LMM against the
LMM codec's round trip (no RVQ). (The ``cpu`` preset's codec keeps 0-8 kHz, so these round trips
are close to the real audio: the ceiling rows say how close.) Rows:

- ceilings vs the REAL continuations: each codec's round trip (what the band limit costs);
- the RVQ ceiling: LMM codec + fitted RVQ (all levels) vs the LMM codec round trip;
- a floor: other seconds of the same clips (their first ``generated`` seconds) through the DiT
  codec vs the DiT reference (how far real music of the same pieces is);
- every regime, trained and random twin, vs its family's reference.

FAD and KAD use the default embedder (``logmel``, weight-free; NOT a pretrained model, so the
column says ``logmel``), with seeded bootstrap 95 % intervals that resample CLIPS (the methods are
``metrics.quality``'s defaults: "basic" for FAD, which corrects FAD's upward small-sample bias and
can therefore reach below 0 for tiny distances; "percentile" for KAD).

Music (:mod:`metrics.descriptors`), per set of continuations, against the clips' REAL contexts (the
audio each stream was primed with):

- continuation fidelity: the mean chroma correlation of each continuation with its OWN context minus
  that with the other clips' contexts (paired - shuffled), with a seeded bootstrap 95 % CI over clips.
  A continuation that follows its context reads >= 0.1 with a CI above 0; the real continuations
  and their codec round trips are the ceilings. ("Same clips, other seconds" are the first seconds
  of the context itself: high by construction.)
- pitched fraction: PESTO frames with confidence > 0.5 (level-normalised) over all frames, mean over
  clips with a bootstrap CI over clips (``--pitch-step-ms``: 40 ms reads every 4th frame of PESTO's
  10 ms track, at a quarter of the cost).

    python scripts/eval_checkpoints.py                  # -> runs/eval-checkpoints/{results.json,results.md}
    python scripts/eval_checkpoints.py --clips 16 --blocks 1

Listening examples (context + continuation, 16-bit WAV) of the first ``--examples`` clips go to
``<out>/examples/<system>/<clip>.wav``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from baselines.codecs import make_codec  # noqa: E402
from baselines.data.build import load_dataset, wav_bytes  # noqa: E402
from baselines.lmm import RVQ_CODEBOOKS_KEY  # noqa: E402
from baselines.training.data import make_rvq  # noqa: E402
from baselines.training.export import REGIME_FILES, checkpoints_dir, read_config, verify_checkpoints  # noqa: E402
from bench.core.presets import Preset, apply_overrides, get_preset  # noqa: E402
from bench.core.registry import GENERATORS  # noqa: E402
from bench.core.settings import Control  # noqa: E402
from metrics.descriptors import DEFAULT_CONFIG, PitchTracker, fidelity_from_chroma, pitched_fraction  # noqa: E402
from metrics.descriptors.continuation import mean_chroma  # noqa: E402
from metrics.embedders import create_embedder  # noqa: E402
from metrics.quality.bootstrap import bootstrap_counts, bootstrap_interval  # noqa: E402
from metrics.quality.fad import fad  # noqa: E402
from metrics.quality.kad import kad  # noqa: E402

log = logging.getLogger("eval_checkpoints")

REAL = "real continuations"
DIT_REF = "DiT codec round trip"
LMM_REF = "LMM codec round trip"


def build_preset(config: dict[str, Any], folder: Path, regime: str, trained: bool) -> Any:
    """The checkpoints' preset with ``regime``'s weights (or none: the seeded twin)."""
    field = "lmm.weights" if regime == "lmm" else "dit.weights"
    weights = str(folder / f"{regime}.safetensors") if trained else ""
    return apply_overrides(get_preset(config["preset"]), config["preset_overrides"] + [f"{field}={weights}"])


def generate(regime: str, preset: Any, settings: Any, contexts: list[np.ndarray], prompts: list[str],
             blocks: int, seed: int) -> list[np.ndarray]:
    """One stream per context: ``blocks`` blocks after priming with the context -> mono audio."""
    gen = GENERATORS.create(regime, preset, settings)
    out = []
    with torch.inference_mode():
        for i, (context, prompt) in enumerate(zip(contexts, prompts)):
            control = Control(prompt)
            state = gen.start(control, seed=seed + i, context_audio=context[None, :])
            pieces = []
            for _ in range(blocks):
                result, state = gen.step(state, control)
                pieces.append(result.audio[0])
            gen.stop(state)
            out.append(np.concatenate(pieces))
    return out


def codec_roundtrip(clips: list[np.ndarray], codec_config: Any, rvq: Any = None) -> list[np.ndarray]:
    """Encode + decode each clip (optionally through the RVQ, every level)."""
    codec = make_codec(codec_config)
    out = []
    with torch.inference_mode():
        for audio in clips:
            usable = audio.shape[0] // codec.hop * codec.hop
            latents = codec.encode(torch.from_numpy(np.ascontiguousarray(audio[None, :usable])))  # (F, D)
            if rvq is not None:
                latents = rvq.dequantize(rvq.quantize(latents))
            out.append(codec.decode(latents)[0].numpy())
    return out


class Scorer:
    """Embeds clip sets once and scores FAD / KAD of one set against another."""

    def __init__(self, embedder: Any, rate: int, n_boot: int) -> None:
        self.embedder, self.rate, self.n_boot = embedder, rate, n_boot
        self.sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, name: str, clips: list[np.ndarray]) -> None:
        """Embed ``clips`` as the set ``name`` (each clip one bootstrap unit)."""
        frames, groups = [], []
        for i, clip in enumerate(clips):
            emb = self.embedder.embed(clip, self.rate, source=f"{name}[{i}]")
            frames.append(emb)
            groups.extend([i] * emb.shape[0])
        self.sets[name] = (np.concatenate(frames), np.asarray(groups))

    def score(self, name: str, reference: str, rms: float) -> dict[str, Any]:
        """FAD and KAD of set ``name`` against set ``reference`` (CIs resampling clips), as a row."""
        ref, ref_groups = self.sets[reference]
        ev, ev_groups = self.sets[name]
        f = fad(ref, ev, groups_reference=ref_groups, groups_evaluated=ev_groups, n_boot=self.n_boot, seed=0)
        k = kad(ref, ev, groups_reference=ref_groups, groups_evaluated=ev_groups, n_boot=self.n_boot, seed=0)
        return {"system": name, "reference": reference, "fad_logmel": f.value,
                "fad_ci": [f.ci.low, f.ci.high] if f.ci else None, "fad_ci_method": f.ci.method if f.ci else None,
                "kad_logmel": k.value, "kad_ci": [k.ci.low, k.ci.high] if k.ci else None,
                "kad_ci_method": k.ci.method if k.ci else None, "frames": int(ev.shape[0]), "rms": rms}


def _mean_over_clips(values: np.ndarray, n_boot: int) -> tuple[float, list[float] | None]:
    """Mean of per-clip values (NaN skipped) with a seeded percentile bootstrap 95 % CI over clips."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan")), None
    counts = bootstrap_counts(v.size, n_boot, 0, 1).astype(np.float64)  # (B, clips)
    ci = bootstrap_interval(counts @ v / v.size, level=0.95, seed=0, unit="clip")
    return float(v.mean()), [ci.low, ci.high]


def music_scores(outputs: dict[str, list[np.ndarray]], contexts: list[np.ndarray], rate: int, n_boot: int,
                 pitch_step_ms: float) -> list[dict[str, Any]]:
    """Continuation fidelity (against the real contexts) and pitched fraction of every set, one row each."""
    tracker = PitchTracker(step_ms=pitch_step_ms)
    context_chroma = np.stack([mean_chroma(c, rate, DEFAULT_CONFIG, f"context {i}") for i, c in enumerate(contexts)])
    rows = []
    for name, clips_audio in outputs.items():
        chroma = np.stack([mean_chroma(k, rate, DEFAULT_CONFIG, f"{name}[{i}]") for i, k in enumerate(clips_audio)])
        fid = fidelity_from_chroma(context_chroma[: len(clips_audio)], chroma, n_boot=n_boot, seed=0)
        pitched = np.array([pitched_fraction(tracker.track(k, rate)) for k in clips_audio])  # (clips,)
        pitched_mean, pitched_ci = _mean_over_clips(pitched, n_boot)
        rows.append({
            "system": name, "chroma_fidelity_paired": fid.paired, "chroma_fidelity_shuffled": fid.shuffled,
            "chroma_fidelity_difference": fid.difference, "difference_ci": [fid.interval.low, fid.interval.high],
            "follows_context": bool(fid.difference >= 0.1 and fid.interval.low > 0), "n_undefined": fid.n_undefined,
            "pitched_fraction": pitched_mean, "pitched_fraction_ci": pitched_ci,
        })
        log.info("%-40s fidelity %+.3f [%+.3f, %+.3f]  pitched %.3f", name, fid.difference, fid.interval.low,
                 fid.interval.high, pitched_mean)
    return rows


def _rms(clips: list[np.ndarray]) -> float:
    return float(np.sqrt(np.mean(np.concatenate(clips).astype(np.float64) ** 2)))


def main(argv: list[str] | None = None) -> int:
    """Score every regime's checkpoint and its random twin; write results.json and results.md."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)  # a script entry point: the process is ours
    started = time.perf_counter()

    folder = Path(args.checkpoints)
    status = verify_checkpoints(folder)
    if not status or any(s != "ok" for s in status.values()):
        log.error("checkpoints in %s do not verify: %s", folder, status)
        return 1
    config = read_config(folder)
    dataset = load_dataset(args.data)
    clips = dataset.clips("reference")[: args.clips]
    if len(clips) < 2:
        log.error("the reference split has %d clips; build the full data set first", len(clips))
        return 1
    dit_preset = build_preset(config, folder, "outpaint", trained=False)
    lmm_preset = build_preset(config, folder, "lmm", trained=True)
    settings = dataclasses.replace(dit_preset.settings, steps=args.steps)
    rate = dataset.sample_rate
    ctx_n = int(round(settings.context_s * rate))
    gen_n = int(round(args.blocks * settings.block_s * rate))
    audio = [dataset.read(c) for c in clips]
    if ctx_n + gen_n > audio[0].shape[0]:
        log.error("context (%d) + generated (%d) samples exceed the clips' %d", ctx_n, gen_n, audio[0].shape[0])
        return 1
    contexts = [a[:ctx_n] for a in audio]
    prompts = [c["short_prompt"] for c in clips]

    outputs, plan = reference_outputs(audio, ctx_n, gen_n, dit_preset, lmm_preset, folder)
    timings: dict[str, float] = {}
    for regime in [r.strip() for r in args.regimes.split(",") if r.strip()]:
        for trained in (True, False):
            name = f"{regime} ({'trained' if trained else 'random init'})"
            t = time.perf_counter()
            generated = generate(regime, build_preset(config, folder, regime, trained), settings, contexts, prompts,
                                 args.blocks, args.seed)
            outputs[name] = [g[:gen_n] for g in generated]
            timings[name] = round(time.perf_counter() - t, 1)
            plan.append((name, LMM_REF if regime == "lmm" else DIT_REF))
            log.info("%s: %d clips in %.1f s", name, len(generated), timings[name])

    scorer = Scorer(create_embedder("logmel").load(), rate, args.n_boot)
    rows = score_all(scorer, outputs, plan)
    music = music_scores(outputs, contexts, rate, args.n_boot, args.pitch_step_ms) if args.music else []
    out = Path(args.out)
    write_examples(out / "examples", outputs, contexts, [c["id"] for c in clips[: args.examples]], rate)
    result = {
        "checkpoints": str(folder), "sha256sums": (folder / "SHA256SUMS").read_text(),
        "data_manifest_sha256": dataset.manifest_sha256(), "reference_clips": [c["id"] for c in clips],
        "context_s": settings.context_s, "generated_s": gen_n / rate, "steps": settings.steps,
        "sampler": settings.sampler, "cfg": settings.cfg, "embedder": scorer.embedder.identity,
        "n_boot": args.n_boot,
        "ci": (f"95% bootstrap intervals resampling clips (FAD: {rows[0]['fad_ci_method']}, "
               f"KAD: {rows[0]['kad_ci_method']}: metrics.quality defaults)"),
        "rows": rows,
        "music": music, "pitch_tracker": PitchTracker(step_ms=args.pitch_step_ms).identity if args.music else None,
        "generation_s": timings, "wall_s": round(time.perf_counter() - started, 1),
        "command": "python scripts/eval_checkpoints.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown_table(result))
    sys.stdout.write(markdown_table(result))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="built data set (default: the cache)")
    parser.add_argument("--checkpoints", default=str(checkpoints_dir("cpu")))
    parser.add_argument("--clips", type=int, default=108, help="reference clips (default: %(default)s)")
    parser.add_argument("--blocks", type=int, default=2, help="blocks generated per clip (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps (default: %(default)s)")
    parser.add_argument("--regimes", default=",".join(REGIME_FILES))
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--examples", type=int, default=3, help="clips saved as WAV per system")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/eval-checkpoints")
    parser.add_argument("--pitch-step-ms", type=float, default=40.0,
                        help="PESTO step for the pitched fraction (10 = every frame; default: %(default)s)")
    parser.add_argument("--no-music", dest="music", action="store_false",
                        help="skip continuation fidelity and pitched fraction")
    return parser.parse_args(argv)


def reference_outputs(audio: list[np.ndarray], ctx_n: int, gen_n: int, dit_preset: Preset, lmm_preset: Preset,
                      folder: Path) -> tuple[dict[str, list[np.ndarray]], list[tuple[str, str]]]:
    """The non-generated sets (real continuations, codec round trips, the RVQ ceiling, the floor)
    and the (system, scored against) pairs that compare them."""
    cut = slice(ctx_n, ctx_n + gen_n)
    codebooks = load_file(str(folder / "lmm.safetensors"))[RVQ_CODEBOOKS_KEY].float()
    rvq = make_rvq(lmm_preset.lmm, codebooks)
    dit_round = codec_roundtrip(audio, dit_preset.dit.codec)
    rvq_name = f"LMM codec + RVQ ({lmm_preset.lmm.rvq_levels} x {lmm_preset.lmm.codebook_size})"
    outputs: dict[str, list[np.ndarray]] = {
        REAL: [a[cut] for a in audio],
        DIT_REF: [x[cut] for x in dit_round],
        LMM_REF: [x[cut] for x in codec_roundtrip(audio, lmm_preset.lmm.codec)],
        rvq_name: [x[cut] for x in codec_roundtrip(audio, lmm_preset.lmm.codec, rvq)],
        "same clips, other seconds (floor)": [x[:gen_n] for x in dit_round],
    }
    plan: list[tuple[str, str]] = [(DIT_REF, REAL), (LMM_REF, REAL), (rvq_name, LMM_REF),
                                   ("same clips, other seconds (floor)", DIT_REF)]
    return outputs, plan


def score_all(scorer: Scorer, outputs: dict[str, list[np.ndarray]], plan: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Embed every set, then one row per (system, scored against) pair of ``plan``."""
    for name, clips_audio in outputs.items():
        scorer.add(name, clips_audio)
    rows = []
    for name, reference in plan:
        rows.append(scorer.score(name, reference, _rms(outputs[name])))
        log.info("%-40s vs %-22s FAD %10.2f  KAD %8.3f", name, reference, rows[-1]["fad_logmel"],
                 rows[-1]["kad_logmel"])
    return rows


def write_examples(folder: Path, outputs: dict[str, list[np.ndarray]], contexts: list[np.ndarray],
                   clip_ids: list[str], rate: int) -> None:
    """``<folder>/<system>/<clip>.wav``: context + continuation of each of the clips ``clip_ids``
    (the first clips, in order) for every system."""
    for name, clips_audio in outputs.items():
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_")
        for i, clip_id in enumerate(clip_ids[: len(clips_audio)]):
            path = folder / slug / f"{clip_id}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wav_bytes(np.clip(np.concatenate([contexts[i], clips_audio[i]]), -1, 1), rate))


def markdown_table(result: dict[str, Any]) -> str:
    lines = [
        f"{len(result['reference_clips'])} held-out reference clips; {result['context_s']:g} s of context, "
        f"{result['generated_s']:g} s generated per clip, {result['steps']} {result['sampler']} steps, "
        f"no CFG; embedder logmel (weight-free); {result['ci']} ({result['n_boot']} replicates).",
        "",
        "| system | scored against | FAD logmel [95% CI] | KAD logmel [95% CI] | RMS |",
        "|---|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        fci = f" [{row['fad_ci'][0]:.1f}, {row['fad_ci'][1]:.1f}]" if row["fad_ci"] else ""
        kci = f" [{row['kad_ci'][0]:.2f}, {row['kad_ci'][1]:.2f}]" if row["kad_ci"] else ""
        lines.append(f"| {row['system']} | {row['reference']} | {row['fad_logmel']:.1f}{fci} | "
                     f"{row['kad_logmel']:.2f}{kci} | {row['rms']:.3f} |")
    if result.get("music"):
        lines += _music_table(result["music"])
    return "\n".join(lines) + "\n"


def _music_table(music: list[dict[str, Any]]) -> list[str]:
    """Continuation fidelity and pitched fraction per set (Markdown lines)."""
    lines = [
        "", "Continuation fidelity: chroma r of each continuation with its own context minus with the other "
        "clips' contexts (95% bootstrap CI over clips); follows = difference >= 0.1 with the CI above 0. "
        "Pitched fraction: PESTO frames with confidence > 0.5, mean over clips [95% CI].", "",
        "| system | paired r | shuffled r | paired - shuffled [95% CI] | follows its context | pitched fraction |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for m in music:
        low, high = m["difference_ci"]
        ci = m["pitched_fraction_ci"]
        pci = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"| {m['system']} | {m['chroma_fidelity_paired']:.3f} | {m['chroma_fidelity_shuffled']:.3f} | "
                     f"{m['chroma_fidelity_difference']:.3f} [{low:.3f}, {high:.3f}] | "
                     f"{'yes' if m['follows_context'] else 'no'} | {m['pitched_fraction']:.3f}{pci} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
