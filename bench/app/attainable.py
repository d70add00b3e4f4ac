"""The attainable time of each phase on THIS machine, from the exact operations the phase runs.

A regime can be slow because the hardware is slow at what it asks (small-row matmuls run far
below the square-matmul peak) or because its code wastes time (copies, masks, Python). To tell
the two apart, the FLOPs pass also runs each phase under :class:`AttainableRecorder`, which
records every aten operation the phase dispatches. Then:

- every matmul-like operation (``mm``, ``addmm``, ``bmm``, ``baddbmm``, convolutions, the
  scaled-dot-product attention kernels) is REPLAYED alone on fresh tensors of the same shapes,
  strides and dtype, and timed (median over repeats; on CUDA the device time of back-to-back
  calls, :func:`_median_cuda_call_s`): the machine's measured throughput at that phase's shapes,
  not a peak figure;
- every other operation that moves data (elementwise, norms, softmax, copies, concatenation) is
  charged its bytes (inputs + outputs) at the machine's measured memory bandwidth (a large
  copy); views move nothing and cost nothing. A gather (an embedding lookup, ``index_select``)
  is charged the rows it selects, not its whole table, and a write at a position (a cache's
  ``index_copy_``) the rows it writes, not the whole destination (:func:`moved_bytes`).

The phase's attainable time is the sum. It is a lower bound of what this machine needs for the
phase's own operations, one after another, with no Python, no allocator and no synchronisation
in between. Each replay is timed twice:

- warm (``attainable_ms``): the same operands every call, so they sit in the caches. This is the
  lowest time, and the one "% of attainable" uses;
- cold (``attainable_cold_ms``): every call takes its operands from the next of several copies,
  together at least :data:`COLD_BYTES`, far beyond a core's private caches, so they arrive from
  the shared last-level cache or memory, as a layer's weights do inside a pass (each layer's
  weights evict the previous ones' from the private caches). Which of the two depends on the
  machine: a 256 MiB pool exceeds most last-level caches, but not every one (one machine here had
  a 480 MiB L3), and a model smaller than the last-level cache also streams its weights from it. A
  matmul with few rows (a cached pass's target rows) reads a whole weight matrix for little
  arithmetic, so it slows down cold far more than a wide one does (on this machine 1.3-1.5x at 33
  rows, 1.05x at 338). The truth for a real pass lies between the two, and a pair of regimes
  whose latency ratio sits between its warm and cold attainable ratios differs as the hardware
  makes it differ.

"% of attainable" = warm attainable / measured, 100% meaning the code adds nothing to the
hardware's own cost. Bytes and FLOPs per phase also give its arithmetic intensity, for the
roofline figure (reports). A compiled run is modelled from the same eager operations (what the
math needs); its fused kernels can beat the elementwise part of the bound.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry, shape_wrapper

from bench.app.flops import extra_formulas

# operations timed by replay: the ones whose speed depends on their shapes
REPLAYED = {
    "mm", "addmm", "bmm", "baddbmm", "convolution", "_convolution",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_attention_math", "mkldnn_rnn_layer", "_cudnn_rnn",
}
BANDWIDTH_BYTES = 1 << 28  # 256 MiB copied: beyond the private caches and most last-level ones
REPLAY_MIN_S = 0.02  # each replayed shape is timed for at least this long (and >= 5 calls)
COLD_BYTES = 1 << 28  # operand copies cycled by a cold replay (see the module docstring)
COLD_MAX_COPIES = 64  # ... unless that many copies already fill it (small calls stay partly warm)


def _extent(shape: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """Elements of memory a layout spans (0 when empty). Broadcast layouts (stride 0, as an
    ``expand``ed operand) span fewer elements than they have."""
    return 1 + sum((n - 1) * st for n, st in zip(shape, stride)) if all(shape) else 0


@dataclass(frozen=True)
class TensorSpec:
    """A tensor argument of a recorded call, without its values."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: str

    @property
    def nbytes(self) -> int:
        return _extent(self.shape, self.stride) * torch.empty((), dtype=self.dtype).element_size()

    def make(self) -> torch.Tensor:
        """A fresh tensor of this layout (bool: all True, so masks hide nothing; ints: zeros). The
        memory it spans is filled, then viewed with the layout's strides, so overlapping layouts
        (a weight broadcast over a batch of matmuls: stride 0) are made as they were recorded."""
        memory = torch.empty(_extent(self.shape, self.stride), dtype=self.dtype, device=self.device)
        if self.dtype == torch.bool:
            memory.fill_(True)
        elif self.dtype.is_floating_point:
            memory.normal_()
        else:
            memory.zero_()
        return memory.as_strided(self.shape, self.stride)


def _spec(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return TensorSpec(tuple(x.shape), tuple(x.stride()), x.dtype, str(x.device))
    return x


def _signature(tree: Any) -> Any:
    """``tree`` with tensors as :class:`TensorSpec` and lists as tuples (convolutions take their stride
    and padding as lists), so a call's arguments can be a dict key."""
    if isinstance(tree, (list, tuple)):
        return tuple(_signature(x) for x in tree)
    return _spec(tree)


# operations that read only the rows they select from their first argument (a table: an
# embedding's weight, index_select's input), not the whole of it
GATHERS = {"embedding", "index_select", "gather", "index", "take"}
# in-place operations that write only the rows they are given into their first argument (a cache
# written at a position) and read only the destination rows they accumulate into (``*_add_``)
# (each with a source tensor whose size is what it writes; index_fill_ and masked_scatter_, whose
# written size is not an argument's, keep the default charge)
SCATTERS = {"index_copy_", "index_put_", "scatter_"}
SCATTER_ADDS = {"index_add_", "scatter_add_", "scatter_reduce_"}
# in-place operations that write their first argument without reading it
WRITES = {"copy_", "fill_", "zero_", "normal_", "uniform_", "exponential_", "bernoulli_", "random_",
          "geometric_", "log_normal_", "cauchy_"}


def _nbytes(tensors: list[torch.Tensor]) -> int:
    """Bytes an operation touches in ``tensors``: each one's elements, or the memory its layout
    spans when that is less (an ``expand``ed operand, stride 0, is read once)."""
    return sum(min(t.numel(), _extent(tuple(t.shape), tuple(t.stride()))) * t.element_size() for t in tensors)


def moved_bytes(name: str, args: tuple, kwargs: dict, out: Any) -> int:
    """Bytes a non-view operation named ``name`` moves: what it reads plus what it writes.

    By default every tensor argument is read whole and every output written whole. Exceptions,
    so an op is not charged a table or a cache it touches a few rows of: a gather (:data:`GATHERS`)
    reads its indices and the selected rows (the output's size) and writes the output; an
    in-place scatter (:data:`SCATTERS`) reads its indices and source and writes the source's size
    into the destination (:data:`SCATTER_ADDS` also read those destination rows); an in-place
    write (:data:`WRITES`: ``copy_``, fills, random draws) writes its destination without
    reading it."""
    tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
    outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    rest = [t for t in tensors if t is not first]
    if first is None:
        return _nbytes(tensors) + _nbytes(outputs)
    if name in GATHERS:
        return _nbytes(rest) + 2 * _nbytes(outputs)
    if name in SCATTERS or name in SCATTER_ADDS:
        sources = [t for t in rest if t.dtype == first.dtype]  # the values written (not the indices)
        written = _nbytes(sources[-1:]) if sources else 0
        return _nbytes(rest) + written * (2 if name in SCATTER_ADDS else 1)
    if name in WRITES:
        return _nbytes(rest) + _nbytes([first])
    return _nbytes(tensors) + _nbytes(outputs)


@dataclass
class PhaseOps:
    """What one phase dispatched: replayed calls (by signature, with counts), other bytes, FLOPs."""

    replayed: Counter = field(default_factory=Counter)  # (op, args spec, kwargs spec) -> calls
    other_bytes: int = 0  # bytes moved by non-view, non-replayed operations
    replayed_bytes: int = 0
    flops: float = 0.0  # by torch's formulas (+ ours), as the FLOPs pass counts

    @property
    def bytes(self) -> int:
        return self.other_bytes + self.replayed_bytes


class _Capture(TorchDispatchMode):
    def __init__(self, ops: PhaseOps) -> None:
        super().__init__()
        self.ops = ops
        self.formulas = {**flop_registry, **{k: shape_wrapper(v) for k, v in extra_formulas().items()}}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name not in REPLAYED and func.overloadpacket not in self.formulas:
            # composite ops (linear, scaled_dot_product_attention under inference_mode) reach a
            # mode whole; decompose them, as FlopCounterMode does, so their kernels are recorded
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        formula = self.formulas.get(func.overloadpacket)
        if formula is not None:
            self.ops.flops += float(formula(*args, out_val=out, **kwargs))
        if getattr(func, "is_view", False):
            return out
        moved = moved_bytes(name, args, kwargs, out)
        if name in REPLAYED:
            self.ops.replayed[(func, _signature(args), tuple(sorted((k, _signature(v)) for k, v in kwargs.items())))] += 1
            self.ops.replayed_bytes += moved
        else:
            self.ops.other_bytes += moved
        return out


class AttainableRecorder:
    """A phase recorder (the contract's ``recorder.phase``) collecting :class:`PhaseOps` per phase."""

    def __init__(self) -> None:
        self.phases: dict[str, PhaseOps] = defaultdict(PhaseOps)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with _Capture(self.phases[name]):
            yield


class ComposedRecorder:
    """Several recorders entered together around every phase (the FLOPs pass counts and captures)."""

    def __init__(self, *recorders: Any) -> None:
        self.recorders = recorders

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for recorder in self.recorders:
                stack.enter_context(recorder.phase(name))
            yield


# ------------------------------------------------------------------------------ the machine
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _median_call_s(fn: Callable[[], Any], device: str, min_s: float = REPLAY_MIN_S, min_calls: int = 5,
                   warm_up: int = 1) -> float:
    """Median seconds of one call of ``fn`` over batches filling ``min_s`` (after ``warm_up`` calls).

    On the CPU each call is timed alone. On CUDA that would time the host's launch and its wait
    for the device too, which the module's bound excludes (and which outweighs a small kernel), so
    there the device time of back-to-back calls is measured (:func:`_median_cuda_call_s`)."""
    for _ in range(warm_up):
        fn()
    _sync(device)
    if device.startswith("cuda"):
        return _median_cuda_call_s(fn, device, min_s, min_calls)
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_calls or time.perf_counter() - started < min_s:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 200:
            break
    return statistics.median(samples)


CUDA_BATCH_CALLS = 32  # calls per timed batch on CUDA (a cold replay cycles its copies within it)


def _median_cuda_call_s(fn: Callable[[], Any], device: str, min_s: float, min_calls: int) -> float:
    """Median device seconds per call of ``fn`` on CUDA: CUDA events around a batch of
    :data:`CUDA_BATCH_CALLS` calls, replayed as one captured CUDA graph (no host launch cost
    between the kernels), or launched back to back when the calls cannot be captured (then a
    kernel shorter than its launch is timed at the launch rate)."""
    batch = max(CUDA_BATCH_CALLS, min_calls)

    def launch() -> None:
        for _ in range(batch):
            fn()

    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            fn()  # capture needs the call's lazy initialisation (e.g. the BLAS handle) done first
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            launch()
        run = graph.replay
    except Exception:  # noqa: BLE001 - not capturable; a real fault in fn raises again just below
        torch.cuda.synchronize(device)
        run = launch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < 3 or time.perf_counter() - started < min_s:
        start.record()
        run()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / batch)
        if len(samples) >= 50:
            break
    return statistics.median(samples)


def _same_layout_copy(x: Any) -> Any:
    """A copy of a tensor with its exact strides (a memory copy, faster than drawing new values): the
    memory it spans is copied whole, so overlapping (broadcast) layouts copy too."""
    if not isinstance(x, torch.Tensor):
        return x
    span = x.as_strided((_extent(tuple(x.shape), x.stride()),), (1,))  # from x's own storage offset
    return span.clone().as_strided(x.shape, x.stride())


class MachineModel:
    """This machine's measured memory bandwidth and per-shape replay times (cached per process)."""

    def __init__(self) -> None:
        self._bandwidth: dict[str, float] = {}
        self._replay: dict[Any, float] = {}

    def bandwidth_bytes_per_s(self, device: str) -> float:
        """Bytes per second of a large device-to-device copy (read + write counted)."""
        if device not in self._bandwidth:
            src = torch.empty(BANDWIDTH_BYTES // 4, dtype=torch.float32, device=device).normal_()
            dst = torch.empty_like(src)
            seconds = _median_call_s(lambda: dst.copy_(src), device, min_s=0.2)
            self._bandwidth[device] = 2.0 * BANDWIDTH_BYTES / seconds
        return self._bandwidth[device]

    def replay_s(self, key: Any, cold: bool = False) -> float:
        """Median seconds of one call of a recorded operation on fresh tensors of its layout:
        the same tensors every call (warm), or the next of several copies each call (``cold``:
        module docstring)."""
        if (key, cold) not in self._replay:
            func, args, kwargs = key
            specs = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, TensorSpec)]
            device = specs[0].device if specs else "cpu"
            call_bytes = max(1, sum(spec.nbytes for spec in specs))
            copies = min(COLD_MAX_COPIES, max(2, -(-COLD_BYTES // call_bytes))) if cold else 1
            first = (tree_map(lambda x: x.make() if isinstance(x, TensorSpec) else x, args),
                     {k: (v.make() if isinstance(v, TensorSpec) else v) for k, v in kwargs})
            operands = [first] + [tree_map(_same_layout_copy, first) for _ in range(copies - 1)]
            turn = iter(range(1 << 62))

            def call() -> Any:
                real_args, real_kwargs = operands[next(turn) % copies]
                return func(*real_args, **real_kwargs)

            with torch.inference_mode():
                self._replay[(key, cold)] = _median_call_s(call, device, min_calls=max(5, copies), warm_up=copies)
        return self._replay[(key, cold)]

    def attainable_s(self, ops: PhaseOps, device: str) -> dict[str, float]:
        """The phase's attainable seconds: replayed calls at their measured times (warm; and cold,
        ``attainable_cold_s``), the rest at the measured bandwidth. Also returns the parts."""
        replayed = sum(self.replay_s(key) * calls for key, calls in ops.replayed.items())
        replayed_cold = sum(self.replay_s(key, cold=True) * calls for key, calls in ops.replayed.items())
        memory = ops.other_bytes / self.bandwidth_bytes_per_s(device)
        return {"attainable_s": replayed + memory, "replayed_s": replayed, "memory_bound_s": memory,
                "attainable_cold_s": replayed_cold + memory}


MACHINE = MachineModel()  # one per process: shapes repeat across cells
ATTAINABLE_COLUMNS = ("bytes_moved", "replayed_calls", "attainable_ms", "attainable_replayed_ms", "attainable_memory_ms",
                      "attainable_cold_ms", "bandwidth_bytes_per_s")


def attainable_columns(recorder: AttainableRecorder, phase: str, device: str,
                       machine: MachineModel = MACHINE) -> dict[str, float]:
    """The FLOPs-table columns of one phase of one block: bytes moved, matmul-like calls replayed,
    attainable milliseconds (total, replayed part, bandwidth part)."""
    bandwidth = machine.bandwidth_bytes_per_s(device)
    ops = recorder.phases.get(phase)
    if ops is None:
        return {"bytes_moved": 0.0, "replayed_calls": 0, "attainable_ms": 0.0, "attainable_replayed_ms": 0.0,
                "attainable_memory_ms": 0.0, "attainable_cold_ms": 0.0, "bandwidth_bytes_per_s": bandwidth}
    parts = machine.attainable_s(ops, device)
    return {"bytes_moved": float(ops.bytes), "replayed_calls": int(sum(ops.replayed.values())),
            "attainable_ms": parts["attainable_s"] * 1e3, "attainable_replayed_ms": parts["replayed_s"] * 1e3,
            "attainable_memory_ms": parts["memory_bound_s"] * 1e3, "attainable_cold_ms": parts["attainable_cold_s"] * 1e3,
            "bandwidth_bytes_per_s": bandwidth}


__all__ = ["ATTAINABLE_COLUMNS", "AttainableRecorder", "COLD_BYTES", "ComposedRecorder", "MachineModel", "MACHINE",
           "attainable_columns", "PhaseOps", "REPLAYED"]
