"""Campaign store: atomic files, idempotent label additions, metrics rows, stage markers, the lock."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from flows.store import CampaignBusy, CampaignStore
from hmc_core.configurations import make_configurations


def _labels(n, n_atoms=3, e0=0.0):
    rng = np.random.default_rng(n)
    ds = make_configurations([rng.normal(size=(n_atoms, 3)) for _ in range(n)], [[8, 1, 1][:n_atoms]] * n,
                             energy=e0 + np.arange(n, dtype=float),
                             forces=[rng.normal(size=(n_atoms, 3)) for _ in range(n)])
    ds["status"] = ("config", np.array(["ok"] * n, dtype=object))
    return ds


def test_labels_are_added_idempotently_and_readable_with_plain_xarray(tmp_path):
    store = CampaignStore(tmp_path / "c")
    store.initialize('name = "x"\n')
    store.add_labels(_labels(4), iteration=-1, origin="start")
    store.add_labels(_labels(2, e0=10), iteration=0, origin="candidate")
    again = store.add_labels(_labels(2, e0=10), iteration=0, origin="candidate")  # a redone stage
    assert again.sizes["config"] == 6
    with xr.open_dataset(store.labels_path) as ds:  # plain xarray, no pesflow
        assert ds.sizes["config"] == 6
        assert list(ds["origin"].values.astype(str)) == ["start"] * 4 + ["candidate"] * 2
        np.testing.assert_array_equal(ds["energy"].values, [0, 1, 2, 3, 10, 11])
    assert not list(store.root.glob(".*.tmp"))  # no temporary files left behind


def test_metrics_rows_replace_and_extend(tmp_path):
    store = CampaignStore(tmp_path)
    store.record_metrics(0, {"n_labels": 4, "fit_s": 1.5, "stop_reason": ""})
    store.record_metrics(1, {"n_labels": 8, "fit_s": 2.0, "stop_reason": "budget"})
    ds = store.record_metrics(1, {"n_labels": 9, "fit_s": 2.5, "stop_reason": "budget"})
    assert list(ds["iteration"].values) == [0, 1]
    np.testing.assert_array_equal(ds["n_labels"].values, [4, 9])
    assert ds["fit_s"].attrs["units"] == "s"
    assert str(store.read_metrics()["stop_reason"].values[1]) == "budget"


def test_stage_markers_and_resume_config_check(tmp_path):
    store = CampaignStore(tmp_path)
    store.initialize('name = "a"\n[stopping]\nmax_iterations = 2\n')
    store.initialize('name = "a"\n[stopping]\nmax_iterations = 5\n')  # budgets may change on resume
    with pytest.raises(ValueError, match="different configuration"):
        store.initialize('name = "b"\n')
    assert store.stage_done("fit", 0) is None
    store.mark_done("fit", 0, {"wall_s": 1.0})
    assert store.stage_done("fit", 0) == {"wall_s": 1.0}
    assert store.iterations() == [0]
    with pytest.raises(ValueError, match="unknown stage"):
        store.mark_done("dance", 0)


def test_only_one_process_owns_a_campaign(tmp_path):
    a, b = CampaignStore(tmp_path), CampaignStore(tmp_path)
    with a.locked():
        with pytest.raises(CampaignBusy):
            with b.locked():
                pass
    with b.locked():  # released
        pass


def test_nested_and_mixed_attributes_are_stored_as_json(tmp_path):
    """netCDF stores flat lists of numbers or strings only; dicts and mixed lists go in as JSON text."""
    import json

    import xarray as xr

    from flows.store import CampaignStore

    store = CampaignStore(tmp_path)
    ds = xr.Dataset({"x": ("i", [1.0, 2.0])}, attrs={"d": {"k": [1, 2]}, "mixed": [1, "a"], "flags": [True, False],
                                                     "nums": [1, 2.5], "names": ["a", "b"], "none": None})
    store.write_dataset("a.nc", ds)
    back = store.read_dataset("a.nc").attrs
    assert json.loads(back["d"]) == {"k": [1, 2]} and json.loads(back["mixed"]) == [1, "a"]
    assert json.loads(back["flags"]) == [True, False]
    assert list(back["nums"]) == [1.0, 2.5] and list(back["names"]) == ["a", "b"] and "none" not in back
