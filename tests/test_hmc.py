"""HMC sampler: exact sampling on harmonic wells, reproducibility, robustness, adaptation."""

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.hmc import HMCConfig, HMCSampler, run_chains, samples_to_configurations
from hmc_core.potentials import ForceField, HarmonicWells, LennardJones


def _block_se(x, n_blocks=20):
    blocks = np.array_split(np.asarray(x), n_blocks)
    means = np.array([b.mean() for b in blocks])
    return means.std(ddof=1) / np.sqrt(n_blocks)


@pytest.mark.parametrize("persistence", [0.0, 0.5])
def test_harmonic_wells_sample_exact_distribution(persistence):
    n = 20
    k = np.linspace(0.5, 4.0, n)
    pot = HarmonicWells(np.zeros((n, 3)), k)
    cfg = HMCConfig(temperature=1.3, dt=0.3, n_steps=7, units="lj", jitter_steps=0.3, persistence=persistence)
    ds = run_chains(pot, np.ones(n, int), np.zeros((n, 3)), cfg, n_samples=4000, seed=3)
    kT = 1.3
    x2 = (ds.positions.values[0] ** 2).mean(axis=(0, 2))  # per atom ⟨x²⟩
    rel = x2 * k / kT
    assert np.abs(rel.mean() - 1) < 0.03, rel.mean()
    u = ds.potential_energy.values[0]
    assert abs(u.mean() - 1.5 * n * kT) < 4 * _block_se(u) + 0.01 * n
    ke = ds.kinetic_energy.values[0]
    assert abs(ke.mean() / (1.5 * n * kT) - 1) < 0.03  # equipartition of the drawn momenta


def test_reproducible_from_seed_and_chains_independent():
    pos, cell = fcc_lattice(2, 0.8)
    lj = LennardJones(cutoff_sigma=1.9, shift=True)
    cfg = HMCConfig(temperature=1.0, dt=0.005, n_steps=5, units="lj", jitter_dt=0.2)
    kw = dict(cell=cell, pbc=(1, 1, 1), temperatures=[0.8, 1.2])
    a = run_chains(lj, np.ones(len(pos), int), pos, cfg, 20, seed=7, **kw)
    b = run_chains(lj, np.ones(len(pos), int), pos, cfg, 20, seed=7, n_workers=2, **kw)
    np.testing.assert_array_equal(a.potential_energy.values, b.potential_energy.values)
    assert not np.array_equal(a.potential_energy.values[0], a.potential_energy.values[1])
    assert list(a.temperature.values) == [0.8, 1.2]
    assert a.potential_energy.attrs["units"] == "ε" and a.attrs["seed"] == 7
    conf = samples_to_configurations(a)
    assert conf.sizes["config"] == 40 and conf.attrs["schema"].startswith("pesflow.configurations")


def test_non_finite_energy_is_a_rejection():
    pos, cell = fcc_lattice(2, 0.8)
    lj = LennardJones(cutoff_sigma=1.9)
    cfg = HMCConfig(temperature=1.0, dt=5.0, n_steps=3, units="lj")  # absurd step: blows up
    ds = run_chains(lj, np.ones(len(pos), int), pos, cfg, 10, cell=cell, pbc=(1, 1, 1))
    assert ds.accepted.values.sum() == 0
    assert np.all(np.isfinite(ds.potential_energy.values))


def test_step_size_adapts_in_warmup_then_freezes():
    pos, cell = fcc_lattice(2, 0.9)
    lj = LennardJones(cutoff_sigma=1.9, shift=True)
    cfg = HMCConfig(temperature=1.0, dt=0.0005, n_steps=10, units="lj", n_warmup=150, target_accept=0.75)
    ds = run_chains(lj, np.ones(len(pos), int), pos, cfg, 200, cell=cell, pbc=(1, 1, 1), seed=1)
    dt = ds.dt.values[0]
    assert np.all(dt == dt[0]) and dt[0] > 0.002  # grown from the tiny start, then constant
    assert 0.55 < ds.acceptance_rate.values[0] < 0.95


def test_monitor_stops_chain():
    pot = HarmonicWells(np.zeros((3, 3)), 1.0)
    cfg = HMCConfig(temperature=1.0, dt=0.2, n_steps=5, units="lj")
    ds = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 500,
                    monitor=lambda x: float(np.abs(x).max()), stop_above=1.5)
    assert ds.stopped_early.values[0] == 1
    last = int(ds.frame_sample.values[0].max())
    assert last < 499 and ds.monitor.values[0, last] > 1.5


def test_bad_config_is_clear():
    with pytest.raises(ValueError, match="dt"):
        HMCConfig(temperature=1.0, dt=-1.0)
    with pytest.raises(ValueError, match="unknown integrator"):
        HMCConfig(temperature=1.0, dt=1.0, integrator="rk4")
    with pytest.raises(ValueError, match="unknown unit system"):
        HMCConfig(temperature=1.0, dt=1.0, units="cgs")
    ff = ForceField(HarmonicWells(np.zeros((2, 3))), [1, 1])
    with pytest.raises(ValueError, match="masses"):
        HMCSampler(ff, HMCConfig(temperature=1.0, dt=0.1, units="lj"), masses=[1.0, -1.0])
