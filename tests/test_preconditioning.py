"""Preconditioned HMC: masses from a Hessian or from sample variances; still exact on harmonic wells."""

import numpy as np
import pytest

from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
from hmc_core.potentials import ForceField, LennardJones
from hmc_core.potentials.harmonic import HarmonicWells
from hmc_core.preconditioning import (
    adapt_masses,
    diagonal_hessian,
    masses_from_hessian,
    masses_from_species,
    masses_from_variance,
    set_masses,
)

N = 6
CENTERS = 4.0 * np.column_stack([np.arange(N), np.zeros(N), np.zeros(N)])
STIFF = np.geomspace(0.5, 200.0, 3 * N).reshape(N, 3)  # curvatures spanning 400×


def _harmonic():
    return ForceField(HarmonicWells(CENTERS, STIFF), np.ones(N, int), skin=30.0)


def test_diagonal_hessian_exact_and_stochastic():
    ff = _harmonic()
    np.testing.assert_allclose(diagonal_hessian(ff, CENTERS + 0.1), STIFF, rtol=1e-6)
    np.testing.assert_allclose(diagonal_hessian(ff, CENTERS + 0.1, n_probes=3), STIFF, rtol=1e-6)  # H diagonal
    rng = np.random.default_rng(0)
    x = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [0, 0, 1.1], [1.1, 1.1, 0.1]]) + rng.normal(0, 0.02, (5, 3))
    lj = ForceField(LennardJones(cutoff_sigma=10.0), np.ones(5, int))
    exact = diagonal_hessian(lj, x)
    estimate = diagonal_hessian(lj, x, n_probes=400)
    assert np.abs(estimate - exact).mean() < 0.2 * np.abs(exact).mean()


def test_preconditioned_hmc_samples_the_exact_distribution():
    """m ∝ k: all frequencies equal; ⟨(x − c)²⟩ = k_B T / k per degree of freedom (exact)."""
    masses = masses_from_hessian(diagonal_hessian(_harmonic(), CENTERS))
    cfg = HMCConfig(temperature=0.8, dt=0.3, n_steps=4, units="lj", jitter_dt=0.3)
    result = run_chain(HMCSampler(_harmonic(), cfg, masses=masses), CENTERS, 2500, seed=2)
    assert result.accepted.mean() > 0.6  # with unit masses this dt is unstable (ω_max·dt ≈ 4.2 > 2)
    u = result.potential_energy[200:]
    assert abs(u.mean() / (1.5 * N * 0.8) - 1) < 0.05  # ⟨U⟩ = 3N k_B T / 2 (equipartition)
    ratio = ((result.frames[200:] - CENTERS) ** 2).mean(axis=0) * STIFF / 0.8  # = 1 per degree of freedom
    assert abs(ratio.mean() - 1) < 0.05 and np.all(np.abs(ratio - 1) < 0.25), ratio
    unit = run_chain(HMCSampler(_harmonic(), cfg), CENTERS, 50, seed=2)
    assert unit.accepted.mean() < 0.1


def test_variance_adaptation_recovers_curvature_masses():
    cfg = HMCConfig(temperature=1.0, dt=0.05, n_steps=10, units="lj")
    sampler = HMCSampler(_harmonic(), cfg)
    state = sampler.init(CENTERS, seed=3)
    masses = adapt_masses(sampler, state, 600)
    ratio = masses / STIFF  # m = k_B T / Var(x) = k
    assert np.median(np.abs(ratio - 1)) < 0.25
    np.testing.assert_allclose(sampler.inv_mass, 1.0 / masses)


def test_species_masses_and_bad_input():
    np.testing.assert_allclose(masses_from_species([1, 8], "metal")[:, 0], [1.008, 15.999], rtol=1e-3)
    with pytest.raises(ValueError, match="positive entry"):
        masses_from_hessian(-np.ones((2, 3)))
    with pytest.raises(ValueError, match="samples must be"):
        masses_from_variance(np.zeros((2, 3)), 1.0)
    sampler = HMCSampler(_harmonic(), HMCConfig(1.0, 0.1, units="lj"))
    with pytest.raises(ValueError, match="positive"):
        set_masses(sampler, -np.ones(N))
