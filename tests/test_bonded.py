"""Harmonic bonded terms (MTS inner part) and the butane torsion benchmark's dihedral classifier."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from conftest import require_module

from hmc_core.mts import split_forcefield
from hmc_core.potentials import ForceField, PotentialError, check_potential
from hmc_core.potentials.bonded import HarmonicBonded, angle_values, bond_lengths, bonded_topology, fit_harmonic_bonded
from hmc_core.potentials.combined import SumPotential

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _butane_with_dihedral(phi_deg: float):
    atoms = molecule("trans-butane")
    atoms.set_dihedral(0, 1, 2, 3, phi_deg % 360.0, indices=[2, 3, 5, 8, 9, 12, 13])
    return atoms


def test_butane_topology_and_harmonic_forces_match_finite_differences():
    atoms = molecule("trans-butane")
    bonds, angles = bonded_topology(atoms.numbers, atoms.positions)
    assert len(bonds) == 13 and len(angles) == 24  # 3 C–C + 10 C–H; 6 angles at each of the 4 carbons
    rng = np.random.default_rng(0)
    r0, _ = bond_lengths(atoms.positions, bonds)
    t0, _, _ = angle_values(atoms.positions, angles)
    pot = HarmonicBonded(bonds, r0, rng.uniform(10, 30, len(bonds)), angles, t0, rng.uniform(2, 5, len(angles)))
    x = atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape)
    report = check_potential(pot, x, atoms.numbers)
    assert report["force_error"] < 1e-6 and abs(report["net_force"]) < 1e-10
    assert report["energy"] > 0
    assert ForceField(pot, atoms.numbers)(atoms.positions.copy())[0] == pytest.approx(0.0, abs=1e-20)


def test_fit_recovers_a_diatomic_force_constant_and_rejects_bad_input():
    ref = HarmonicBonded([[0, 1]], [0.74], [37.5])
    ff = ForceField(ref, [1, 1])
    fitted, calls = fit_harmonic_bonded(ff, np.array([[0, 0, 0], [0.74, 0, 0]], float), [1, 1])
    assert calls == 12  # 6N force evaluations for the Hessian
    assert fitted.kb[0] == pytest.approx(37.5, rel=1e-6) and fitted.r0[0] == pytest.approx(0.74)
    with pytest.raises(ValueError, match="not at a minimum"):
        fit_harmonic_bonded(ForceField(HarmonicBonded([[0, 1]], [0.74], [-5.0]), [1, 1]),
                            np.array([[0, 0, 0], [0.74, 0, 0]], float), [1, 1])
    with pytest.raises(PotentialError, match="2 bonds but 1 r0"):
        HarmonicBonded([[0, 1], [1, 2]], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no bonds"):
        fit_harmonic_bonded(ff, np.array([[0, 0, 0], [5.0, 0, 0]]), [1, 1])


@pytest.mark.parametrize(("phi", "basin", "core"), [(180.0, 0, 0), (-150.0, 0, 0), (65.0, 1, 1), (-58.0, 2, 2),
                                                    (100.0, 1, -1), (-125.0, 0, -1), (-10.0, 2, -1)])
def test_dihedral_and_basins_on_constructed_butane(phi, basin, core):
    from butane_torsion import basin as basin_of
    from butane_torsion import core_basin, dihedral

    atoms = _butane_with_dihedral(phi)
    got = dihedral(atoms.positions)
    assert abs((got - phi + 180.0) % 360.0 - 180.0) < 1e-6
    assert basin_of(got) == basin and core_basin(got, 30.0) == core


def test_transitions_need_the_core_of_another_basin():
    from butane_torsion import count_transitions

    # trans → (barrier, no core) → trans is no transition; trans → g+ core → trans → g− → trans is 4
    assert count_transitions([180, 140, 115, 140, 179], start=0) == 0
    assert count_transitions([180, 170, 100, 70, 130, 175, -60, -100, -170], start=0) == 4
    assert count_transitions([60, 95, 55], start=0) == 1  # the start (trans) counts as the first state


def test_mts_split_of_xtb_sums_to_xtb():
    require_module("tblite")
    from tblite.ase import TBLite

    from hmc_core.potentials.ase_adapter import AseCalculatorPotential

    atoms = molecule("trans-butane")
    xtb = ForceField(AseCalculatorPotential(TBLite(method="GFN2-xTB", verbosity=0)), atoms.numbers)
    inner, calls = fit_harmonic_bonded(xtb, atoms.positions, atoms.numbers, masses=atoms.get_masses())
    assert calls == 6 * len(atoms)
    outer = SumPotential([AseCalculatorPotential(TBLite(method="GFN2-xTB", verbosity=0)), inner], [1.0, -1.0])
    split = split_forcefield(inner, outer, atoms.numbers)
    x = atoms.positions + np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    # a fresh calculator for the reference: tblite's SCF restarts from its last wavefunction, which moves the
    # forces by ~1e-5 eV/Å (SCF tolerance); with the same (empty) history both paths agree to round-off
    fresh = ForceField(AseCalculatorPotential(TBLite(method="GFN2-xTB", verbosity=0)), atoms.numbers)
    e_ref, f_ref = fresh(x.copy())
    e, f = split(x.copy())
    assert abs(e - e_ref) < 1e-8
    np.testing.assert_allclose(f, f_ref, atol=1e-8)
    assert abs(xtb(x.copy())[0] - e_ref) < 1e-6  # the fitting calculator, with a history, agrees to SCF accuracy
    c_c = inner.kb[np.all(atoms.numbers[inner.bonds] == 6, axis=1)]
    c_h = inner.kb[np.any(atoms.numbers[inner.bonds] == 1, axis=1)]
    # eV/Å²: alkane stretch constants (C–C ≈ 4.5 mdyn/Å ≈ 28 eV/Å², C–H ≈ 4.9 mdyn/Å ≈ 31 eV/Å²), bends ≈ 3–4 eV/rad²
    assert 15 < c_c.mean() < 30 and 25 < c_h.mean() < 40 and 2 < inner.ktheta.mean() < 6, (c_c, c_h, inner.ktheta)
