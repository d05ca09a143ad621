"""Binless multiple-histogram reweighting against the exact harmonic answer: ln Z(T) = (d/2) ln T + c,
⟨U⟩ = d k_B T / 2 and C_V / k_B = d / 2 between and at the rungs; bad input is refused."""

import numpy as np
import pytest

from hmc_core.reweighting import MultipleHistogram


def harmonic_samples(temps, d=30, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.gamma(d / 2, t, n) for t in temps]  # U = Σ x²/2 for d coordinates at k_B T = t


def test_harmonic_partition_function_and_heat_capacity():
    d = 30
    temps = np.geomspace(0.5, 2.0, 6)
    mh = MultipleHistogram(harmonic_samples(temps, d), temps)
    assert mh.converged
    grid = np.array([0.5, 0.7, 1.1, 1.6, 2.0])
    np.testing.assert_allclose(mh.log_partition(grid), d / 2 * np.log(grid / 0.5), atol=0.05)
    mean, _ = mh.moments(grid)
    np.testing.assert_allclose(mean, d / 2 * grid, rtol=0.01)
    np.testing.assert_allclose(mh.heat_capacity(grid), d / 2, rtol=0.06)


def test_metal_units_use_kB():
    kB = 8.617333262e-5
    temps = np.array([300.0, 400.0, 500.0])
    mh = MultipleHistogram(harmonic_samples(kB * temps, 12), temps, kB=kB)
    np.testing.assert_allclose(mh.heat_capacity([350.0]), 6.0, rtol=0.08)


@pytest.mark.parametrize("energies, temps, match", [
    ([np.ones(5)], [1.0, 2.0], "one energy array per temperature"),
    ([np.array([1.0])], [1.0], "at least 2"),
    ([np.array([1.0, np.nan])], [1.0], "finite"),
    ([np.ones(3)], [-1.0], "positive"),
])
def test_bad_input_is_refused(energies, temps, match):
    with pytest.raises(ValueError, match=match):
        MultipleHistogram(energies, temps)
