"""Multiple-histogram reweighting (binless WHAM) of canonical energies from several temperatures.

Given potential energies u sampled at temperatures T_1 … T_K (N_k samples each, e.g. the rungs of a
replica-exchange run), the density of states is estimated without bins (Ferrenberg & Swendsen 1989;
Shirts & Chodera 2008, MBAR for energies only). The dimensionless free energies f_k = −ln Z(β_k)
solve

    f_k = −ln Σ_n exp(−β_k u_n − D_n),    D_n = ln Σ_j N_j exp(f_j − β_j u_n),

with f_1 = 0, so ``log_partition(T)`` is ln Z(T) − ln Z(T_1) for the configurational partition
function. Averages at any T between the rungs follow from the weights exp(−β u_n − D_n). Start values
come from thermodynamic integration of the rung means (d ln Z / dβ = −⟨U⟩), so the iteration
converges in a few hundred steps.

Energies and k_B T in the same units (kB given for "metal": 8.617e-5 eV/K).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp


class MultipleHistogram:
    """Binless WHAM over rungs: ``energies[k]`` (N_k,) sampled at ``temperatures[k]`` (increasing or not)."""

    def __init__(self, energies: Sequence[np.ndarray], temperatures, kB: float = 1.0, tol: float = 1e-9,
                 max_iter: int = 20000):
        t = np.asarray(temperatures, float).ravel()
        if len(energies) != len(t) or len(t) < 1:
            raise ValueError(f"need one energy array per temperature, got {len(energies)} arrays for {len(t)} "
                             "temperatures")
        arrays = [np.asarray(e, float).ravel() for e in energies]
        if any(len(a) < 2 for a in arrays) or not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("each rung needs at least 2 finite energies")
        if not (np.all(np.isfinite(t)) and np.all(t > 0)):
            raise ValueError(f"temperatures must be positive, got {t.tolist()}")
        self.kB = float(kB)
        self.temperatures = t
        self.betas = 1.0 / (self.kB * t)
        self.u = np.concatenate(arrays)
        self.log_counts = np.log([len(a) for a in arrays])
        # start: trapezoidal thermodynamic integration of the rung means along the ladder order
        order = np.argsort(self.betas)
        means = np.array([a.mean() for a in arrays])
        f = np.zeros(len(t))
        b, m = self.betas[order], means[order]
        f[order] = np.concatenate([[0.0], np.cumsum(0.5 * (m[1:] + m[:-1]) * np.diff(b))])
        f -= f[0]
        self.n_iter, change = 0, np.inf
        while self.n_iter < max_iter and change >= tol:
            f_new = -logsumexp(-self.betas[:, None] * self.u[None] - self._log_den(f)[None], axis=1)
            f_new -= f_new[0]
            change = np.max(np.abs(f_new - f))
            f = f_new
            self.n_iter += 1
        self.converged = change < tol
        self.free_energies = f  # −ln Z(β_k) + ln Z(β_1)
        self.log_den = self._log_den(f)

    def _log_den(self, f: np.ndarray) -> np.ndarray:
        return logsumexp(self.log_counts[:, None] + f[:, None] - self.betas[:, None] * self.u[None], axis=0)

    def _log_weights(self, temperature: float) -> np.ndarray:
        return -self.u / (self.kB * temperature) - self.log_den

    def log_partition(self, temperatures) -> np.ndarray:
        """ln Z(T) − ln Z(T_1) (configurational) at each temperature."""
        return np.array([logsumexp(self._log_weights(t)) for t in np.atleast_1d(temperatures)])

    def moments(self, temperatures) -> tuple[np.ndarray, np.ndarray]:
        """⟨U⟩(T) and Var U(T) at each temperature."""
        means, variances = [], []
        for t in np.atleast_1d(temperatures):
            lw = self._log_weights(t)
            w = np.exp(lw - logsumexp(lw))
            mean = float(np.sum(w * self.u))
            means.append(mean)
            variances.append(float(np.sum(w * (self.u - mean) ** 2)))
        return np.array(means), np.array(variances)

    def heat_capacity(self, temperatures) -> np.ndarray:
        """Configurational C_V / k_B = Var U / (k_B T)² at each temperature."""
        t = np.atleast_1d(np.asarray(temperatures, float))
        return self.moments(t)[1] / (self.kB * t) ** 2
