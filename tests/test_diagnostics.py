"""τ and ESS against the exact AR(1) value and against ArviZ (reference implementation)."""

import numpy as np
import pytest
from conftest import require_module

from hmc_core.diagnostics import autocorrelation, effective_sample_size, integrated_autocorrelation_time


def _ar1(phi, n, m=1, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((m, n))
    e = rng.standard_normal((m, n))
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_tau_of_ar1_matches_the_exact_value(phi):
    """AR(1): ρ_t = φ^t, so τ = (1 + φ) / (1 − φ) exactly."""
    tau = integrated_autocorrelation_time(_ar1(phi, 40_000, seed=1))
    assert abs(tau / ((1 + phi) / (1 - phi)) - 1) < 0.1


@pytest.mark.parametrize("m", [1, 4])
def test_ess_matches_arviz(m):
    az = require_module("arviz")
    x = _ar1(0.8, 5000, m=m, seed=2)
    ours = effective_sample_size(x, split=True)
    theirs = float(az.ess(x, method="mean"))
    assert abs(ours / theirs - 1) < 1e-6, (ours, theirs)


def test_autocorrelation_starts_at_one_and_decays():
    rho = autocorrelation(_ar1(0.5, 20_000, seed=3))
    assert rho[0] == 1.0
    assert abs(rho[1] - 0.5) < 0.03 and abs(rho[2] - 0.25) < 0.03


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="NaN"):
        effective_sample_size([1.0, np.nan, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="at least 4 draws"):
        effective_sample_size([1.0, 2.0])
