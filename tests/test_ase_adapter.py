"""ASE calculators as pesflow potentials: equal to the native Lennard-Jones; HMC runs with EMT."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones as AseLennardJones
from conftest import fcc_lattice, require_module

from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
from hmc_core.potentials import ForceField, LennardJones, PotentialError, check_potential
from hmc_core.potentials.ase_adapter import AseCalculatorPotential, ForceFieldCalculator


def test_ase_lennard_jones_equals_native_on_the_same_configurations():
    """ASE's LJ (rc = 2.5σ, energy shifted to 0 at rc) == pesflow LJ(shift=True), periodic and open."""
    rng = np.random.default_rng(0)
    pos, cell = fcc_lattice(3, 0.9)
    species = np.ones(len(pos), int)
    native = LennardJones(cutoff_sigma=2.5, shift=True)
    adapter = AseCalculatorPotential(AseLennardJones(sigma=1.0, epsilon=1.0, rc=2.5), units="lj")
    for pbc, c in (((1, 1, 1), cell), ((0, 0, 0), None)):
        for _ in range(3):
            x = pos + rng.normal(scale=0.05, size=pos.shape)
            e_n, f_n = ForceField(native, species, c, pbc)(x.copy())
            ff_a = ForceField(adapter, species, c, pbc)
            e_a, f_a = ff_a(x.copy())
            assert abs(e_a - e_n) < 1e-9 * abs(e_n)
            np.testing.assert_allclose(f_a, f_n, atol=1e-9)
            if c is not None:
                w_n = ForceField(native, species, c, pbc)
                w_n(x.copy())
                np.testing.assert_allclose(ff_a.virial, w_n.virial, atol=1e-8)


def test_hmc_samples_with_emt_and_emt_passes_the_conformance_check():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    adapter = AseCalculatorPotential(EMT())
    rattle = np.random.default_rng(1).normal(scale=0.02, size=atoms.positions.shape)
    check_potential(adapter, atoms.positions + rattle, atoms.numbers, atoms.cell.array, (1, 1, 1), delta=1e-4)
    atoms = atoms.repeat(2)
    ff = ForceField(adapter, atoms.numbers, atoms.cell.array, (1, 1, 1))
    cfg = HMCConfig(temperature=300.0, dt=4.0, n_steps=5, units="metal")
    result = run_chain(HMCSampler(ff, cfg), atoms.positions, 10, seed=0)
    assert result.accepted.mean() > 0.5 and np.all(np.isfinite(result.potential_energy))
    assert adapter.n_calls >= 50


def test_forcefield_calculator_round_trip():
    pos, _ = fcc_lattice(2, 1.0)
    ff = ForceField(LennardJones(cutoff_sigma=20.0), np.ones(len(pos), int))
    from ase import Atoms

    atoms = Atoms("H32", positions=pos)
    atoms.calc = ForceFieldCalculator(ff)
    e_ref, f_ref = ForceField(LennardJones(cutoff_sigma=20.0), np.ones(len(pos), int))(pos.copy())
    assert abs(atoms.get_potential_energy() - e_ref) < 1e-12
    np.testing.assert_allclose(atoms.get_forces(), f_ref, atol=1e-12)


def test_bad_input_is_a_clear_error():
    with pytest.raises(PotentialError, match="not an ASE calculator"):
        AseCalculatorPotential(object())
    with pytest.raises(PotentialError, match="atomic numbers"):
        ForceField(AseCalculatorPotential(EMT()), np.array([0, 29]))


def test_tblite_gfn2_if_installed():
    tblite_ase = require_module("tblite.ase")
    from ase.build import molecule

    water = molecule("H2O")
    ff = ForceField(AseCalculatorPotential(tblite_ase.TBLite(method="GFN2-xTB", verbosity=0)), water.numbers)
    energy, forces = ff(water.positions.copy())
    assert -5.2 < energy / 27.211386 < -4.9  # GFN2-xTB water ≈ −5.07 Eh (xtb reference output)
    h = 1e-4
    xp, xm = water.positions.copy(), water.positions.copy()
    xp[1, 2] += h
    xm[1, 2] -= h
    assert abs(-(ff(xp)[0] - ff(xm)[0]) / (2 * h) - forces[1, 2]) < 1e-4  # forces = −∇E
