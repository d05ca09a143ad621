"""`pesflow sample`: output datasets, bad input as one clear line (exit 2, no traceback), ``--species`` for
MLIP-trained potentials, and the warning for a chain that accepts (almost) nothing."""

import numpy as np
import pytest
import xarray as xr

from flows.cli import main


def _said(capsys) -> str:
    out = capsys.readouterr()
    return " ".join((out.out + out.err).split())  # the console wraps long lines


def test_sample_builtin_writes_dataset(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["sample", "lj-fcc", "--n-samples", "5", "--warmup", "2", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.sizes["sample"] == 5 and ds.attrs["potential_name"] == "LennardJones"
        assert np.all(np.isfinite(ds["potential_energy"].values))
        rate = float(ds["acceptance_rate"].values[0])
    said = _said(capsys)
    assert f"{rate:.2f}" in said and "warning" not in said


@pytest.mark.parametrize(("args", "message"), [
    (["missing.xyz"], "no such structure file"),
    (["lj-fcc", "--dt", "-1"], "--dt = -1.0: the time step must be > 0"),
    (["lj-fcc", "--n-samples", "0"], "--n-samples = 0: must be ≥ 1"),
    (["lj-fcc", "--warmup", "-3"], "--warmup = -3: must be ≥ 0"),
    (["unknown-thing"], "unknown built-in structure 'unknown-thing'; choose lj-fcc, ar-fcc or ar13"),
    (["lj-fcc", "--species", "Mo"], "--species names the elements of a --potential FILE.mtp"),
])
def test_sample_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    if args[0] == "missing.xyz":
        args = [str(tmp_path / "missing.xyz")]
    assert main(["sample", *args, "--out", str(tmp_path / "s.nc")]) == 2
    said = _said(capsys)
    assert f"error: {message}" in said and "Traceback" not in said
    assert not (tmp_path / "s.nc").exists()


def test_sample_with_fitted_mtp(tmp_path, shared_data, capsys):
    """`pesflow sample --potential` runs HMC on a fitted MTP (the level-10 Mo-style fixture)."""
    from ase.build import bulk, molecule
    from ase.io import write

    from hmc_core.mtp import read_mtp, write_mtp

    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[42])
    pot = write_mtp(mtp, tmp_path / "mo.mtp")
    write(tmp_path / "mo.extxyz", bulk("Mo", "bcc", a=3.15, cubic=True).repeat((2, 2, 2)))
    out = tmp_path / "s.nc"
    assert main(["sample", str(tmp_path / "mo.extxyz"), "-p", str(pot), "-T", "300", "--n-samples", "3",
                 "--warmup", "2", "--dt", "1.0", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["potential_name"] == "MTP" and ds.sizes["sample"] == 3
    write(tmp_path / "w.extxyz", molecule("H2O"))
    assert main(["sample", str(tmp_path / "w.extxyz"), "-p", str(pot)]) == 2  # H, O not in the potential
    assert "error:" in _said(capsys)
    # a pesflow-written file names its elements: a contradicting --species is refused
    assert main(["sample", str(tmp_path / "mo.extxyz"), "-p", str(pot), "--species", "W"]) == 2
    assert "--species [74] contradicts" in _said(capsys)


def test_sample_mlip_trained_mtp_needs_and_takes_species(tmp_path, shared_data, capsys):
    """An MLIP-trained .mtp has species indices, not elements: --species names them (symbol or Z)."""
    from ase.build import bulk
    from ase.io import write

    pot = shared_data / "mtp" / "cubic_level10.mtp"  # MLIP's own file: no potential_tag
    write(tmp_path / "mo.extxyz", bulk("Mo", "bcc", a=3.15, cubic=True).repeat((2, 2, 2)))
    base = ["sample", str(tmp_path / "mo.extxyz"), "-p", str(pot), "-T", "300", "--n-samples", "3",
            "--warmup", "2", "--dt", "1.0"]
    assert main([*base, "--out", str(tmp_path / "none.nc")]) == 2
    said = _said(capsys)
    assert "does not name the elements of its 1 species" in said and "--species Mo" in said
    for value in ("Mo", "42", "mo"):
        out = tmp_path / f"s_{value}.nc"
        assert main([*base, "--species", value, "--out", str(out)]) == 0, _said(capsys)
        with xr.open_dataset(out) as ds:
            assert ds.attrs["potential_name"] == "MTP" and ds.sizes["sample"] == 3
            assert np.all(np.isfinite(ds["potential_energy"].values))
    for value, message in (("Xx", "--species: unknown element symbol 'Xx'"),
                           ("Mo,Li", "--species gives 2 elements but"),
                           ("0", "--species: atomic number 0 is outside 1–118"),
                           ("Mo,Mo", "an element is given twice")):
        assert main([*base, "--species", value, "--out", str(tmp_path / "bad.nc")]) == 2
        said = _said(capsys)
        assert message in said and "Traceback" not in said, said


def test_sample_warns_when_nothing_is_accepted(tmp_path, capsys):
    """LJ fcc at T* = 0.9 with dt = 0.05 τ and no warm-up: every trajectory is rejected (measured 0.00)."""
    out = tmp_path / "s.nc"
    assert main(["sample", "lj-fcc", "--n-samples", "5", "--warmup", "0", "--dt", "0.05", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert float(ds["acceptance_rate"].values[0]) < 0.05
    said = _said(capsys)
    assert "warning: the chain at T = 0.9 accepted 0.00 of its trajectories (below 0.05)" in said
    assert "lower --dt (with --warmup 0 it is not adapted)" in said
