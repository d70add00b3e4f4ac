"""GPU readiness, checked on the CPU in CI: what would go wrong only on a GPU.

1. No host read of device data inside a step, before its audio copy. On CUDA, reading a tensor's
   value on the host (``.item()``, ``bool(t)``, ``float(t)``, a boolean mask index, ``nonzero``,
   ``.cpu()``/``.numpy()``/``.tolist()``) waits for the GPU: a hidden synchronisation inside the
   timed step. ``tests/gpu/test_cuda.py`` checks that with ``torch.cuda.set_sync_debug_mode("error")``,
   but only where a GPU is. Here every ATen call of a step is seen by a dispatch mode, and the
   host-copy methods of ``torch.Tensor`` are wrapped, outside the decode phase (which ends with the
   block's one host copy of its audio).
2. No tensor of a step is made on the default device by accident (a factory call without
   ``device=``): on a GPU it would land on the CPU, beside CUDA tensors. The watched steps run with
   ``meta`` as the default device, so such a tensor meets the CPU ones and the step fails.
   Tensors made on the host on purpose say ``device="cpu"``.
3. No blocking upload inside a step: ``.to(device)`` (or ``.cuda()``) without ``non_blocking=True``,
   or ``torch.tensor(data, device=...)`` of Python data, copies from pageable host memory and then
   synchronises the stream on CUDA. Uploads (a new prompt's tokens, offset-mode RoPE positions)
   are made on the host and sent with ``non_blocking=True``, which does not wait for the stream.

Not covered here (the GPU test covers them): compiled steps (their kernels bypass the dispatcher).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import traceback
import weakref
from collections import Counter
from typing import Any, Callable, Iterator

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from baselines.dit import DiT
from bench.core.phases import PHASE_DECODE
from bench.core.presets import Preset, apply_overrides, get_preset
from bench.core.registry import GENERATORS, MUSICGEN_GENERATOR
from bench.core.settings import Control
from tests.baselines.test_sat_dit import sat_config

ATEN = torch.ops.aten
# ATen calls whose result the host must read from the device (each syncs on CUDA). Under inference
# mode, as steps run, composite ops such as ``item`` reach the mode undecomposed, so both are listed.
HOST_READS = {
    ATEN._local_scalar_dense.default, ATEN.item.default, ATEN.is_nonzero.default, ATEN.equal.default,
    ATEN.allclose.default, ATEN.nonzero.default, ATEN.nonzero_numpy.default, ATEN.argwhere.default,
    ATEN.where.default,  # one-argument where
    ATEN.masked_select.default, ATEN._unique2.default, ATEN.unique_consecutive.default, ATEN.unique_dim.default,
    ATEN.repeat_interleave.Tensor, ATEN.bincount.default,
}
INDEXING = {ATEN.index.Tensor, ATEN.index_put.default, ATEN.index_put_.default}  # sync with a boolean index
HOST_COPIES = ("cpu", "numpy", "tolist", "item", "__array__")  # Tensor methods that copy to the host


class HostReads(TorchDispatchMode):
    """Counts, with where they came from, the calls inside it that read device data on the host,
    while ``active`` (the :meth:`phase` recorder turns it off for the decode phase)."""

    def __init__(self) -> None:
        super().__init__()
        self.active = True
        self.calls: Counter[tuple[str, str]] = Counter()

    def note(self, what: str) -> None:
        if self.active:
            self.calls[(what, "".join(traceback.format_stack(limit=12)[:-2]))] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func in HOST_READS:
            self.note(str(func))
        elif func in INDEXING and any(i is not None and i.dtype == torch.bool for i in args[1]):
            self.note(f"{func} with a boolean index")
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """The step's phase recorder: reads are allowed in the decode phase only."""
        if name != PHASE_DECODE:
            yield
            return
        self.active = False
        try:
            yield
        finally:
            self.active = True

    @contextlib.contextmanager
    def watching_host_copies(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """Also count the Tensor methods that copy to the host (on the CPU they dispatch nothing)."""
        with monkeypatch.context() as patch:
            for name in HOST_COPIES:
                original = getattr(torch.Tensor, name)

                def wrapped(tensor, *args, _original=original, _name=name, **kwargs):  # noqa: ANN
                    self.note(f"Tensor.{_name}")
                    return _original(tensor, *args, **kwargs)

                patch.setattr(torch.Tensor, name, wrapped)
            yield

    def report(self) -> str:
        return "\n".join(f"{count} x {what}, from:\n{where}" for (what, where), count in self.calls.items())


def _is_cpu_literal(device: object) -> bool:
    """``device="cpu"`` written as a string: a tensor meant for the host (a ``torch.device`` object
    comes from a model or a tensor: on a GPU machine, the GPU)."""
    return isinstance(device, str) and device == "cpu"


class BlockingUploads(TorchFunctionMode):
    """Tells ``reads`` of every upload inside it that would wait for the stream on CUDA: a host
    tensor (made with ``device="cpu"``, from NumPy, or computed from host tensors only) moved with
    ``.to(device)`` or ``.cuda()`` without ``non_blocking=True``, or Python data given straight to
    ``torch.tensor(..., device=...)``. (A move of a device tensor is not an upload: on the CPU the
    two look alike, hence the host tensors are followed.)"""

    def __init__(self, reads: HostReads) -> None:
        super().__init__()
        self.reads = reads
        self.host: dict[int, weakref.ref] = {}  # id -> the host tensor (tensors compare by value)

    @contextlib.contextmanager
    def following_numpy(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """Also mark the tensors ``torch.from_numpy`` makes as host tensors (no mode sees that call)."""
        from_numpy = torch.from_numpy

        def tagged(array):  # noqa: ANN001, ANN202
            tensor = from_numpy(array)
            self.host[id(tensor)] = weakref.ref(tensor)
            return tensor

        with monkeypatch.context() as patch:
            patch.setattr(torch, "from_numpy", tagged)
            yield

    def _is_host(self, value: object) -> bool:
        ref = self.host.get(id(value))
        return ref is not None and ref() is value

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        to_host = _is_cpu_literal(kwargs.get("device"))  # the project's spelling of "made on the host"
        moved = False
        if func in (torch.Tensor.to, torch.Tensor.cuda):
            device, _, non_blocking, _ = (torch._C._nn._parse_to(*args[1:], **kwargs) if func is torch.Tensor.to
                                          else (torch.device("cuda"), None, kwargs.get("non_blocking", False), None))
            moved = device is not None
            to_host = moved and _is_cpu_literal(kwargs.get("device", args[1] if len(args) > 1 else None))
            if moved and not to_host and self._is_host(args[0]) and not non_blocking:
                self.reads.note(f"an upload by Tensor.{func.__name__} without non_blocking=True")
        elif func in (torch.tensor, torch.as_tensor, torch.asarray) and not isinstance(args[0], torch.Tensor):
            if kwargs.get("device") is not None and not _is_cpu_literal(kwargs["device"]):
                self.reads.note(f"an upload by torch.{func.__name__}(data, device=...)")
        out = func(*args, **kwargs)
        from_host = bool(inputs) and all(self._is_host(t) for t in inputs)
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            if to_host or (from_host and not moved):
                self.host[id(t)] = weakref.ref(t)
            elif moved:  # now a device tensor (here the same object when nothing had to move)
                self.host.pop(id(t), None)
        return out


def _reads_in_steps(monkeypatch: pytest.MonkeyPatch, name: str, preset: Preset, prompts: list[str],
                    prepare: Callable[[Any], None] | None = None) -> HostReads:
    """One warm-up block, then a block per prompt in ``prompts``, watched (a new prompt re-encodes
    the text and, in the LMDMs, re-bootstraps the cache inside the step). ``prepare(gen)`` runs
    before the warm-up block."""
    gen = GENERATORS.create(name, preset, preset.settings, device="cpu", dtype=torch.float32)
    if prepare is not None:
        prepare(gen)
    state = gen.start(Control(prompts[0]), seed=0)
    reads = HostReads()
    with torch.inference_mode():
        _, state = gen.step(state, Control(prompts[0]))
        uploads = BlockingUploads(reads)
        with reads.watching_host_copies(monkeypatch), uploads.following_numpy(monkeypatch), reads, \
                torch.device("meta"), uploads:
            for prompt in prompts:
                try:
                    _, state = gen.step(state, Control(prompt), reads)
                except (RuntimeError, NotImplementedError, TypeError) as exc:
                    if "meta" not in str(exc):
                        raise
                    raise AssertionError(f"{name}: a tensor of the step was made on the default device (no "
                                         f"device=); on a GPU it would be on the CPU: {exc}") from exc
    return reads


def _with_settings(preset: Preset, **changes: object) -> Preset:
    return dataclasses.replace(preset, settings=dataclasses.replace(preset.settings, **changes))


STEADY_THEN_NEW_PROMPT = ["warm organ chords", "warm organ chords", "bright synth arpeggio", "bright synth arpeggio"]


@pytest.mark.parametrize("guided", [False, True], ids=["no-cfg", "cfg"])
@pytest.mark.parametrize("name", [n for n in GENERATORS.names(include_extras=True) if n != MUSICGEN_GENERATOR])
def test_no_regime_reads_device_data_on_the_host_inside_a_step(monkeypatch, name, guided):
    reads = _reads_in_steps(monkeypatch, name, _with_settings(get_preset("tiny"), cfg=guided), STEADY_THEN_NEW_PROMPT)
    assert not reads.calls, reads.report()


@pytest.mark.parametrize("variant", ["dit.rope_mode=offset", "dit.arch=sat", "euler"])
@pytest.mark.parametrize("name", ["outpaint", "lmdm-encdec", "lmdm-causal"])
def test_nor_do_the_diffusion_regimes_other_variants(monkeypatch, tmp_path, name, variant):
    preset = get_preset("tiny")
    if variant == "euler":  # the other sampler
        preset = _with_settings(preset, sampler="euler")
    overrides = [variant] if variant.startswith("dit.") else []
    if variant == "dit.arch=sat":  # our reading of a stable-audio-tools DiT config
        config = tmp_path / "model_config.json"
        config.write_text(json.dumps(sat_config(io=preset.dit.codec.latent_dim)))
        overrides.append(f"dit.config={config}")
    reads = _reads_in_steps(monkeypatch, name, apply_overrides(preset, overrides), STEADY_THEN_NEW_PROMPT)
    assert not reads.calls, reads.report()


@pytest.mark.parametrize("guided", [False, True], ids=["no-cfg", "cfg"])
def test_nor_do_the_lmms_static_passes_its_compile_mode_runs(monkeypatch, guided):
    """The code the LMM's compile mode compiles (temporal pass, depth frame with its in-graph
    draws), run eager here: no host read, no tensor without ``device=``."""
    from baselines.lmm_static import StaticTokenPasses

    def static(gen: Any) -> None:
        gen._static = StaticTokenPasses(gen)

    reads = _reads_in_steps(monkeypatch, "lmm", _with_settings(get_preset("tiny"), cfg=guided), STEADY_THEN_NEW_PROMPT,
                            prepare=static)
    assert not reads.calls, reads.report()


def test_musicgen_reads_none_in_steady_blocks_and_one_at_a_new_prompt(monkeypatch):
    """transformers' T5 checks on the host whether its padding mask hides anything
    (``masking_utils``: ``padding_mask.all()``) each time the prompt is encoded: one read in a
    block with a new prompt, none in steady blocks. It is transformers' code, run as MusicGen
    runs it (docs/musicgen.md)."""
    steady = _reads_in_steps(monkeypatch, MUSICGEN_GENERATOR, get_preset("tiny"), STEADY_THEN_NEW_PROMPT[:2])
    assert not steady.calls, steady.report()
    changed = _reads_in_steps(monkeypatch, MUSICGEN_GENERATOR, get_preset("tiny"), STEADY_THEN_NEW_PROMPT[1:3])
    assert sum(changed.calls.values()) == 1, changed.report()
    assert all("masking_utils" in where for _, where in changed.calls), changed.report()


SAMPLE_READS = {
    "float": lambda x: float(x.sum()),
    "bool": lambda x: bool(x.any()),
    "int": lambda x: int(x.argmax()),
    "item": lambda x: x.max().item(),
    "boolean index": lambda x: x[x > 1.0],
    "nonzero": lambda x: x.nonzero(),
    "one-argument where": lambda x: torch.where(x > 1.0),
    "argwhere": lambda x: torch.argwhere(x),
    "masked_select": lambda x: x.masked_select(x > 1.0),
    "unique": lambda x: x.unique(),
    "equal": lambda x: torch.equal(x, x),
    "allclose": lambda x: torch.allclose(x, x),
    "tolist": lambda x: x.tolist(),
    "numpy": lambda x: x.numpy(),
    "cpu": lambda x: x.cpu(),
    "blocking upload": lambda x: torch.ones(2, device="cpu").to(x.device),
    "blocking cuda()": lambda x: _without_cuda_error(torch.Tensor.cuda, torch.from_numpy(x.numpy(force=True))),
    "torch.tensor to a device": lambda x: torch.tensor([1.0, 2.0], device=x.device),
}


def _without_cuda_error(method, x: torch.Tensor) -> None:  # noqa: ANN001
    """Calls ``method(x)``; without CUDA it raises after the watch has seen the call."""
    try:
        method(x)
    except (RuntimeError, AssertionError):
        if torch.cuda.is_available():
            raise


@pytest.mark.parametrize("inference", [True, False], ids=["inference-mode", "grad-mode"])
@pytest.mark.parametrize("kind", list(SAMPLE_READS))
def test_the_check_sees_each_kind_of_host_read(monkeypatch, kind, inference):
    """The watch itself: each way of reading device data on the host is counted, once or more,
    under inference mode (as steps run) and outside it; none in the decode phase."""
    with torch.inference_mode(inference):
        x = torch.arange(4.0)
        reads = HostReads()
        uploads = BlockingUploads(reads)
        with reads.watching_host_copies(monkeypatch), uploads.following_numpy(monkeypatch), reads, uploads:
            with reads.phase(PHASE_DECODE):
                SAMPLE_READS[kind](x)  # allowed: the decode phase ends with the block's audio copy
            assert not reads.calls, reads.report()
            SAMPLE_READS[kind](x)
            x.abs().mul(2.0).sum(dim=0)  # device work only: not counted
    assert reads.calls, f"{kind} was not seen"


@pytest.mark.parametrize("fault", ["host read", "default device", "blocking upload"])
def test_a_planted_fault_in_a_step_fails_the_check(monkeypatch, fault):
    """The whole path, on a real regime: a fault planted in the backbone's head is reported."""
    head = DiT.head

    def faulty_head(self, h):  # noqa: ANN001, ANN202
        if fault == "host read":
            assert float(h.abs().max()) >= 0.0
        elif fault == "default device":
            h = h + torch.zeros(h.shape[-1])  # no device=: on a GPU this one is on the CPU
        else:
            h = h + torch.zeros(h.shape[-1], device="cpu").to(h.device)  # an upload waiting for the stream
        return head(self, h)

    monkeypatch.setattr(DiT, "head", faulty_head)
    if fault == "default device":
        with pytest.raises(AssertionError, match="default device"):
            _reads_in_steps(monkeypatch, "lmdm-causal", get_preset("tiny"), STEADY_THEN_NEW_PROMPT[:1])
        return
    reads = _reads_in_steps(monkeypatch, "lmdm-causal", get_preset("tiny"), STEADY_THEN_NEW_PROMPT[:1])
    expected = "aten.item" if fault == "host read" else "an upload by Tensor.to"
    assert any(what.startswith(expected) for what, _ in reads.calls), reads.report()
