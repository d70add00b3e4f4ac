"""LAPACK (and BLAS) calls that release the GIL, for bootstrap replicates run one per core.

A Frechet replicate needs ``tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2})``, and LAPACK has the exact
minimal-work route: Cholesky ``S_1 = L L^T`` (``dpotrf``), the congruence ``L^T S_2 L``
(``dsygst`` with ``itype=2``: half the work of two matrix products, since it exploits the
symmetry) and its eigenvalues (``dsyevr``, eigenvalues only); the centring of a scatter matrix
is the rank-1 update ``dsyr``; a sum of outer products ``X^T X`` is ``dsyrk``, and the packed
storage of a triangle is read and written by ``dtpttr`` / ``dtrttp``. numpy has no ``dsygst``,
and ``scipy.linalg.lapack``'s wrappers hold the GIL, so threads would run them one at a time.
This module calls the same routines through SciPy's public Cython LAPACK and BLAS APIs
(:mod:`scipy.linalg.cython_lapack` and ``cython_blas``, whose modules export raw function
pointers), via :mod:`ctypes`, which releases the GIL for the duration of each call.

Layout. The arrays are C-ordered and LAPACK reads them column-major, so LAPACK sees each matrix
transposed. For symmetric inputs that is the same matrix; every routine here is told ``uplo='L'``
and therefore reads and writes the Fortran lower triangle (the C upper triangle). Inputs must be
symmetric in full (both triangles), float64, with contiguous rows (rows may be padded:
:func:`square_matrix`); they are overwritten. The packed
triangle is the C upper triangle row by row (``numpy.triu_indices`` order), which is LAPACK's
packed lower triangle column by column.

One :class:`SymmetricSolver` per thread (:func:`thread_solver`) holds the workspace for one size.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from typing import Any

import numpy as np

_INT_P = ctypes.POINTER(ctypes.c_int)
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
_CHAR_P = ctypes.c_char_p

_BLAS_SIGNATURES: dict[str, tuple[Any, ...]] = {
    # dsyr(uplo, n, alpha, x, incx, a, lda)
    "dsyr": (_CHAR_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P, _DOUBLE_P, _INT_P),
    # dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)
    "dsyrk": (_CHAR_P, _CHAR_P, _INT_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P),
}
_SIGNATURES: dict[str, tuple[Any, ...]] = {
    # dpotrf(uplo, n, a, lda, info)
    "dpotrf": (_CHAR_P, _INT_P, _DOUBLE_P, _INT_P, _INT_P),
    # dtpttr(uplo, n, ap, a, lda, info): packed triangle -> full storage
    "dtpttr": (_CHAR_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P, _INT_P),
    # dtrttp(uplo, n, a, lda, ap, info): full storage -> packed triangle
    "dtrttp": (_CHAR_P, _INT_P, _DOUBLE_P, _INT_P, _DOUBLE_P, _INT_P),
    # dsygst(itype, uplo, n, a, lda, b, ldb, info)
    "dsygst": (_INT_P, _CHAR_P, _INT_P, _DOUBLE_P, _INT_P, _DOUBLE_P, _INT_P, _INT_P),
    # dsyevr(jobz, range, uplo, n, a, lda, vl, vu, il, iu, abstol, m, w, z, ldz, isuppz, work, lwork,
    #        iwork, liwork, info)
    "dsyevr": (
        _CHAR_P, _CHAR_P, _CHAR_P, _INT_P, _DOUBLE_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P, _INT_P,
        _DOUBLE_P, _INT_P, _DOUBLE_P, _DOUBLE_P, _INT_P, _INT_P, _DOUBLE_P, _INT_P, _INT_P, _INT_P, _INT_P,
    ),
}


class LapackUnavailableError(RuntimeError):
    """SciPy's Cython LAPACK function pointers could not be loaded."""


@lru_cache(maxsize=None)
def _routines() -> dict[str, Any]:
    """name -> ctypes function (GIL released during calls), from scipy.linalg.cython_lapack/_blas."""
    try:
        from scipy.linalg import cython_blas, cython_lapack
    except ImportError as exc:  # scipy is a dependency; this only fires in a broken install
        raise LapackUnavailableError(f"scipy's Cython LAPACK could not be imported ({exc}); reinstall scipy") from exc
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    out = {}
    for module, signatures in ((cython_lapack, _SIGNATURES), (cython_blas, _BLAS_SIGNATURES)):
        capsules = getattr(module, "__pyx_capi__", {})
        for name, argtypes in signatures.items():
            if name not in capsules:
                raise LapackUnavailableError(f"{module.__name__} exports no {name}; upgrade scipy")
            capsule = capsules[name]
            address = get_pointer(capsule, get_name(capsule))
            out[name] = ctypes.CFUNCTYPE(None, *argtypes)(address)
    return out


def _int(value: int) -> Any:
    return ctypes.byref(ctypes.c_int(int(value)))


def _ptr(array: np.ndarray) -> Any:
    return array.ctypes.data_as(_DOUBLE_P)


def _check_square(a: np.ndarray, n: int, what: str) -> Any:
    """The leading dimension (row stride in elements, rows may be padded) of a valid ``a``, as a
    LAPACK argument; a ValueError naming ``what`` otherwise."""
    row_stride = a.strides[0] // 8 if a.ndim == 2 else 0
    if (a.dtype != np.float64 or a.shape != (n, n) or not a.flags.writeable or a.strides[1] != 8
            or a.strides[0] % 8 or row_stride < max(n, 1)):
        raise ValueError(f"{what}: need a writeable float64 ({n}, {n}) array with contiguous rows (C order, rows "
                         f"may be padded), got {a.dtype} {a.shape} strides {a.strides}")
    return _int(row_stride)


def leading_dimension(n: int) -> int:
    """A row stride (in float64s) for an ``n x n`` matrix that LAPACK runs fast on: ``n`` rounded
    up to whole 64-byte cache lines, plus one line when the stride would be a multiple of 512
    bytes. With such strides (n = 512: 4096 bytes) the elements of a column fall into the same few
    cache sets, and column sweeps evict each other: padding 512 to 520 made a FAD replicate about
    7% faster here (``dsygst`` 10-15%), with bitwise-equal results (see :func:`square_matrix`)."""
    lda = -(-max(int(n), 1) // 8) * 8
    return lda + 8 if lda % 64 == 0 else lda


def square_matrix(n: int) -> np.ndarray:
    """A new zeroed (n, n) float64 matrix whose rows are padded to :func:`leading_dimension`: a
    view into an (n, lda) buffer, accepted by every method here."""
    return np.zeros((n, leading_dimension(n)))[:, :n]


def _check_packed(packed: np.ndarray, n: int, what: str) -> None:
    size = n * (n + 1) // 2
    if packed.dtype != np.float64 or packed.shape != (size,) or not packed.flags.c_contiguous:
        raise ValueError(f"{what}: need a C-contiguous float64 ({size},) packed triangle, got {packed.dtype} "
                         f"{packed.shape}")


class SymmetricSolver:
    """In-place Cholesky, congruence and eigenvalues of ``n x n`` symmetric matrices (one thread)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self._f = _routines()
        self.eigenvalues = np.empty(self.n)  # (n,) ascending, overwritten by each eigvalsh call
        self._z = np.empty(1)
        self._isuppz = np.empty(2 * max(self.n, 1), dtype=np.int32)
        work, iwork = np.empty(1), np.empty(1, dtype=np.int32)
        probe = np.eye(self.n)
        self._syevr(probe, work, -1, iwork, -1)  # workspace query
        self._work = np.empty(max(1, int(work[0])))
        self._iwork = np.empty(max(1, int(iwork[0])), dtype=np.int32)

    def _syevr(self, a: np.ndarray, work: np.ndarray, lwork: int, iwork: np.ndarray, liwork: int) -> int:
        lda = _check_square(a, self.n, "eigvalsh")
        zero, found, info = ctypes.c_double(0.0), ctypes.c_int(0), ctypes.c_int(0)
        self._f["dsyevr"](
            b"N", b"A", b"L", _int(self.n), _ptr(a), lda, ctypes.byref(zero), ctypes.byref(zero),
            _int(0), _int(0), ctypes.byref(zero), ctypes.byref(found), _ptr(self.eigenvalues), _ptr(self._z),
            _int(1), self._isuppz.ctypes.data_as(_INT_P), _ptr(work), _int(lwork), iwork.ctypes.data_as(_INT_P),
            _int(liwork), ctypes.byref(info),
        )
        if info.value != 0:
            raise np.linalg.LinAlgError(f"dsyevr failed (info {info.value})")
        return found.value

    def rank1_update(self, a: np.ndarray, x: np.ndarray, alpha: float) -> None:
        """``a <- a + alpha x x^T`` in place, on the triangle LAPACK reads (the C upper one)."""
        lda = _check_square(a, self.n, "rank1_update")
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"rank1_update: need a ({self.n},) vector, got {x.shape}")
        self._f["dsyr"](b"L", _int(self.n), ctypes.byref(ctypes.c_double(float(alpha))), _ptr(x), _int(1), _ptr(a), lda)

    def unpack(self, packed: np.ndarray, a: np.ndarray) -> None:
        """Write the packed upper triangle ``packed`` (n(n+1)/2,) into the C upper triangle of
        ``a``; the strict lower triangle is left as it was."""
        lda = _check_square(a, self.n, "unpack")
        _check_packed(packed, self.n, "unpack")
        info = ctypes.c_int(0)
        self._f["dtpttr"](b"L", _int(self.n), _ptr(packed), _ptr(a), lda, ctypes.byref(info))
        if info.value != 0:
            raise ValueError(f"dtpttr failed (info {info.value})")

    def pack(self, a: np.ndarray, packed: np.ndarray) -> None:
        """Write the C upper triangle of ``a`` into ``packed`` (n(n+1)/2,)."""
        lda = _check_square(a, self.n, "pack")
        _check_packed(packed, self.n, "pack")
        info = ctypes.c_int(0)
        self._f["dtrttp"](b"L", _int(self.n), _ptr(a), lda, _ptr(packed), ctypes.byref(info))
        if info.value != 0:
            raise ValueError(f"dtrttp failed (info {info.value})")

    def gram(self, x: np.ndarray, a: np.ndarray) -> None:
        """``a <- x^T x`` for ``x`` (k, n), on the C upper triangle of ``a`` (half a matrix product)."""
        lda = _check_square(a, self.n, "gram")
        if x.dtype != np.float64 or x.ndim != 2 or x.shape[1] != self.n or not x.flags.c_contiguous:
            raise ValueError(f"gram: need a C-contiguous float64 (k, {self.n}) array, got {x.dtype} {x.shape}")
        one, zero = ctypes.c_double(1.0), ctypes.c_double(0.0)
        self._f["dsyrk"](b"L", b"N", _int(self.n), _int(x.shape[0]), ctypes.byref(one), _ptr(x), _int(self.n),
                         ctypes.byref(zero), _ptr(a), lda)

    def cholesky(self, a: np.ndarray) -> None:
        """``a = L L^T`` in place (``L`` in the Fortran lower triangle); LinAlgError if not positive definite."""
        lda = _check_square(a, self.n, "cholesky")
        info = ctypes.c_int(0)
        self._f["dpotrf"](b"L", _int(self.n), _ptr(a), lda, ctypes.byref(info))
        if info.value != 0:
            raise np.linalg.LinAlgError(f"matrix is not positive definite (dpotrf info {info.value})")

    def congruence(self, a: np.ndarray, factor: np.ndarray) -> None:
        """``a <- L^T a L`` in place, ``L`` from :meth:`cholesky` (same eigenvalues as ``a L L^T``)."""
        lda = _check_square(a, self.n, "congruence")
        ldb = _check_square(factor, self.n, "congruence factor")
        info = ctypes.c_int(0)
        self._f["dsygst"](_int(2), b"L", _int(self.n), _ptr(a), lda, _ptr(factor), ldb,
                          ctypes.byref(info))
        if info.value != 0:
            raise np.linalg.LinAlgError(f"dsygst failed (info {info.value})")

    def eigvalsh(self, a: np.ndarray) -> np.ndarray:
        """Eigenvalues of symmetric ``a`` (destroyed), ascending; a view reused by the next call."""
        if self._syevr(a, self._work, self._work.shape[0], self._iwork, self._iwork.shape[0]) != self.n:
            raise np.linalg.LinAlgError("dsyevr returned fewer eigenvalues than the matrix size")
        return self.eigenvalues


_LOCAL = threading.local()


def thread_solver(n: int) -> SymmetricSolver:
    """This thread's solver for size ``n`` (workspace allocated once per thread and size)."""
    solvers = getattr(_LOCAL, "solvers", None)
    if solvers is None:
        solvers = _LOCAL.solvers = {}
    if n not in solvers:
        solvers[n] = SymmetricSolver(n)
    return solvers[n]


__all__ = ["LapackUnavailableError", "SymmetricSolver", "thread_solver"]
