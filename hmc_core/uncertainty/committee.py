"""Committee (query-by-committee) uncertainty: spread of linear models fitted on bootstrap resamples.

Given a weighted design matrix whose rows belong to configurations (``groups``), each member is fitted
on a bootstrap resample of the configurations (drawn with replacement, all rows of a drawn
configuration together) with the same ridge solver as the potential's own linear fit
(:func:`hmc_core.mtp.fit.solve_ridge`). The uncertainty of a prediction row x is the standard
deviation of x · θ_m over members m (eV for energy rows). Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Committee:
    """Members' linear coefficients ``coefficients`` (n_members, m)."""

    coefficients: np.ndarray

    @classmethod
    def fit(cls, design, targets, groups, n_members: int = 8, l2: float = 1e-12, seed: int = 0) -> Committee:
        """Bootstrap fits on ``design`` (n, m), ``targets`` (n,), ``groups`` (n,) configuration of each row."""
        from hmc_core.mtp.fit import solve_ridge

        a = np.asarray(design, dtype=np.float64)
        b = np.asarray(targets, dtype=np.float64).reshape(-1)
        g = np.asarray(groups).reshape(-1)
        if a.ndim != 2 or b.shape != (len(a),) or g.shape != (len(a),):
            raise ValueError(f"design (n, m), targets (n,) and groups (n,) must agree, got {a.shape}, {b.shape}, "
                             f"{g.shape}")
        if n_members < 2:
            raise ValueError(f"a committee needs at least 2 members, got {n_members}")
        labels, inverse = np.unique(g, return_inverse=True)
        rows_of = [np.nonzero(inverse == k)[0] for k in range(len(labels))]
        rng = np.random.default_rng(seed)
        coefs = []
        for _ in range(n_members):
            draw = rng.integers(0, len(labels), len(labels))
            r = np.concatenate([rows_of[k] for k in draw])
            coefs.append(solve_ridge(a[r], b[r], l2)[0])
        return cls(np.array(coefs))

    def predictions(self, rows) -> np.ndarray:
        """Member predictions (n_members, n) for rows (n, m)."""
        x = np.asarray(rows, dtype=np.float64)
        x = x[None, :] if x.ndim == 1 else x
        if x.shape[1] != self.coefficients.shape[1]:
            raise ValueError(f"rows have {x.shape[1]} columns, the committee was fitted with "
                             f"{self.coefficients.shape[1]}")
        return self.coefficients @ x.T

    def std(self, rows) -> np.ndarray:
        """Committee standard deviation (n,) of the prediction of each row (sample std over members)."""
        return self.predictions(rows).std(axis=0, ddof=1)
