"""Lennard-Jones: lattice sums, finite differences, tail corrections, mixtures, bad input."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLJ
from conftest import fcc_lattice
from scipy.integrate import quad

from hmc_core.potentials import ForceField, LennardJones, PotentialError, check_potential


def _fcc_lattice_sum(a: float, rc: float) -> float:
    """½ Σ_R u(|R|) over FCC lattice vectors with |R| < rc (independent of the neighbour list)."""
    n = int(np.ceil(rc / a)) + 1
    r = np.arange(-n, n + 1)
    cells = np.array(np.meshgrid(r, r, r, indexing="ij")).reshape(3, -1).T
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pts = (cells[:, None, :] + basis[None]).reshape(-1, 3) * a
    d = np.linalg.norm(pts, axis=1)
    d = d[(d > 0) & (d < rc)]
    return 0.5 * np.sum(4 * (d**-12 - d**-6))


@pytest.mark.parametrize("density", [0.8442, 1.0, 1.09])
def test_fcc_lattice_energy(density):
    pos, cell = fcc_lattice(5, density)
    lj = LennardJones(cutoff_sigma=2.5)
    e, f = ForceField(lj, np.ones(len(pos), int), cell, (1, 1, 1)).energy_forces(pos.copy())
    a = (4 / density) ** (1 / 3)
    assert e / len(pos) == pytest.approx(_fcc_lattice_sum(a, 2.5), rel=1e-8, abs=1e-10)
    assert np.abs(f).max() < 1e-10


def test_fcc_minimum_matches_published_lattice_sums():
    # Lattice sums A12 = 12.13188, A6 = 14.45392 (Kittel; Lennard-Jones & Ingham 1925):
    # E/N = 2 ε [A12 (σ/r)¹² − A6 (σ/r)⁶], minimum −8.6102 ε at r_nn = 1.0902 σ.
    r_nn = (2 * 12.13188 / 14.45392) ** (1 / 6)
    density = np.sqrt(2) / r_nn**3
    pos, cell = fcc_lattice(3, density)
    lj = LennardJones(cutoff_sigma=8.0)  # longer than the box: many periodic images
    e, _ = ForceField(lj, np.ones(len(pos), int), cell, (1, 1, 1)).energy_forces(pos.copy())
    # the 8 σ truncation misses a tail of about 2π ρ 4 (8⁻⁹/9 − 8⁻³/3) ≈ −0.018 ε; add it back
    tail = 2 * np.pi * density * 4 * (8.0**-9 / 9 - 8.0**-3 / 3)
    assert e / len(pos) + tail == pytest.approx(-8.6102, abs=5e-4)


def test_forces_and_virial_by_finite_differences():
    rng = np.random.default_rng(1)
    pos, cell = fcc_lattice(2, 0.9)
    pos += rng.normal(scale=0.05, size=pos.shape)
    species = np.where(np.arange(len(pos)) % 3 == 0, 1, 2)
    lj = LennardJones(species=[1, 2], epsilon={1: 1.0, 2: 0.6}, sigma={1: 1.0, 2: 0.9},
                      cutoff_sigma=2.0, shift=True)
    out = check_potential(lj, pos, species, cell, (1, 1, 1), delta=1e-6)
    assert out["force_error"] < 1e-5 and out["virial_error"] < 1e-4 and out["net_force"] < 1e-10


def test_open_cluster_matches_ase():
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 4, size=(20, 3))
    pos = pos[np.all(np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 10 * np.eye(20) > 0.9, axis=1)]
    lj = LennardJones(cutoff_sigma=3.0, shift=True)
    e, f = ForceField(lj, np.ones(len(pos), int)).energy_forces(pos.copy())
    atoms = Atoms(f"Ar{len(pos)}", positions=pos)
    atoms.calc = AseLJ(sigma=1.0, epsilon=1.0, rc=3.0, smooth=False)
    assert e == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-10)


def test_tail_correction_matches_numerical_integral():
    lj = LennardJones(species=[1, 2], epsilon={1: 1.0, 2: 0.5}, sigma={1: 1.0, 2: 1.2}, cutoff_sigma=2.5,
                      tail=True)
    types = np.array([0] * 30 + [1] * 10)
    volume = 50.0
    e_tail, pv_tail = lj.tail_energy_virial(types, volume)
    counts = [30, 10]
    e_ref, pv_ref = 0.0, 0.0
    for a in range(2):
        for b in range(2):
            eps, sig, rc = lj.eps[a, b], lj.sig[a, b], lj.rc[a, b]
            e_int = quad(lambda r, e=eps, s=sig: 4 * e * ((s / r) ** 12 - (s / r) ** 6) * r * r, rc, np.inf)[0]
            w_int = quad(lambda r, e=eps, s=sig: 4 * e * (-12 * s**12 / r**13 + 6 * s**6 / r**7) * r**3,
                         rc, np.inf)[0]
            e_ref += 2 * np.pi / volume * counts[a] * counts[b] * e_int
            pv_ref += -2 * np.pi / (3 * volume) * counts[a] * counts[b] * w_int
    assert e_tail == pytest.approx(e_ref, rel=1e-8)
    assert pv_tail == pytest.approx(pv_ref, rel=1e-8)


def test_rare_gas_parameters_in_ev():
    ar = LennardJones.rare_gas("Ar")
    assert ar.eps[0, 0] == pytest.approx(119.8 * 8.617333262e-5)
    assert ar.sig[0, 0] == 3.405 and ar.units == "metal"
    with pytest.raises(PotentialError, match="built in"):
        LennardJones.rare_gas("Og")


def test_unknown_species_is_a_clear_error():
    lj = LennardJones(species=[18], units="metal")
    with pytest.raises(PotentialError, match=r"species \[36\] not covered"):
        ForceField(lj, [18, 36])
    with pytest.raises(PotentialError, match="no Lennard-Jones parameter"):
        LennardJones(species=[1, 2], epsilon={1: 1.0}, sigma=1.0)


def test_overlapping_atoms_give_non_finite_energy_not_crash():
    lj = LennardJones()
    e, _ = ForceField(lj, [1, 1]).energy_forces(np.zeros((2, 3)))
    assert not np.isfinite(e)
