"""Replica exchange on harmonic wells: every rung's ⟨U⟩ and every pair's swap rate vs exact values."""

import numpy as np
import pytest

from hmc_core.hmc import HMCConfig
from hmc_core.potentials import ForceField
from hmc_core.potentials.harmonic import HarmonicWells
from hmc_core.replica_exchange import (
    ReplicaExchange,
    geometric_ladder,
    ladder_for_swap_rate,
    predicted_swap_rate,
    swap_acceptance,
    validate_ladder,
)

N_ATOMS = 4
D = 3 * N_ATOMS  # degrees of freedom: U ~ Gamma(D/2, scale k_B T), ⟨U⟩ = D k_B T / 2
CENTERS = 3.0 * np.column_stack([np.arange(N_ATOMS), np.zeros(N_ATOMS), np.zeros(N_ATOMS)])


def _forcefield():
    return ForceField(HarmonicWells(CENTERS, 1.0), np.ones(N_ATOMS, int), skin=30.0)  # never rebuilt


def _exact_swap_rate(t1, t2, n=2_000_000, seed=0):
    """E[min(1, exp((β1−β2)(U1−U2)))] with U_i ~ Gamma(D/2, T_i) exactly; Monte Carlo error ≈ 3e-4."""
    rng = np.random.default_rng(seed)
    return float(swap_acceptance(1 / t1, 1 / t2, rng.gamma(D / 2, t1, n), rng.gamma(D / 2, t2, n)).mean())


def test_each_rung_samples_its_temperature_and_swap_rates_match_exact_values():
    ladder = np.array([0.5, 0.7, 1.0, 1.4])
    cfg = HMCConfig(temperature=1.0, dt=1.0, n_steps=3, units="lj", jitter_dt=0.3)
    rex = ReplicaExchange(_forcefield, cfg, ladder)
    result = rex.run(CENTERS, 3000, seed=4)
    u = result.potential_energy[300:]
    np.testing.assert_allclose(u.mean(axis=0), D * ladder / 2, rtol=0.06)
    for k in range(len(ladder) - 1):
        exact = _exact_swap_rate(ladder[k], ladder[k + 1])
        assert abs(result.swap_rates[k] - exact) < 0.05, (k, result.swap_rates[k], exact)
    assert result.swap_attempts.sum() == 3000 * 3 // 2
    assert len(result.round_trip_times) > 5 and np.all(result.round_trip_times >= 2 * (len(ladder) - 1))
    # each walker label appears once per sweep
    assert np.all(np.sort(result.walker_at, axis=1) == np.arange(len(ladder)))


def test_gaussian_swap_formula_and_automatic_ladder_on_the_harmonic_model():
    """Harmonic: μ = D T / 2, σ² = D T² / 2; the predicted rate is close to the exact Gamma one."""
    exact = _exact_swap_rate(1.0, 1.3)
    predicted = predicted_swap_rate(1.0, 1 / 1.3, D / 2, D / 2, D * 1.3 / 2, D * 1.3**2 / 2)
    assert abs(predicted - exact) < 0.02
    ladder = ladder_for_swap_rate(0.5, 2.0, 0.4, lambda t: D * t / 2, lambda t: D * t * t / 2)
    ratios = ladder[1:-1] / ladder[:-2]  # constant heat capacity → geometric
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    for t1, t2 in zip(ladder[:-2], ladder[1:-1], strict=True):
        assert abs(_exact_swap_rate(t1, t2, 400_000) - 0.4) < 0.03
    assert ladder[0] == 0.5 and ladder[-1] == 2.0


def test_bad_ladders_are_clear_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        validate_ladder([1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        validate_ladder([1.0])
    with pytest.raises(ValueError, match="positive"):
        validate_ladder([-1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        geometric_ladder(1.0, 2.0, 1)
    with pytest.raises(ValueError, match="strictly increasing"):
        ReplicaExchange(_forcefield, HMCConfig(1.0, 0.1, units="lj"), [1.0, 1.0])
    with pytest.raises(ValueError, match="dt"):
        HMCConfig(1.0, 0.0, units="lj")
    with pytest.raises(ValueError, match="target swap rate"):
        ladder_for_swap_rate(0.5, 2.0, 1.5, lambda t: t, lambda t: t)
