"""Validation against the NIST SRSW Lennard-Jones NVT Monte Carlo data (../shared/data).

Cutoff 3σ, truncated (not shifted), with analytic tail corrections, as NIST used. The fast test runs
one state point briefly with a generous tolerance; the slow ones (``make test-slow``) run six state
points at N = 500 and require agreement within 3 combined standard errors.
"""

import csv

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.hmc import HMCConfig, run_chains
from hmc_core.potentials import LennardJones


def _nist(shared_data):
    rows = list(csv.DictReader(open(shared_data / "lj_nist_srsw.csv")))
    return {(float(r["T"]), float(r["rho"])): (float(r["U_per_N"]), float(r["U_err"] or "nan")) for r in rows}


def _block_se(x, n_blocks=20):
    means = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return means.std(ddof=1) / np.sqrt(n_blocks)


def _run(temperature, density, n_cells, n_samples, seed):
    pos, cell = fcc_lattice(n_cells, density)
    lj = LennardJones(cutoff_sigma=3.0, tail=True)
    cfg = HMCConfig(temperature=temperature, dt=0.005, n_steps=10, units="lj", n_warmup=300,
                    target_accept=0.8, jitter_steps=0.2, save_every=10_000)
    ds = run_chains(lj, np.ones(len(pos), int), pos, cfg, n_samples, cell=cell, pbc=(1, 1, 1), seed=seed)
    u = ds.potential_energy.values[0] / len(pos)
    u = u[len(u) // 5:]  # melt the lattice: discard the first fifth
    return u.mean(), _block_se(u)


def test_nist_short(shared_data):
    ref, ref_err = _nist(shared_data)[(0.9, 0.776)]
    mean, se = _run(0.9, 0.776, 4, 1500, seed=11)
    assert abs(mean - ref) < 5 * np.hypot(se, ref_err) + 0.01, (mean, se, ref)


@pytest.mark.slow
@pytest.mark.parametrize("temperature,density", [(0.85, 0.776), (0.85, 0.82), (0.85, 0.86),
                                                 (0.9, 0.776), (0.9, 0.82), (0.9, 0.86)])
def test_nist_mean_energy(shared_data, temperature, density):
    ref, ref_err = _nist(shared_data)[(temperature, density)]
    # N = 500 (5³ FCC cells hold 500 atoms)
    mean, se = _run(temperature, density, 5, 12000, seed=int(1000 * temperature + 100 * density))
    assert abs(mean - ref) < 3 * np.hypot(se, ref_err), (mean, se, ref, ref_err)
