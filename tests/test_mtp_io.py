"""MLIP file formats: .mtp and .cfg round trips, compatibility with motep's readers, malformed files."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from conftest import require_module

from hmc_core.configurations import from_atoms, make_configurations
from hmc_core.mtp import MTPFileError, read_basis, read_cfg, read_mtp, write_cfg, write_mtp


def test_mtp_round_trip_exact(shared_data, tmp_path):
    for name, species in (("cubic_level16.mtp", [42]), ("multi_level10.mtp", [42, 3, 1])):
        mtp = read_mtp(shared_data / "mtp" / name, species=species)
        path = write_mtp(mtp, tmp_path / name)
        back = read_mtp(path)  # species come back from potential_tag
        assert back.species == mtp.species
        assert back.basis.same_as(mtp.basis)
        for key in ("radial_coeffs", "species_coeffs", "moment_coeffs"):
            assert np.array_equal(getattr(back, key), getattr(mtp, key)), key
        assert (back.scaling, back.min_dist, back.max_dist) == (mtp.scaling, mtp.min_dist, mtp.max_dist)
        a = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(2)
        a.rattle(0.05, seed=1)
        e0 = mtp.evaluate(a.positions, a.numbers, a.cell[:], a.pbc)["energy"]
        assert back.evaluate(a.positions, a.numbers, a.cell[:], a.pbc)["energy"] == e0


def test_written_mtp_is_read_by_motep(shared_data, tmp_path):
    motep_mtp = require_module("motep.io.mlip.mtp")
    mtp = read_mtp(shared_data / "mtp" / "multi_level06.mtp", species=[42, 3, 1])
    data = motep_mtp.read_mtp(write_mtp(mtp, tmp_path / "p.mtp"))
    assert np.array_equal(data.radial_coeffs, mtp.radial_coeffs)
    assert np.array_equal(data.moment_coeffs, mtp.moment_coeffs)
    assert np.array_equal(data.alpha_index_times, mtp.basis.alpha_index_times)


def test_untrained_templates(shared_data, tmp_path):
    basis = read_basis(shared_data / "mtp" / "cubic_level16_untrained.mtp")
    assert (basis.n_basic, basis.alpha_moments_count, basis.n_basis) == (130, 350, 92)  # README of the fixtures
    assert basis.level == 16
    trained = read_basis(shared_data / "mtp" / "cubic_level16.mtp")
    assert basis.same_as(trained)
    mtp = read_mtp(shared_data / "mtp" / "cubic_level16_untrained.mtp", species=[42], seed=3)
    assert np.all(mtp.moment_coeffs == 0) and np.abs(mtp.radial_coeffs).max() <= 0.1
    back = read_basis(write_mtp(mtp, tmp_path / "t.mtp", untrained=True))
    assert back.same_as(basis)


def test_cfg_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    a = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(2)
    a.rattle(0.05, seed=1)
    pos = [a.positions, rng.uniform(0, 6, (5, 3))]
    spc = [np.where(np.arange(len(a)) % 3 == 0, 3, 42), np.array([42, 42, 3, 3, 42])]
    ds = make_configurations(pos, spc, cells=[a.cell[:], np.zeros((3, 3))], pbc=[[1, 1, 1], [0, 0, 0]],
                             energy=[-10.123456789012345, 1.5],
                             forces=[rng.normal(size=(16, 3)), rng.normal(size=(5, 3))],
                             stress=[rng.normal(size=6) * 0.01, None])
    path = write_cfg(ds, tmp_path / "t.cfg", species=[42, 3])
    back = read_cfg(path, species=[42, 3])
    for key in ("positions", "species", "n_atoms", "cell", "pbc", "energy", "forces"):
        np.testing.assert_array_equal(back[key].values, ds[key].values, err_msg=key)
    np.testing.assert_allclose(back["stress"].values, ds["stress"].values, rtol=1e-15, atol=0)


def test_cfg_readable_by_motep(tmp_path):
    cfg = require_module("motep.io.mlip.cfg")
    a = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(2)
    a.rattle(0.05, seed=1)
    from ase.calculators.singlepoint import SinglePointCalculator
    a.calc = SinglePointCalculator(a, energy=-3.0, forces=np.ones((16, 3)), stress=np.arange(6) * 1e-3)
    path = write_cfg(from_atoms([a]), tmp_path / "m.cfg", species=[42])
    with open(path) as fd:
        (img,) = list(cfg.read_cfg(fd, index=":", species=[42]))
    np.testing.assert_allclose(img.positions, a.positions, atol=1e-12)
    np.testing.assert_allclose(img.get_stress(), a.get_stress(), atol=1e-12)
    assert img.get_potential_energy() == -3.0


@pytest.mark.parametrize(("text", "match"), [
    ("PTM\n", "line 1 must be 'MTP'"),
    ("MTP\nspecies_count = 1\n", "missing fields"),
    ("MTP\nspecies_count = x\n", "expected integers"),
])
def test_malformed_mtp(tmp_path, text, match):
    path = tmp_path / "bad.mtp"
    path.write_text(text)
    with pytest.raises(MTPFileError, match=match):
        read_mtp(path, species=[42])


def test_malformed_mtp_variants(shared_data, tmp_path):
    text = (shared_data / "mtp" / "cubic_level10.mtp").read_text()
    cut = tmp_path / "cut.mtp"
    cut.write_text(text.replace("alpha_scalar_moments = 16", "alpha_scalar_moments = 17"))
    with pytest.raises(MTPFileError, match="alpha_scalar_moments = 17"):
        read_mtp(cut, species=[42])
    short = tmp_path / "short.mtp"
    short.write_text(text.replace("{0, 0, 1, 25}", "{0, 0, 1, 99}"))
    with pytest.raises(MTPFileError, match="outside"):
        read_mtp(short, species=[42])
    with pytest.raises(MTPFileError, match="does not say which elements"):
        read_mtp(shared_data / "mtp" / "cubic_level10.mtp")
    with pytest.raises(MTPFileError, match="species_count = 1 but 2"):
        read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[42, 3])
    with pytest.raises(MTPFileError, match="cannot read"):
        read_mtp(tmp_path / "none.mtp", species=[42])


def test_malformed_cfg(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("BEGIN_CFG\n Size\n 2\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\n")
    with pytest.raises(MTPFileError, match="file ends"):
        read_cfg(path, species=[42])
    path.write_text("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 4 0 0 0\nEND_CFG\n")
    with pytest.raises(MTPFileError, match="atom types"):
        read_cfg(path, species=[42])


# --------------------------------------------------------------------------- dialects motep reads (issue 15 §6)
def _motep_energy_forces(data, atoms):
    calc_mod = require_module("motep.calculator")
    try:
        calc = calc_mod.MTP(data, engine="cext")
    except ImportError:
        calc = calc_mod.MTP(data, engine="numpy")
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces()


@pytest.mark.parametrize("legacy", [False, True], ids=["grouped-min-max-size", "flat-min_dist"])
def test_motep_written_mtp_reads_and_evaluates_as_motep(shared_data, tmp_path, legacy):
    """motep 0.2's writer (default: grouped ``min``/``max``/``size`` keys and ``radial_coeffs`` before
    ``radial_funcs_count``; legacy: flat keys) → pesflow: the same potential, energies and forces equal to
    motep's own evaluation of the data it wrote (relative 1e-8; test_mtp_evaluate.py's tolerance)."""
    motep_mtp = require_module("motep.io.mlip.mtp")
    data = motep_mtp.read_mtp(shared_data / "mtp" / "multi_level06.mtp")
    path = tmp_path / "motep.mtp"
    motep_mtp.write_mtp(path, data, legacy=legacy)
    text = path.read_text()
    assert ("\tmin = " in text) != legacy and ("radial_funcs_count" in text.split("radial_coeffs")[0]) == legacy
    mtp = read_mtp(path, species=[42, 3, 1])
    np.testing.assert_array_equal(mtp.radial_coeffs, data.radial_coeffs)
    np.testing.assert_array_equal(mtp.moment_coeffs, data.moment_coeffs)
    assert (mtp.min_dist, mtp.max_dist, mtp.radial_basis_size) == (0.5, 5.0, 8)
    a = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(2)
    a.rattle(0.1, seed=2)
    a.numbers[::3], a.numbers[1::5] = 3, 1
    data.species = [42, 3, 1]
    e_ref, f_ref = _motep_energy_forces(data, a)
    ours = mtp.evaluate(a.positions, a.numbers, a.cell[:], a.pbc)
    assert abs(ours["energy"] - e_ref) <= 1e-8 * abs(e_ref)
    assert np.abs(ours["forces"] - f_ref).max() <= 1e-8 * np.abs(f_ref).max()


def test_motep_written_untrained_template_reads(shared_data, tmp_path):
    motep_mtp = require_module("motep.io.mlip.mtp")
    data = motep_mtp.read_mtp(shared_data / "mtp" / "multi_level10_untrained.mtp")
    path = tmp_path / "untrained.mtp"
    motep_mtp.write_mtp(path, data)
    assert read_basis(path).same_as(read_basis(shared_data / "mtp" / "multi_level10_untrained.mtp"))


def test_magnetic_mtp_is_refused_by_name(shared_data, tmp_path):
    """An MLIP-3 magnetic MTP written by motep (magnetic_basis_type section): not a count error."""
    motep_mtp = require_module("motep.io.mlip.mtp")
    from motep.potentials.mmtp.data import MagMTPData

    data = MagMTPData.from_base(motep_mtp.read_mtp(shared_data / "mtp" / "cubic_level10.mtp"))
    path = tmp_path / "mag.mtp"
    motep_mtp.write_mtp(path, data)
    line = 1 + path.read_text().splitlines().index("magnetic_basis_type = BChebyshev")
    with pytest.raises(MTPFileError, match=rf"mag.mtp:{line}: magnetic MTP not supported"):
        read_mtp(path, species=[42])
    flat = tmp_path / "flat_mag.mtp"  # the older flat magnetic keys
    flat.write_text((shared_data / "mtp" / "cubic_level10.mtp").read_text().replace(
        "alpha_moments_count", "min_mag = -3.5\nalpha_moments_count"))
    with pytest.raises(MTPFileError, match="magnetic MTP not supported"):
        read_basis(flat)


def _line_of(text: str, start: str) -> int:
    return 1 + next(n for n, line in enumerate(text.splitlines()) if line.strip().startswith(start))


@pytest.mark.parametrize(("old", "new", "key", "match"), [
    ("radial_funcs_count = 3", "radial_funcs_count = 4", "radial_funcs_count",
     r"radial_funcs_count = 4 but species pair 0-0 \(line \d+\) has 3 rows"),
    ("alpha_index_basic_count = 25", "alpha_index_basic_count = 24", "alpha_index_basic_count",
     r"alpha_index_basic_count = 24 but alpha_index_basic \(line \d+\) has 25 entries"),
    ("alpha_index_times_count = 42", "alpha_index_times_count = 43", "alpha_index_times_count",
     "alpha_index_times_count = 43 but"),
    ("alpha_moments_count = 41", "alpha_moments_count = 45", "alpha_moments_count",
     r"alpha_moments_count = 45 but the file defines 41 moments \(25 in alpha_index_basic \+ 16"),
    ("alpha_moments_count = 41", "alpha_moments_count = 40", "alpha_moments_count",
     "alpha_moments_count = 40 but the file defines 41 moments"),
    ("radial_basis_size = 8", "radial_basis_size = 9", "{", r"8 radial coefficients, expected radial_basis_size = 9"),
    ("species_count = 1", "species_count = 2", "radial_coeffs",
     r"radial_coeffs has 1 species pairs, species_count = 2 \(line 5\) needs 4"),
])
def test_wrong_counts_point_at_the_right_line(shared_data, tmp_path, old, new, key, match):
    text = (shared_data / "mtp" / "cubic_level10.mtp").read_text()
    assert old in text
    bad = text.replace(old, new)
    path = tmp_path / "bad.mtp"
    path.write_text(bad)
    with pytest.raises(MTPFileError, match=rf"bad.mtp:{_line_of(bad, key)}: {match}"):
        read_mtp(path, species=[42])
