"""Bayesian linear regression on a potential's basis: predictive standard deviation of energies.

Model (Bishop, *Pattern Recognition and Machine Learning*, §3.3): y = X w + noise, prior
w ~ N(0, λ⁻¹ I) on column-scaled features, noise ~ N(0, α⁻¹). The hyperparameters λ, α are set by
evidence maximisation (scikit-learn's :class:`~sklearn.linear_model.BayesianRidge`, no intercept: the
species constants are columns of X). Posterior covariance Σ = (λ I + α Xᵀ X)⁻¹, and for a new row x

    epistemic variance  xᵀ Σ x        (uncertainty of the fitted model)
    predictive variance xᵀ Σ x + 1/α  (adds the noise level of the labels)

For a configuration row (sum of its atoms' basis vectors) this is the variance of its energy (eV²);
divided by n_atoms² it is that of the energy per atom; for an atom's own basis vector it is the
variance of that atom's site energy. Rows of force components can be stacked into X as well.
Σ depends on the rows only, not on the labels, so a batch can be chosen greedily by conditioning Σ
on each pick (rank-1 update) without labelling it first (:meth:`BayesianLinearModel.greedy_select`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _rows(x, m: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    if x.ndim != 2 or (m is not None and x.shape[1] != m):
        raise ValueError(f"rows must have shape (n, {m if m is not None else 'n_basis'}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("rows contain NaN or inf")
    return x


@dataclass
class BayesianLinearModel:
    """Fitted Bayesian linear model: ``scale`` (m,) column scales, ``coef`` (m,) posterior mean in the
    original columns, ``covariance`` (m, m) posterior Σ of the scaled weights, ``noise_precision`` α
    (1/eV²), ``weight_precision`` λ."""

    scale: np.ndarray
    coef: np.ndarray
    covariance: np.ndarray
    noise_precision: float
    weight_precision: float

    @classmethod
    def fit(cls, rows, targets, weight_precision: float | None = None,
            noise_precision: float | None = None) -> BayesianLinearModel:
        """Fit on ``rows`` (n, m) and ``targets`` (n,) (e.g. energies in eV).

        Hyperparameters not given are found by evidence maximisation (BayesianRidge).
        """
        x = _rows(rows)
        y = np.asarray(targets, dtype=np.float64).reshape(-1)
        if y.shape != (len(x),) or not np.all(np.isfinite(y)):
            raise ValueError(f"targets must be {len(x)} finite numbers, got shape {y.shape}")
        if len(x) < 2:
            raise ValueError("need at least two labelled rows to fit a Bayesian linear model")
        scale = np.sqrt((x * x).mean(axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        xs = x / scale
        if weight_precision is None or noise_precision is None:
            from sklearn.linear_model import BayesianRidge

            br = BayesianRidge(fit_intercept=False, max_iter=500, tol=1e-6).fit(xs, y)
            alpha = float(br.alpha_) if noise_precision is None else float(noise_precision)
            lam = float(br.lambda_) if weight_precision is None else float(weight_precision)
        else:
            alpha, lam = float(noise_precision), float(weight_precision)
        precision = lam * np.eye(x.shape[1]) + alpha * (xs.T @ xs)
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        w = alpha * cov @ (xs.T @ y)
        return cls(scale, w / scale, cov, alpha, lam)

    @property
    def n_basis(self) -> int:
        return len(self.scale)

    def predict(self, rows) -> np.ndarray:
        """Posterior mean prediction (n,) (eV for energy rows)."""
        return _rows(rows, self.n_basis) @ self.coef

    def epistemic_std(self, rows) -> np.ndarray:
        """√(xᵀ Σ x) per row (n,): the model's own uncertainty (eV for energy rows)."""
        xs = _rows(rows, self.n_basis) / self.scale
        var = np.einsum("ij,jk,ik->i", xs, self.covariance, xs)
        return np.sqrt(np.maximum(var, 0.0))

    def predictive_std(self, rows) -> np.ndarray:
        """√(xᵀ Σ x + 1/α) per row (n,): standard deviation of a new label."""
        return np.sqrt(self.epistemic_std(rows) ** 2 + 1.0 / self.noise_precision)

    def conditioned_on(self, rows) -> BayesianLinearModel:
        """Model whose Σ also accounts for ``rows`` (labels not needed: Σ does not depend on them).

        Rank-1 updates Σ ← Σ − Σx xᵀΣ / (1/α + xᵀΣx); the mean is left unchanged.
        """
        cov = self.covariance.copy()
        for x in _rows(rows, self.n_basis) / self.scale:
            sx = cov @ x
            cov -= np.outer(sx, sx) / (1.0 / self.noise_precision + x @ sx)
        return BayesianLinearModel(self.scale, self.coef, cov, self.noise_precision, self.weight_precision)

    def greedy_select(self, rows, budget: int, n_atoms=None, candidates=None) -> tuple[np.ndarray, np.ndarray]:
        """Choose up to ``budget`` rows one by one, each time the largest epistemic std (per atom if
        ``n_atoms`` (n,) is given), conditioning Σ on the pick so near-duplicates are not all chosen.

        Returns the chosen row indices and their std at the time of choice.
        """
        x = _rows(rows, self.n_basis) / self.scale
        per = np.ones(len(x)) if n_atoms is None else np.asarray(n_atoms, dtype=np.float64).reshape(len(x))
        ok = np.ones(len(x), bool) if candidates is None else np.asarray(candidates, bool).reshape(len(x)).copy()
        cov = self.covariance.copy()
        sx_all = x @ cov  # (n, m); var_i = Σ_k sx_all[i, k] x[i, k]
        var = np.einsum("ik,ik->i", sx_all, x)
        chosen, stds = [], []
        for _ in range(min(budget, int(ok.sum()))):
            score = np.where(ok, np.sqrt(np.maximum(var, 0.0)) / per, -np.inf)
            i = int(np.argmax(score))
            chosen.append(i)
            stds.append(float(score[i]))
            ok[i] = False
            s = sx_all[i].copy()  # Σ x_i
            denom = 1.0 / self.noise_precision + s @ x[i]
            proj = x @ s  # x_kᵀ Σ x_i
            sx_all -= np.outer(proj, s) / denom
            var -= proj * proj / denom
            cov -= np.outer(s, s) / denom
        return np.array(chosen, np.int64), np.array(stds)
