"""``pesflow temper``: replica exchange on a small LJ cluster through the CLI."""

import xarray as xr

from flows.cli import main


def test_temper_writes_a_dataset(tmp_path):
    out = tmp_path / "t.nc"
    assert main(["temper", "--atoms", "5", "--rungs", "3", "--sweeps", "20", "--warmup", "2", "--n-steps", "3",
                 "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.sizes["rung"] == 3 and ds.sizes["sweep"] == 20 and ds.sizes["pair"] == 2
        assert ds["temperature"].values[0] < ds["temperature"].values[-1]


def test_temper_bad_input(capsys):
    assert main(["temper", "--t-min", "0.3", "--t-max", "0.1"]) == 2
    assert "strictly increasing" in capsys.readouterr().err
    assert main(["temper", "--rungs", "1"]) == 2
