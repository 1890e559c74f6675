"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the ``implicit`` library.

``fit_als`` factorises a users x items matrix of interaction strengths: confidence
``alpha * x_ui`` that the user prefers the item where ``x_ui > 0`` (1 elsewhere, as
``implicit`` weighs it), preference 1 where ``x_ui > 0``.
``fold_in`` gives a user who was not (or not yet) in the fit the exact ALS user vector for fixed
item factors, the same least-squares solve ALS runs for every user in its user half-step, so a
live user's vector follows their newest interactions without a refit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Float32Array = npt.NDArray[np.float32]


def fit_als(
    matrix: sp.csr_matrix, *, factors: int, regularization: float, alpha: float,
    iterations: int = 15, seed: int = 0, threads: int = 0,
) -> tuple[Float32Array, Float32Array]:
    """``(user_factors, item_factors)`` of ``matrix`` (users x items, float32 values)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    n_users, n_items = matrix.shape
    if matrix.nnz == 0:
        return (np.zeros((n_users, factors), np.float32), np.zeros((n_items, factors), np.float32))
    # implicit runs its own threads and warns when BLAS would run more under them.
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
            random_state=seed, num_threads=threads, calculate_training_loss=False)
        model.fit(sp.csr_matrix(matrix, dtype=np.float32), show_progress=False)
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return users, items


def gram(item_factors: Float32Array) -> npt.NDArray[np.float64]:
    """``Y'Y``: shared by every fold-in on the same item factors (compute once)."""
    y = item_factors.astype(np.float64)
    return y.T @ y


def fold_in(
    item_factors: Float32Array, yty: npt.NDArray[np.float64], items: npt.NDArray[np.integer],
    strengths: npt.NDArray[np.floating], *, regularization: float, alpha: float,
) -> Float32Array:
    """The ALS user vector for ``items`` with interaction ``strengths`` (zeros when none).

    Solves ``(Y'Y + Y' (C_u - I) Y + reg I) x = Y' C_u p_u`` with ``C_u = alpha * s`` on the
    user's items: the solve ``implicit`` runs for each user.
    """
    dim = item_factors.shape[1]
    if len(items) == 0:
        return np.zeros(dim, np.float32)
    y = item_factors[np.asarray(items, dtype=np.int64)].astype(np.float64)
    conf = alpha * np.asarray(strengths, dtype=np.float64)
    a = yty + (y.T * (conf - 1.0)) @ y + regularization * np.eye(dim)
    b = y.T @ conf
    return np.linalg.solve(a, b).astype(np.float32)


@dataclass(frozen=True)
class FoldIn:
    """What a user vector needs from an ALS fit: the item factors, ``Y'Y`` and the settings."""

    item_factors: Float32Array
    yty: npt.NDArray[np.float64]
    regularization: float
    alpha: float

    @classmethod
    def of(cls, item_factors: Float32Array, regularization: float, alpha: float) -> FoldIn:
        return cls(item_factors, gram(item_factors), regularization, alpha)

    def user(self, items: npt.NDArray[np.integer]) -> Float32Array:
        """The vector of a user who has ``items`` (each a positive interaction)."""
        items = np.asarray(items, dtype=np.int64)
        items = items[(items >= 0) & (items < self.item_factors.shape[0])]
        return fold_in(self.item_factors, self.yty, items, np.ones(items.shape[0]),
                       regularization=self.regularization, alpha=self.alpha)

    def users(self, rows: sp.csr_matrix) -> Float32Array:
        """One vector per row of ``rows`` (users x items; the non-zero columns count)."""
        out = np.zeros((rows.shape[0], self.item_factors.shape[1]), np.float32)
        for r in range(rows.shape[0]):
            out[r] = self.user(rows.indices[rows.indptr[r]:rows.indptr[r + 1]])
        return out
