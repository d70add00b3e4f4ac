import ctypes
import threading

import numpy as np
import pytest

from metrics.quality.lapack import SymmetricSolver, _routines, leading_dimension, square_matrix, thread_solver


def _spd(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((3 * n, n))
    return x.T @ x / (3 * n)


def test_cholesky_writes_the_factor_into_the_c_upper_triangle_only():
    a = _spd(9, 0)
    out = a.copy()
    SymmetricSolver(9).cholesky(out)
    np.testing.assert_allclose(np.triu(out), np.linalg.cholesky(a).T, rtol=1e-12, atol=1e-14)
    assert np.array_equal(np.tril(out, -1), np.tril(a, -1))  # the other triangle is untouched


def test_cholesky_of_a_singular_matrix_raises_and_leaves_the_strict_lower_triangle():
    a = _spd(6, 1)
    a[:, 5] = a[5, :] = 0.0
    out = a.copy()
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        SymmetricSolver(6).cholesky(out)
    assert np.array_equal(np.tril(out, -1), np.tril(a, -1))


def test_congruence_and_eigenvalues_equal_numpy():
    a, b = _spd(12, 2), _spd(12, 3) * 2.0
    solver = SymmetricSolver(12)
    factor, m = a.copy(), b.copy()
    solver.cholesky(factor)
    solver.congruence(m, factor)
    lower = np.linalg.cholesky(a)
    expected = np.linalg.eigvalsh(lower.T @ b @ lower)
    np.testing.assert_allclose(solver.eigvalsh(m), expected, rtol=1e-12)
    # ... which are the eigenvalues of the product a b (the Frechet trace term's route)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(a @ b).real), expected, rtol=1e-10)


def test_rank1_update_on_the_upper_triangle():
    a = _spd(8, 4)
    x = np.random.default_rng(5).standard_normal(8)
    out = a.copy()
    SymmetricSolver(8).rank1_update(out, x, -0.25)
    np.testing.assert_allclose(np.triu(out), np.triu(a - 0.25 * np.outer(x, x)), rtol=1e-14, atol=1e-15)
    assert np.array_equal(np.tril(out, -1), np.tril(a, -1))


def test_gram_pack_and_unpack_use_the_c_upper_triangle_and_numpys_packed_order():
    x = np.random.default_rng(6).standard_normal((5, 7))  # fewer rows than columns: a singular Gram
    solver = SymmetricSolver(7)
    gram = np.full((7, 7), np.nan)
    solver.gram(x, gram)
    upper = np.triu_indices(7)
    np.testing.assert_allclose(gram[upper], (x.T @ x)[upper], rtol=1e-13, atol=1e-14)
    assert np.isnan(gram[np.tril_indices(7, -1)]).all()  # the other triangle is not written
    packed = np.empty(28)
    solver.pack(gram, packed)
    assert np.array_equal(packed, gram[upper])
    out = np.full((7, 7), -1.0)
    solver.unpack(packed, out)
    assert np.array_equal(out[upper], gram[upper]) and (out[np.tril_indices(7, -1)] == -1.0).all()


def test_bad_arrays_are_refused_before_lapack_sees_them():
    solver = SymmetricSolver(4)
    with pytest.raises(ValueError, match="float64 \\(4, 4\\) array with contiguous rows"):
        solver.cholesky(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous rows"):
        solver.eigvalsh(np.asfortranarray(np.eye(4)[:, ::-1]))
    with pytest.raises(ValueError, match="contiguous rows"):
        solver.eigvalsh(np.eye(8)[::2, ::2])  # strided columns
    with pytest.raises(ValueError, match="contiguous rows"):
        solver.eigvalsh(np.eye(16)[:4, :4].T)  # a transposed view: rows are not contiguous
    with pytest.raises(ValueError, match="\\(4, 4\\)"):
        solver.congruence(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="\\(4,\\) vector"):
        solver.rank1_update(np.eye(4), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="\\(10,\\) packed triangle"):
        solver.unpack(np.ones(9), np.eye(4))
    with pytest.raises(ValueError, match="packed triangle"):
        solver.pack(np.eye(4), np.ones(10, dtype=np.float32))
    with pytest.raises(ValueError, match="\\(k, 4\\) array"):
        solver.gram(np.ones((3, 5)), np.eye(4))


def test_routines_are_foreign_calls_that_release_the_gil():
    for name, routine in _routines().items():
        assert isinstance(routine, ctypes._CFuncPtr), name
        assert not routine._flags_ & ctypes._FUNCFLAG_PYTHONAPI, name  # PYFUNCTYPE would hold the GIL


def test_each_thread_has_its_own_workspace():
    mine = thread_solver(5)
    assert thread_solver(5) is mine and thread_solver(6) is not mine
    other = []
    worker = threading.Thread(target=lambda: other.append(thread_solver(5)))
    worker.start()
    worker.join()
    assert other[0] is not mine and other[0].n == 5


def test_leading_dimension_pads_strides_that_are_multiples_of_512_bytes():
    assert [leading_dimension(n) for n in (1, 7, 8, 100, 128, 512, 513, 768)] == [8, 8, 8, 104, 136, 520, 520, 776]
    m = square_matrix(512)
    assert m.shape == (512, 512) and m.strides == (520 * 8, 8) and not m.any()


def test_padded_rows_give_the_same_results_and_the_padding_is_not_touched():
    rng = np.random.default_rng(9)
    n = 12
    x = rng.standard_normal((40, n))
    spd = x.T @ x
    other = rng.standard_normal((40, n)).T @ rng.standard_normal((40, n))
    other = other + other.T

    def padded(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        buffer = np.full((n, 20), 7.0)  # 8 sentinel columns after each row
        buffer[:, :n] = values
        return buffer, buffer[:, :n]

    results = []
    for make in (lambda v: (None, v.copy()), padded):
        solver = SymmetricSolver(n)
        buf_l, factor = make(spd)
        solver.cholesky(factor)
        buf_c, c = make(other)
        solver.congruence(c, factor)
        values = solver.eigvalsh(c).copy()
        buf_g, g = make(np.zeros((n, n)))
        solver.gram(x, g)
        solver.rank1_update(g, x[0], -0.5)
        packed = np.empty(n * (n + 1) // 2)
        solver.pack(g, packed)
        buf_u, u = make(np.zeros((n, n)))
        solver.unpack(packed, u)
        results.append((np.triu(factor), values, packed, np.triu(u)))
        for buffer in (buf_l, buf_c, buf_g, buf_u):
            if buffer is not None:
                assert (buffer[:, n:] == 7.0).all()  # LAPACK wrote inside the rows only
    for contiguous, strided in zip(*results):
        np.testing.assert_allclose(strided, contiguous, rtol=1e-12, atol=1e-12)
    expected = np.sort(np.linalg.eigvals(other @ spd).real)  # L^T C L is similar to C L L^T
    np.testing.assert_allclose(results[0][1], expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
