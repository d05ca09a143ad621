"""Preconditioning HMC with a diagonal mass matrix (one mass per degree of freedom).

With H = ½ pᵀM⁻¹p + U(x), a degree of freedom of curvature k_i oscillates at ω_i = √(k_i / m_i); the
stable step is set by the largest ω and the decorrelation time by the smallest. Masses m_i ∝ k_i
equalise the frequencies (Neal 2011, §4.1; the "mass matrix" of Stan/NUTS). Three sources:

* species masses (physical dynamics; the default of :class:`~hmc_core.hmc.HMCSampler`);
* a diagonal Hessian estimate at a structure (central differences of forces, exact per degree of
  freedom or Hutchinson's stochastic estimate diag H ≈ E[v ⊙ Hv] with random ±1 vectors v);
* sample variances during warm-up: m_i = k_B T / Var(x_i) (exact for a harmonic well), regularised
  towards the mean as in Stan: Var ← n/(n+5) Var + 1e-3 · 5/(n+5).

Masses may only change during warm-up; a production chain keeps them fixed so detailed balance
holds. Units: masses amu ("metal") or reduced; Hessian energy/length²; positions length.
"""

from __future__ import annotations

import numpy as np

from hmc_core.hmc import HMCSampler, HMCState, default_masses, expand_inverse_mass
from hmc_core.integrators import ForceFn


def masses_from_species(species, units: str = "metal") -> np.ndarray:
    """(N, 3) masses from the species: atomic masses in amu ("metal") or 1 ("lj")."""
    m = default_masses(np.asarray(species), units)
    return np.repeat(np.asarray(m, float)[:, None], 3, axis=1)


def diagonal_hessian(force_fn: ForceFn, positions, n_probes: int | None = None, delta: float = 1e-4,
                     seed: int = 0) -> np.ndarray:
    """Diagonal of the Hessian (N, 3), energy/length², at ``positions`` (N, 3).

    ``n_probes=None``: exact central differences per degree of freedom (6N force evaluations);
    otherwise Hutchinson's estimate from ``n_probes`` random ±1 vectors (2 evaluations each).
    """
    x0 = np.array(positions, dtype=np.float64)
    if delta <= 0:
        raise ValueError(f"finite-difference step must be > 0, got {delta}")

    def hv(v):
        _, fp = force_fn(x0 + delta * v)
        _, fm = force_fn(x0 - delta * v)
        return (fm - fp) / (2.0 * delta)

    if n_probes is None:
        out = np.zeros_like(x0)
        for i in range(x0.shape[0]):
            for a in range(3):
                v = np.zeros_like(x0)
                v[i, a] = 1.0
                out[i, a] = hv(v)[i, a]
        return out
    if n_probes < 1:
        raise ValueError(f"n_probes must be ≥ 1 or None, got {n_probes}")
    rng = np.random.default_rng(seed)
    acc = np.zeros_like(x0)
    for _ in range(n_probes):
        v = rng.choice([-1.0, 1.0], size=x0.shape)
        acc += v * hv(v)
    return acc / n_probes


def masses_from_hessian(hessian_diagonal, reference_masses=None, floor_fraction: float = 0.05) -> np.ndarray:
    """Masses (N, 3) ∝ curvature, so every degree of freedom has the same frequency.

    Curvatures below ``floor_fraction`` × the median positive curvature (soft or unstable directions)
    are raised to that floor. The masses are scaled so that their geometric mean equals that of
    ``reference_masses`` (default 1), which keeps dt on the same scale.
    """
    h = np.asarray(hessian_diagonal, dtype=np.float64)
    positive = h[h > 0]
    if positive.size == 0:
        raise ValueError("the Hessian diagonal has no positive entry; start from a (near-)minimum structure")
    k = np.maximum(h, floor_fraction * float(np.median(positive)))
    ref = np.ones_like(k) if reference_masses is None else np.broadcast_to(
        np.asarray(reference_masses, float).reshape(-1, 1) if np.ndim(reference_masses) == 1
        else np.asarray(reference_masses, float), k.shape)
    return k * np.exp(np.mean(np.log(ref)) - np.mean(np.log(k)))


def masses_from_variance(samples, kT: float, remove_com: bool = False) -> np.ndarray:
    """Masses (N, 3) = k_B T / Var(x) from warm-up positions (S, N, 3); regularised towards the mean variance.

    ``remove_com``: subtract each sample's centre of mass first (free clusters, whose centre diffuses).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[0] < 3:
        raise ValueError(f"samples must be (S ≥ 3, N, 3) positions, got shape {x.shape}")
    if remove_com:
        x = x - x.mean(axis=1, keepdims=True)
    n = x.shape[0]
    var = x.var(axis=0, ddof=1)
    var = n / (n + 5.0) * var + 5.0 / (n + 5.0) * 1e-3 * float(var.mean())
    return kT / var


def set_masses(sampler: HMCSampler, masses) -> None:
    """Give a sampler new masses (N,) or (N, 3): warm-up only (production chains keep theirs)."""
    sampler.inv_mass = expand_inverse_mass(masses, sampler.ff.n_atoms)
    sampler.mass = 1.0 / sampler.inv_mass


def adapt_masses(sampler: HMCSampler, state: HMCState, n_trajectories: int, remove_com: bool = False) -> np.ndarray:
    """Run ``n_trajectories`` warm-up trajectories, then set masses from the sample variances; returns them.

    Re-run the step-size warm-up afterwards (:meth:`HMCSampler.warmup`) since the best dt changes.
    """
    if n_trajectories < 3:
        raise ValueError(f"need ≥ 3 warm-up trajectories to estimate variances, got {n_trajectories}")
    samples = []
    for _ in range(n_trajectories):
        sampler.step(state)
        samples.append(state.positions.copy())
    masses = masses_from_variance(np.array(samples), sampler.config.kT, remove_com)
    set_masses(sampler, masses)
    return masses
