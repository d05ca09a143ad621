"""MTP evaluation: oracle equality with motep (the reference implementation of MLIP's MTP on PyPI),
finite-difference forces and stress, invariances, and clear errors.

Reference: motep 0.2 (imw-md/motep, engine "cext" or "numpy"), evaluating the same MLIP ``.mtp``
fixtures from ``../shared/data/mtp`` on the same structures; tolerance 1e-8 relative (issue 3).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import require_module

from hmc_core.mtp import MTP, per_atom_basis, read_mtp
from hmc_core.potentials import ForceField, PotentialError, check_potential

motep_mtp = require_module("motep.io.mlip.mtp")
motep_calc = require_module("motep.calculator")

RTOL = 1e-8


def rattled_bcc(repeat=3, amplitude=0.1, seed=2) -> Atoms:
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.rattle(amplitude, seed=seed)
    return atoms


def cluster(n=13, seed=5) -> Atoms:
    """An open cluster: jittered fcc-like points at ≥ 2.2 Å spacing."""
    base = bulk("Mo", "fcc", a=3.6, cubic=True).repeat(2).positions[:n]
    rng = np.random.default_rng(seed)
    return Atoms("Mo" * n, positions=base + rng.uniform(-0.15, 0.15, base.shape), pbc=False)


def motep_results(path, atoms: Atoms, species) -> dict:
    data = motep_mtp.read_mtp(path)
    data.species = list(species)
    try:
        calc = motep_calc.MTP(data, engine="cext")
    except ImportError:
        calc = motep_calc.MTP(data, engine="numpy")
    a = atoms.copy()
    a.calc = calc
    out = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
    if a.pbc.all():
        out["stress"] = a.get_stress()
    return out


def assert_close(ours, ref, what):
    ours, ref = np.asarray(ours), np.asarray(ref)
    scale = max(np.abs(ref).max(), 1e-12)
    err = np.abs(ours - ref).max() / scale
    assert err < RTOL, f"{what}: relative difference {err:.2e} ≥ {RTOL:g}"


CASES = [  # (file, species of the potential, structure builder, atomic numbers to substitute)
    ("cubic_level10.mtp", [42], "bcc", None),
    ("cubic_level16.mtp", [42], "bcc", None),
    ("cubic_level16.mtp", [42], "cluster", None),
    ("cubic_level10.mtp", [42], "cluster", None),
    ("multi_level06.mtp", [42, 3, 1], "bcc", 3),
    ("multi_level06.mtp", [42, 3, 1], "cluster", 3),
    ("multi_level10.mtp", [42, 3, 1], "bcc", 3),
    ("multi_level10.mtp", [42, 3, 1], "cluster", 1),
]


@pytest.mark.parametrize(("name", "species", "kind", "second"), CASES)
def test_oracle_equals_motep(shared_data, name, species, kind, second):
    atoms = rattled_bcc() if kind == "bcc" else cluster()
    if second is not None:
        numbers = atoms.numbers.copy()
        numbers[::3] = second
        atoms.numbers = numbers
    path = shared_data / "mtp" / name
    ref = motep_results(path, atoms, species)
    ours = read_mtp(path, species=species).evaluate(atoms.positions, atoms.numbers, atoms.cell[:], atoms.pbc)
    assert_close(ours["energy"], ref["energy"], "energy")
    assert_close(ours["forces"], ref["forces"], "forces")
    if "stress" in ref:
        assert_close(ours["stress"], ref["stress"], "stress")
    else:
        assert np.all(np.isnan(ours["stress"]))


@pytest.mark.parametrize("name", ["cubic_level10.mtp", "multi_level06.mtp"])
def test_finite_differences_forces_and_virial(shared_data, name):
    species = [42] if name.startswith("cubic") else [42, 3, 1]
    mtp = read_mtp(shared_data / "mtp" / name, species=species)
    atoms = rattled_bcc(repeat=2)
    z = atoms.numbers.copy()
    if len(species) > 1:
        z[::2] = 3
    out = check_potential(mtp, atoms.positions, z, atoms.cell[:], (True, True, True), delta=1e-5)
    # Central differences (δ = 1e-5 Å) carry round-off ~ ε|E|/δ: tolerances scale with |E|.
    tol = 1e-6 + 1e-9 * abs(out["energy"])
    assert out["force_error"] < tol
    assert out["virial_error"] < tol
    assert out["net_force"] < 1e-10 * max(1.0, abs(out["energy"]))
    c = cluster(8)
    out = check_potential(mtp, c.positions, c.numbers, None, (False, False, False), delta=1e-5)
    assert out["force_error"] < 1e-6


def test_invariances(shared_data):
    mtp = read_mtp(shared_data / "mtp" / "cubic_level16.mtp", species=[42])
    c = cluster()
    e0 = mtp.evaluate(c.positions, c.numbers)["energy"]
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    assert abs(mtp.evaluate(c.positions @ q.T, c.numbers)["energy"] - e0) < 1e-9 * abs(e0)
    assert abs(mtp.evaluate(c.positions + [1.3, -7.0, 2.2], c.numbers)["energy"] - e0) < 1e-9 * abs(e0)
    perm = rng.permutation(len(c))
    res = mtp.evaluate(c.positions[perm], c.numbers[perm])
    assert abs(res["energy"] - e0) < 1e-9 * abs(e0)
    # Periodic: rotate cell and positions together; forces rotate with them.
    a = rattled_bcc(repeat=2)
    r0 = mtp.evaluate(a.positions, a.numbers, a.cell[:], a.pbc)
    r1 = mtp.evaluate(a.positions @ q.T, a.numbers, a.cell[:] @ q.T, a.pbc)
    assert abs(r1["energy"] - r0["energy"]) < 1e-9 * abs(r0["energy"])
    np.testing.assert_allclose(r1["forces"], r0["forces"] @ q.T, atol=1e-9)
    # Per-atom basis rows follow the atoms under permutation.
    b0 = per_atom_basis(mtp, c.positions, None, (False,) * 3, c.numbers)
    b1 = per_atom_basis(mtp, c.positions[perm], None, (False,) * 3, c.numbers[perm])
    np.testing.assert_allclose(b1, b0[perm], rtol=1e-10, atol=1e-12)


def test_site_energies_from_basis(shared_data):
    """E_i = per_atom_basis(include_species=True) · linear_coefficients, and the setter round-trips."""
    mtp = read_mtp(shared_data / "mtp" / "multi_level06.mtp", species=[42, 3, 1])
    a = rattled_bcc(repeat=2)
    z = a.numbers.copy()
    z[::4] = 1
    rows = per_atom_basis(mtp, a.positions, a.cell[:], a.pbc, z, include_species=True)
    res = mtp.evaluate(a.positions, z, a.cell[:], a.pbc)
    np.testing.assert_allclose(rows @ mtp.linear_coefficients, res["energies"], rtol=1e-12, atol=1e-9)
    other = mtp.copy()
    other.linear_coefficients = 2.0 * mtp.linear_coefficients
    assert abs(other.evaluate(a.positions, z, a.cell[:], a.pbc)["energy"] - 2 * res["energy"]) < 1e-8 * abs(
        res["energy"])
    with pytest.raises(ValueError, match="linear coefficients need"):
        other.linear_coefficients = np.zeros(3)


def test_clear_errors(shared_data):
    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[42])
    c = cluster(4)
    with pytest.raises(PotentialError, match=r"species \[3\] are not in this MTP"):
        mtp.evaluate(c.positions, [42, 42, 3, 42])
    close = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [3.0, 0.0, 0.0]])
    with pytest.raises(PotentialError, match="closer than the MTP's min_dist"):
        mtp.evaluate(close, [42, 42, 42])
    mtp.below_min_dist = "nan"
    assert np.isnan(mtp.evaluate(close, [42, 42, 42])["energy"])
    mtp.below_min_dist = "allow"
    assert np.isfinite(mtp.evaluate(close, [42, 42, 42])["energy"])
    with pytest.raises(ValueError, match="below_min_dist"):
        MTP(species=(42,), basis=mtp.basis, min_dist=0.5, max_dist=5.0, radial_basis_size=8,
            radial_coeffs=mtp.radial_coeffs, species_coeffs=[0.0], moment_coeffs=mtp.moment_coeffs,
            below_min_dist="ignore")


def test_hmc_forcefield_uses_full_list(shared_data):
    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[42])
    a = rattled_bcc(repeat=2)
    ff = ForceField(mtp, a.numbers, a.cell[:], a.pbc, skin=0.5)
    assert ff.nlist.full
    e, f = ff(a.positions.copy())
    ref = mtp.evaluate(a.positions, a.numbers, a.cell[:], a.pbc)
    assert abs(e - ref["energy"]) < 1e-10 * abs(e)
    np.testing.assert_allclose(f, ref["forces"], atol=1e-10)


def test_ase_calculator_matches_motep_and_relaxes(shared_data):
    from ase.optimize import BFGS

    from hmc_core.mtp.calculator import MTPCalculator

    path = shared_data / "mtp" / "cubic_level10.mtp"
    atoms = rattled_bcc(repeat=2)
    ref = motep_results(path, atoms, [42])
    atoms.calc = MTPCalculator(read_mtp(path, species=[42]))
    assert_close(atoms.get_potential_energy(), ref["energy"], "energy")
    assert_close(atoms.get_forces(), ref["forces"], "forces")
    assert_close(atoms.get_stress(), ref["stress"], "stress")
    c = cluster(6)
    c.calc = MTPCalculator(read_mtp(path, species=[42]))
    e0 = c.get_potential_energy()
    BFGS(c, logfile=None).run(fmax=0.05, steps=30)
    assert c.get_potential_energy() < e0
    with pytest.raises(Exception, match="stress"):
        c.get_stress()


def test_basis_matrix_over_a_dataset(shared_data):
    """basis_matrix rows: atoms config by config ("atom") or their sums ("config"); E = row · coefficients."""
    from hmc_core.configurations import from_atoms
    from hmc_core.mtp import basis_matrix

    mtp = read_mtp(shared_data / "mtp" / "multi_level06.mtp", species=[42, 3, 1])
    a = rattled_bcc(repeat=2)
    b = cluster(5)
    b.numbers = [42, 3, 42, 1, 42]
    ds = from_atoms([a, b])
    atoms_rows = basis_matrix(mtp, ds, mode="atom", include_species=True)
    config_rows = basis_matrix(mtp, ds, mode="config", include_species=True)
    assert atoms_rows.shape == (len(a) + len(b), 3 + mtp.n_basis)
    np.testing.assert_allclose(config_rows[1], atoms_rows[len(a):].sum(0))
    energies = [mtp.evaluate(s.positions, s.numbers, s.cell[:], s.pbc)["energy"] for s in (a, b)]
    np.testing.assert_allclose(config_rows @ mtp.linear_coefficients, energies, rtol=1e-10)
    assert basis_matrix(mtp, ds, mode="config").shape == (2, mtp.n_basis)
    with pytest.raises(ValueError, match="mode must be"):
        basis_matrix(mtp, ds, mode="pair")
