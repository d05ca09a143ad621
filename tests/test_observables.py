"""Observables: radial distribution function and virial pressure."""

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.observables import kinetic_temperature, radial_distribution, virial_pressure
from hmc_core.potentials import ForceField, LennardJones


def test_rdf_of_ideal_gas_is_one_and_fcc_peaks_at_nearest_neighbour():
    rng = np.random.default_rng(0)
    box = np.eye(3) * 10.0
    frames = rng.uniform(0, 10, size=(20, 400, 3))
    r, g = radial_distribution(frames, box, r_max=4.0, n_bins=20)
    assert np.abs(g[5:] - 1).max() < 0.1
    pos, cell = fcc_lattice(4, 1.0)
    r, g = radial_distribution(pos, cell, r_max=1.5, n_bins=150)
    r_nn = (4 / 1.0) ** (1 / 3) / np.sqrt(2)
    assert abs(r[np.argmax(g)] - r_nn) < 0.011
    # 12 nearest neighbours: ∫ 4π r² ρ g dr over the first peak
    first = r < 0.5 * (r_nn + (4 / 1.0) ** (1 / 3))
    assert np.sum(4 * np.pi * r[first] ** 2 * g[first] * (r[1] - r[0])) * 1.0 == pytest.approx(12, abs=0.2)


def test_virial_pressure_equals_minus_dE_dV():
    rng = np.random.default_rng(1)
    pos, cell = fcc_lattice(3, 0.8)
    pos += rng.normal(scale=0.05, size=pos.shape)
    lj = LennardJones(cutoff_sigma=2.5, shift=True)
    ff = ForceField(lj, np.ones(len(pos), int), cell, (1, 1, 1), skin=0.0)
    ff.energy_forces(pos.copy())
    volume = np.linalg.det(cell)
    p_conf = virial_pressure(len(pos), 0.0, ff.virial, volume)
    h = 1e-6
    energies = []
    for s in (1 + h, 1 - h):
        scale = s ** (1 / 3)
        e, _ = ForceField(lj, np.ones(len(pos), int), cell * scale, (1, 1, 1), skin=0.0).energy_forces(pos * scale)
        energies.append(e)
    dE_dV = (energies[0] - energies[1]) / (2 * h * volume)
    assert p_conf == pytest.approx(-dE_dV, rel=1e-6)


def test_kinetic_temperature():
    rng = np.random.default_rng(2)
    p = rng.normal(scale=np.sqrt(2.0), size=(5000, 3))
    assert kinetic_temperature(p, np.ones_like(p), 1.0) == pytest.approx(2.0, rel=0.03)
