"""Units on every netCDF variable pesflow writes (issue 23 §4): campaign files (labels, test set, metrics,
samples, trajectories, candidates, pool summary, active set), ``pesflow sample`` and ``pesflow temper`` output.
Dimensionless variables say "1", numbers of things "count"."""

from __future__ import annotations

import pytest
import xarray as xr
from tiny_campaign import tiny_campaign

from flows.cli import main
from flows.netcdf_units import annotate_units, missing_units, unit_of

CAMPAIGN_FILES = ["labels.nc", "test_set.nc", "metrics.nc", *(f"iterations/000/{name}" for name in (
    "samples.nc", "trajectories.nc", "candidates.nc", "pool_summary.nc", "active_set.nc"))]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return tiny_campaign(tmp_path_factory)


def test_catalogue():
    assert unit_of("test_force_rmse_eV_per_A") == "eV/Å" and unit_of("label_s") == "s"
    assert unit_of("n_labels") == "count" and unit_of("grade") == "1" and unit_of("no_such_thing") is None
    ds = xr.Dataset({"energy": ("config", [1.0]), "potential_energy": ("c", [1.0]), "mystery": ("c", [0])})
    ds["potential_energy"].attrs["units"] = "ε"
    with pytest.raises(ValueError, match="mystery"):
        annotate_units(ds)
    assert "units" not in annotate_units(ds, strict=False)["mystery"].attrs
    done = annotate_units(ds.drop_vars("mystery"))
    assert done["energy"].attrs["units"] == "eV" and done["potential_energy"].attrs["units"] == "ε"  # kept
    assert "units" not in ds["energy"].attrs  # the input is not changed


@pytest.mark.parametrize("name", CAMPAIGN_FILES)
def test_catalogue_covers_every_campaign_variable(campaign, name):
    with xr.open_dataset(campaign / name) as ds:
        assert missing_units(annotate_units(ds)) == []


@pytest.mark.parametrize("name", CAMPAIGN_FILES)
def test_campaign_files_carry_units(campaign, name):
    with xr.open_dataset(campaign / name) as ds:
        assert missing_units(ds) == []


def test_temper_output_carries_units_and_settings(tmp_path):
    out = tmp_path / "lj5.nc"
    assert main(["temper", "--atoms", "5", "--rungs", "3", "--sweeps", "10", "--warmup", "2", "--n-steps", "3",
                 "--seed", "2", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert missing_units(ds) == []
        assert ds["heat_capacity"].attrs["units"] == "k_B" and ds["temperature"].attrs["units"] == "ε/k_B"
        for key in ("seed", "ladder", "n_steps", "radius", "radius_units", "units", "sweeps", "integrator"):
            assert key in ds.attrs, key


def test_sample_output_units_are_known(tmp_path):
    out = tmp_path / "demo.nc"
    assert main(["sample", "lj-fcc", "-T", "0.7", "--n-samples", "3", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert "seed" in ds.attrs and "hmc_temperature" in ds.attrs
        assert ds["temperature"].attrs.get("units")  # per-chain temperatures
        assert missing_units(annotate_units(ds)) == []
