"""Unadjusted samplers: BAOAB Langevin is exact on harmonic wells; unadjusted HMC runs without rejections."""

import numpy as np
import pytest

from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
from hmc_core.potentials import ForceField
from hmc_core.potentials.harmonic import HarmonicWells
from hmc_core.unadjusted import LangevinConfig, run_langevin

N = 8
CENTERS = 4.0 * np.column_stack([np.arange(N), np.zeros(N), np.zeros(N)])


def _harmonic():
    return ForceField(HarmonicWells(CENTERS, 4.0), np.ones(N, int), skin=30.0)


def test_baoab_configurational_sampling_is_exact_for_harmonic_wells_at_large_dt():
    """Leimkuhler & Matthews (2013): BAOAB samples x exactly for harmonic U at any stable dt.

    ω = 2, dt = 0.5 (ω dt = 1): ⟨U⟩ = 3N k_B T / 2 while velocity-Verlet MD would be off by ~(ω dt)²/4.
    """
    cfg = LangevinConfig(temperature=0.7, dt=0.5, friction=1.0, units="lj", record_every=2)
    result = run_langevin(_harmonic(), CENTERS, cfg, 20_000, seed=1)
    u = result.potential_energy[100:]
    assert abs(u.mean() / (1.5 * N * 0.7) - 1) < 0.03
    assert result.force_evaluations == 20_001


def test_unadjusted_hmc_keeps_every_trajectory():
    cfg = HMCConfig(temperature=0.7, dt=0.3, n_steps=5, units="lj", metropolis=False)
    result = run_chain(HMCSampler(_harmonic(), cfg), CENTERS, 300, seed=0)
    assert result.accepted.all()
    assert result.accept_prob.mean() < 1.0  # the Metropolis test would have rejected some


def test_bad_langevin_settings_are_clear_errors():
    with pytest.raises(ValueError, match="dt"):
        LangevinConfig(temperature=1.0, dt=0.0, units="lj")
    with pytest.raises(ValueError, match="friction"):
        LangevinConfig(temperature=1.0, dt=0.01, friction=-1.0, units="lj")
