"""Field faults of the label stage, fixed by kind (issue 15 §6): basis sets that need an effective core
potential, GTH (periodic-only) bases on open boundaries, SCF solutions that are saddles, the SCF ladder for
open shells.

References: "PySCF called directly" = the same method built by hand with ``pyscf.gto.M`` (Å input, ``ecp=``
set explicitly, conv_tol 1e-11 Ha); energies agree within 1e-6 Ha (2.7e-5 eV), forces within 1e-4 eV/Å
(the adapter converges to conv_tol 1e-9 Ha).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from tasks.label import LabelInputError, LabelSettings, label_atoms
from tasks.label_settings import LADDER_STEPS, OPEN_SHELL_LADDER
from tasks.pyscf_adapter import (
    FORCE_EV_ANGSTROM,
    HARTREE_EV,
    REOPTIMISED,
    STABLE,
    build_system,
    ecp_elements,
    run_label,
)

E_TOL = 1e-6 * HARTREE_EV  # eV
F_TOL = 1e-4  # eV/Å
OPEN = np.zeros(3, dtype=bool)
NO_CELL = np.zeros((3, 3))
HI = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.61]])  # Å, near the HI bond length
OH = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]])  # Å, hydroxyl radical
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def direct(atom: str, basis: str, ecp=None, spin: int = 0):
    """(energy Hartree, gradient Hartree/Bohr, mf) from PySCF called by hand, HF."""
    from pyscf import gto, scf

    mol = gto.M(atom=atom, basis=basis, ecp=ecp or {}, unit="Angstrom", spin=spin, verbose=0)
    mf = (scf.RHF if spin == 0 else scf.UHF)(mol)
    mf.conv_tol = 1e-11
    energy = mf.kernel()
    return energy, mf.nuc_grad_method().kernel(), mf


# --------------------------------------------------------------------------- effective core potentials
def test_ecp_families_are_recognised():
    assert ecp_elements("lanl2dz", ["H", "C", "I"]) == {"I": "lanl2dz"}
    assert ecp_elements("def2-svp", ["H", "Br", "I"]) == {"I": "def2-svp"}  # def2: ECPs from Rb on
    assert ecp_elements("sto-3g", ["H", "I"]) == {}
    assert ecp_elements("ccecp-cc-pvdz", ["O", "I"]) == {"O": "ccecp", "I": "ccecp"}  # ECP under the family name
    assert ecp_elements("gth-szv", ["O"]) == {}


@pytest.mark.parametrize(("basis", "n_electrons"), [("lanl2dz", 8), pytest.param("def2-svp", 26,
                                                                                  marks=pytest.mark.slow)])
def test_ecp_basis_label_equals_pyscf_with_ecp(basis, n_electrons):
    """HI with HF: the label is PySCF's with the basis's own ECP on I (without it, LANL2DZ HI has 27 occupied
    orbitals for 10 functions; iodobenzene gave E = −20322 eV instead of −6563.5 eV)."""
    settings = LabelSettings(method="hf", basis=basis, density_fit=False, threads_per_worker=1)
    result = run_label(np.array([1, 53]), HI, NO_CELL, OPEN, settings)
    assert result.status == "ok", result.reason
    energy, gradient, _ = direct("H 0 0 0; I 0 0 1.61", basis, ecp={"I": basis})
    assert abs(result.energy - energy * HARTREE_EV) < E_TOL
    np.testing.assert_allclose(result.forces, -gradient * FORCE_EV_ANGSTROM, atol=F_TOL)
    system = build_system(np.array([1, 53]), HI, NO_CELL, OPEN, settings)
    # H + the electrons of I outside the ECP core: LANL2DZ 53 − 46 = 7 (large core), def2 53 − 28 = 25
    assert system.nelectron == n_electrons


def test_valence_basis_without_its_ecp_is_refused():
    """MINAO has valence-only functions for I and no ECP in PySCF: a label would be silently wrong."""
    atoms = [Atoms("HI", positions=HI)]
    with pytest.raises(LabelInputError, match=r"no effective core potential for I \(Z=53\).*too few functions"):
        label_atoms(atoms, LabelSettings(method="hf", basis="minao", density_fit=False))


# --------------------------------------------------------------------------- GTH on open boundaries
def test_gth_basis_on_a_molecule_is_refused_with_the_fix():
    """Water with gth-szv and no cell gave E = −925.9 eV (def2-svp: −2075.5 eV): refused before any SCF."""
    atoms = [Atoms("OH2", positions=WATER)]
    with pytest.raises(LabelInputError, match=r"config 0: basis 'gth-szv' is a GTH valence basis .* def2-svp .* "
                                              r"periodic cell"):
        label_atoms(atoms, LabelSettings(method="dft", basis="gth-szv"))
    # the adapter itself refuses too (a label, never a number)
    result = run_label(np.array([8, 1, 1]), WATER, NO_CELL, OPEN, LabelSettings(method="hf", basis="gth-szv"))
    assert result.status == "failed" and "GTH valence basis" in result.reason and np.isnan(result.energy)


# --------------------------------------------------------------------------- SCF stability
def test_settings_stability_and_ladder_defaults():
    closed, open_shell = LabelSettings(), LabelSettings(spin=1)
    assert not closed.checks_stability() and open_shell.checks_stability()
    assert LabelSettings(stability_check="always").checks_stability()
    assert not LabelSettings(spin=1, stability_check="never").checks_stability()
    assert closed.ladder() == LADDER_STEPS and open_shell.ladder()[0] == "newton"
    assert open_shell.ladder() == OPEN_SHELL_LADDER
    assert LabelSettings(spin=1, scf_ladder=("damping",)).ladder() == ("damping",)  # an explicit ladder is kept
    assert closed.method_key() != LabelSettings(stability_check="always").method_key()  # part of the cache key


def _excited_oh_density():
    """UHF/6-31G OH density with one beta electron promoted (HOMO−1 → LUMO): the SCF converges from it to a
    saddle 4.22 eV above the ground state (measured with PySCF 2.14)."""
    energy, gradient, mf = direct("O 0 0 0; H 0 0 0.97", "6-31g", spin=1)
    occ = mf.mo_occ.copy()
    n_beta = int(occ[1].sum())
    occ[1][n_beta - 2], occ[1][n_beta] = 0.0, 1.0
    return energy, gradient, mf.make_rdm1(mf.mo_coeff, occ)


def test_unstable_open_shell_solution_is_followed_to_the_ground_state():
    energy, gradient, dm_excited = _excited_oh_density()
    z = np.array([8, 1])
    settings = LabelSettings(method="hf", basis="6-31g", density_fit=False, spin=1, threads_per_worker=1)
    unchecked = run_label(z, OH, NO_CELL, OPEN, settings.model_copy(update={"stability_check": "never"}),
                          dm0=dm_excited)
    assert unchecked.status == "ok" and unchecked.stability == "not checked"
    assert unchecked.energy - energy * HARTREE_EV > 1.0  # the saddle the first SCF finds (4.22 eV above)
    checked = run_label(z, OH, NO_CELL, OPEN, settings, dm0=dm_excited)  # "auto": open shell → checked
    assert checked.status == "ok" and checked.stability == REOPTIMISED
    assert abs(checked.energy - energy * HARTREE_EV) < E_TOL
    np.testing.assert_allclose(checked.forces, -gradient * FORCE_EV_ANGSTROM, atol=F_TOL)
    plain = run_label(z, OH, NO_CELL, OPEN, settings)
    assert plain.stability == STABLE and abs(plain.energy - energy * HARTREE_EV) < E_TOL


def test_open_shell_ladder_starts_with_newton():
    """With one DIIS cycle allowed, the open-shell ladder's first rescue is Newton (measured cheapest)."""
    settings = LabelSettings(method="hf", basis="6-31g", density_fit=False, spin=1, max_cycle=1,
                             threads_per_worker=1)
    result = run_label(np.array([8, 1]), OH, NO_CELL, OPEN, settings)
    energy, _, _ = direct("O 0 0 0; H 0 0 0.97", "6-31g", spin=1)
    assert result.status == "ok" and result.ladder_step == "newton"
    assert abs(result.energy - energy * HARTREE_EV) < E_TOL


def test_stability_is_recorded_per_label_and_for_cache_hits(tmp_path):
    """``scf_stability`` in the labels: checked for the doublet (auto), "not checked" for closed shells."""
    from hmc_core.configurations import make_configurations
    from tasks.label import label_configurations

    doublet = LabelSettings(method="hf", basis="sto-3g", density_fit=False, spin=1, threads_per_worker=1)
    configs = make_configurations([OH], [[8, 1]])
    first = label_configurations(configs, doublet, cache_dir=tmp_path)
    again = label_configurations(configs, doublet, cache_dir=tmp_path)
    assert first["scf_stability"].values.tolist() == [STABLE] and first["cache_hit"].values.tolist() == [0]
    assert again["scf_stability"].values.tolist() == [STABLE] and again["cache_hit"].values.tolist() == [1]
    closed = label_atoms([Atoms("OH2", positions=WATER)], LabelSettings(method="hf", basis="sto-3g",
                                                                         density_fit=False, threads_per_worker=1))
    assert closed["scf_stability"].values.tolist() == ["not checked"]


# --------------------------------------------------------------------------- messages (issue 15 §4)
def test_duplicated_atom_is_named_not_blamed_on_the_spin():
    """H2O with one H written twice: 11 electrons, so the spin check would complain first; the message must
    name the duplicated atom."""
    positions = np.vstack([WATER, WATER[2]])
    with pytest.raises(LabelInputError, match=r"config 0: atoms 2 and 3 coincide \(0.000 Å apart\): a duplicated "
                                              r"atom in the structure; remove the copy"):
        label_atoms([Atoms("OH3", positions=positions)], LabelSettings(method="hf", basis="sto-3g"))


@pytest.mark.slow
def test_stability_check_runs_on_periodic_open_shells():
    """pyscf.pbc's KUHF/KUKS stability() has another signature; an H3 doublet in a 4 Å cell (PBE/gth-szv,
    300 eV cutoff) comes out "stable" with the same energy as without the check."""
    settings = LabelSettings(method="dft", functional="pbe", basis="gth-szv", spin=1, pbc_ke_cutoff=300.0,
                             threads_per_worker=1)
    args = (np.array([1, 1, 1]), np.array([[0, 0, 0], [0, 0, 0.9], [0, 0.9, 0.0]]), np.eye(3) * 4.0,
            np.ones(3, dtype=bool))
    checked = run_label(*args, settings)
    unchecked = run_label(*args, settings.model_copy(update={"stability_check": "never"}))
    assert checked.status == "ok" and checked.stability == STABLE, checked.reason
    assert abs(checked.energy - unchecked.energy) < E_TOL


@pytest.mark.slow
def test_dft_open_shell_stability_with_density_fitting():
    """OH doublet, PBE/def2-SVP with density fitting (grid level 1): the default-guess UKS solution has a tiny
    internal instability (rotation between the degenerate π orbitals; measured 2.3e-5 eV lower after following
    it, PySCF 2.14); the check follows it and never raises the energy."""
    settings = LabelSettings(method="dft", functional="pbe", basis="def2-svp", spin=1, grid_level=1,
                             threads_per_worker=1)
    checked = run_label(np.array([8, 1]), OH, NO_CELL, OPEN, settings)
    plain = run_label(np.array([8, 1]), OH, NO_CELL, OPEN, settings.model_copy(update={"stability_check": "never"}))
    assert checked.status == "ok" and checked.stability in (STABLE, REOPTIMISED), checked.reason
    assert -1e-3 < checked.energy - plain.energy <= E_TOL


def test_unknown_element_symbol_is_named_with_its_file(tmp_path):
    """An .xyz with 'Hx': the error names the symbol, the file and the fix (not only "'Hx'")."""
    from hmc_core.configurations import ConfigurationError, read_structures

    path = tmp_path / "hx.xyz"
    path.write_text("2\n\nHx 0 0 0\nH 0 0 0.74\n")
    with pytest.raises(ConfigurationError, match=r"unknown element symbol 'Hx' in .*hx.xyz: use chemical symbols"):
        read_structures(path)
