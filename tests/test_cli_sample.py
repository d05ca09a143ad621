import xarray as xr

from flows.cli import main


def test_sample_builtin_writes_dataset(tmp_path):
    out = tmp_path / "s.nc"
    assert main(["sample", "lj-fcc", "--n-samples", "5", "--warmup", "2", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.sizes["sample"] == 5 and ds.attrs["potential_name"] == "LennardJones"


def test_sample_bad_input_exit_code(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "missing.xyz")]) == 2
    assert "no such structure file" in capsys.readouterr().err
    assert main(["sample", "lj-fcc", "--dt", "-1"]) == 2
    assert main(["sample", "unknown-thing"]) == 2


def test_sample_with_fitted_mtp(tmp_path, shared_data):
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
