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
