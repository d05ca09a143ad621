"""The conformance check (:func:`hmc_core.potentials.check_potential`) accepts correct potentials and
rejects ones whose forces or virial are wrong by 5e-4 relative — the size of error the former tolerance
(1e-3·max|F|) let through — with a :class:`PotentialError` that says what, how much and where."""

import numpy as np
import pytest
from ase.build import bulk
from conftest import fcc_lattice

from hmc_core.mtp import read_mtp
from hmc_core.potentials import LennardJones, PotentialError, check_potential
from hmc_core.potentials.base import Potential


class Scaled(Potential):
    """A wrapped potential whose forces (or virial) are multiplied by ``factor``: a deliberately wrong model."""

    def __init__(self, inner: Potential, force_factor: float = 1.0, virial_factor: float = 1.0):
        self.inner = inner
        self.cutoff = inner.cutoff
        self.full_neighbor_list = inner.full_neighbor_list
        self.units = inner.units
        self.force_factor, self.virial_factor = force_factor, virial_factor

    def prepare(self, species):
        return self.inner.prepare(species)

    def compute(self, positions, cell, types, nlist):
        e, f, w = self.inner.compute(positions, cell, types, nlist)
        return e, f * self.force_factor, w * self.virial_factor


def lj_crystal():
    pos, cell = fcc_lattice(2, 0.9)
    pos = pos + np.random.default_rng(3).normal(scale=0.05, size=pos.shape)
    return LennardJones(cutoff_sigma=2.0, shift=True), pos, np.ones(len(pos), int), cell


def test_lennard_jones_passes_with_fd_error_far_below_the_tolerance():
    lj, pos, species, cell = lj_crystal()
    out = check_potential(lj, pos, species, cell, (1, 1, 1))
    # Richardson-extrapolated differences at δ = 1e-5 σ: the deviation is round-off (~ε_mach |E| / δ with
    # |E| ≈ 150 ε), ~1e-8, against the 5e-4 × max|F| ≈ 5e-3 ε/σ of a force scaled by 1.0005
    assert out["force_error"] < 1e-7 and out["virial_error"] < 1e-6
    out = check_potential(lj, pos[:12], species[:12])  # open cluster
    assert out["force_error"] < 1e-7 and "virial_error" not in out


@pytest.mark.parametrize("factor", [1.0005, 0.9995])
def test_forces_wrong_by_5e_4_fail(factor):
    lj, pos, species, cell = lj_crystal()
    with pytest.raises(PotentialError, match=r"Scaled: forces are not −∇E: largest deviation .* at atom \d+, "
                                             r"component [xyz].*ratio " + f"{factor:.6g}"):
        check_potential(Scaled(lj, force_factor=factor), pos, species, cell, (1, 1, 1))
    with pytest.raises(PotentialError, match="forces are not"):
        check_potential(Scaled(lj, force_factor=factor), pos[:12], species[:12])


@pytest.mark.parametrize("factor", [1.0005, 0.9995])
def test_virial_wrong_by_5e_4_fails(factor):
    lj, pos, species, cell = lj_crystal()
    with pytest.raises(PotentialError, match=r"virial is not −∂E/∂ε: largest deviation .* in component [xyz]{2}"):
        check_potential(Scaled(lj, virial_factor=factor), pos, species, cell, (1, 1, 1))


def test_nan_energy_is_a_clear_error():
    lj, pos, species, cell = lj_crystal()
    pos[1] = pos[0]  # two atoms on top of each other
    with pytest.raises(PotentialError):
        check_potential(lj, pos, species, cell, (1, 1, 1))


def test_mtp_passes_and_a_scaled_mtp_fails(shared_data):
    """A trained MLIP level-16 MTP for Mo (shared/data/mtp, Apache-2.0; see its README) on a rattled bcc cell."""
    mtp = read_mtp(shared_data / "mtp" / "cubic_level16.mtp", species=[42])
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=2)
    args = (atoms.positions, atoms.numbers, atoms.cell[:], (True, True, True))
    out = check_potential(mtp, *args)
    assert out["force_error"] < 1e-7 and out["virial_error"] < 1e-6
    for factor in (1.0005, 0.9995):
        with pytest.raises(PotentialError, match="forces are not"):
            check_potential(Scaled(mtp, force_factor=factor), *args)
