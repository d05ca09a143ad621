"""Campaign store details that mutation testing (``make mutation``, bench/mutation.py) found untested:
paths, JSON and netCDF conversions, stage markers, training labels, label alignment, metrics units, the lock."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from flows.store import STAGES, CampaignBusy, CampaignStore, _aligned, _jsonable, netcdf_safe, write_text_atomic
from hmc_core.configurations import make_configurations


def _labels(n, e0=0.0, status=None):
    rng = np.random.default_rng(n)
    ds = make_configurations([rng.normal(size=(3, 3)) for _ in range(n)], [[8, 1, 1]] * n,
                             energy=e0 + np.arange(n, dtype=float), forces=[rng.normal(size=(3, 3)) for _ in range(n)])
    ds["status"] = ("config", np.array(status or ["ok"] * n, dtype=object))
    return ds


def test_paths_and_iterations(tmp_path):
    store = CampaignStore(tmp_path / "c")
    root = (tmp_path / "c").resolve()
    assert store.root == root
    assert store.config_path == root / "campaign.toml"
    assert store.labels_path == root / "labels.nc"
    assert store.test_path == root / "test_set.nc"
    assert store.metrics_path == root / "metrics.nc"
    assert store.done_path == root / "DONE.json"
    assert store.default_cache_dir == root / "label_cache"
    assert store.iteration_dir(7) == root / "iterations" / "007"
    assert store.path("x.nc") == root / "x.nc"
    assert store.path("x.nc", 0) == root / "iterations" / "000" / "x.nc"
    assert store.label_cache_dir() == root / "label_cache"
    assert store.label_cache_dir("") == root / "label_cache"
    assert store.label_cache_dir("~/cache") == (tmp_path / "x").home() / "cache"
    assert store.iterations() == []
    assert not store.exists()
    for name in ("010", "002", "notes", "1a"):
        (root / "iterations" / name).mkdir(parents=True)
    assert store.iterations() == [2, 10]
    store.initialize('name = "x"\n')
    assert store.exists()
    assert STAGES == ("fit", "explore", "select", "cut", "label", "ensemble")


def test_initialize_keeps_the_first_configuration_and_ignores_only_budgets(tmp_path):
    store = CampaignStore(tmp_path)
    first = 'name = "a"\ndirectory = "d1"\n[stopping]\nmax_iterations = 2\n[executor]\nkind = "local"\n' \
            '[labeling]\nn_workers = 1\nbasis = "sto-3g"\n'
    store.initialize(first)
    resumed = 'name = "a"\ndirectory = "d2"\n[stopping]\nmax_iterations = 9\n[executor]\nkind = "dask"\n' \
              '[labeling]\nn_workers = 4\nbasis = "sto-3g"\n'
    store.initialize(resumed)
    assert store.config_path.read_text() == first  # never rewritten on resume
    with pytest.raises(ValueError, match=r"holds a campaign with a different configuration .*campaign\.toml.*"
                                         r"choose another directory or remove it"):
        store.initialize(resumed.replace("sto-3g", "def2-svp"))
    with pytest.raises(ValueError, match="different configuration"):
        store.initialize('name = "a"\n[labeling]\nbasis = "sto-3g"\n[selection]\nbudget = 3\n')


def test_lock_names_its_holder(tmp_path):
    a, b = CampaignStore(tmp_path / "new"), CampaignStore(tmp_path / "new")
    with a.locked() as held:
        assert held is a
        text = (a.root / ".lock").read_text()
        assert text.startswith(f"pid {os.getpid()} on ") and ", since " in text
        with pytest.raises(CampaignBusy, match=rf"another process \(pid {os.getpid()} on .*\) is running the "
                                               rf"campaign in .*new; wait for it to finish or stop it, then run"):
            with b.locked():
                pass
    with b.locked():
        pass
    (a.root / ".lock").write_text("")
    with a.locked(), pytest.raises(CampaignBusy, match="another process"):
        with b.locked():
            pass


def test_lock_with_empty_holder_says_unknown(tmp_path):
    import fcntl

    store = CampaignStore(tmp_path)
    with open(tmp_path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CampaignBusy, match=r"another process \(unknown\)"):
            with store.locked():
                pass


def test_json_and_netcdf_conversions(tmp_path):
    data = {1: np.int64(3), "a": (np.float32(1.5), float("nan")), "b": np.arange(2), "c": [np.inf, 2.0],
            "d": {"e": None, "f": "g", "h": True}}
    assert _jsonable(data) == {"1": 3, "a": [1.5, None], "b": [0, 1], "c": [None, 2.0],
                               "d": {"e": None, "f": "g", "h": True}}
    assert type(_jsonable(np.int32(2))) is int and type(_jsonable(np.float64(2.0))) is float
    store = CampaignStore(tmp_path)
    path = store.write_json("info.json", data, 3)
    assert path == store.path("info.json", 3)
    assert json.loads(path.read_text()) == store.read_json("info.json", 3) == _jsonable(data)
    assert path.read_text().startswith('{\n "1": 3')  # indent=1
    ds = xr.Dataset({"x": ("config", np.arange(3.0))},
                    attrs={"none": None, "flag": True, "npflag": np.bool_(False), "nested": [[1, 2], [3]],
                           "plain": [1, 2], "ok": 1.5, "objs": [{"a": 1}]})
    ds["x"].attrs = {"units": "eV", "gone": None, "b": False}
    safe = netcdf_safe(ds)
    assert ds.attrs["none"] is None and ds.attrs["flag"] is True  # the input is not modified
    assert "none" not in safe.attrs and safe.attrs["flag"] == 1 and type(safe.attrs["flag"]) is int
    assert safe.attrs["npflag"] == 0 and type(safe.attrs["npflag"]) is int
    assert json.loads(safe.attrs["nested"]) == [[1, 2], [3]]
    assert safe.attrs["plain"] == [1, 2] and safe.attrs["ok"] == 1.5
    assert json.loads(safe.attrs["objs"]) == [{"a": 1}]
    assert safe["x"].attrs == {"units": "eV", "b": 0}
    assert store.write_dataset("d.nc", ds, 1) == store.path("d.nc", 1)
    assert store.has("d.nc", 1) and not store.has("d.nc") and not store.has("e.nc", 1)
    back = store.read_dataset("d.nc", 1)
    assert back.attrs["flag"] == 1 and "none" not in back.attrs and back["x"].attrs["units"] == "eV"
    np.testing.assert_array_equal(back["x"].values, [0, 1, 2])


def test_text_and_file_copies_are_atomic(tmp_path):
    store = CampaignStore(tmp_path)
    src = write_text_atomic(tmp_path / "a.txt", "héllo")
    assert src == tmp_path / "a.txt" and src.read_bytes() == "héllo".encode()
    assert store.copy_file(src, tmp_path / "sub" / "b.txt") == tmp_path / "sub" / "b.txt"
    assert (tmp_path / "sub" / "b.txt").read_text() == "héllo"
    assert not list(tmp_path.rglob("*.tmp"))


def test_remove_stale_temporaries_in_root_and_iterations(tmp_path):
    store = CampaignStore(tmp_path)
    store.iteration_dir(0).mkdir(parents=True)
    (store.root / "iterations" / "README").write_text("not a folder")
    dead = 2 ** 22 + 12345  # beyond the default pid_max: no such process
    stale = [store.root / f".labels.nc~{os.uname().nodename}~{dead}~x.tmp",
             store.iteration_dir(0) / f".samples.nc~{os.uname().nodename}~{dead}~y.tmp"]
    for p in stale:
        p.write_text("partial")
    keep = store.iteration_dir(0) / "samples.nc"
    keep.write_text("data")
    removed = store.remove_stale_temporaries()
    assert sorted(removed) == sorted(stale) and not any(p.exists() for p in stale) and keep.exists()


def test_stage_markers_default_to_empty_info(tmp_path):
    store = CampaignStore(tmp_path)
    store.mark_done("explore", 2)
    assert store.stage_done("explore", 2) == {}
    assert store.stage_done("explore", 1) is None and store.stage_done("select", 2) is None
    for stage in STAGES:
        store.mark_done(stage, 0, {"s": stage})
        assert store.stage_done(stage, 0) == {"s": stage}
    with pytest.raises(ValueError, match=r"unknown stage 'dance'; stages are \('fit', 'explore'"):
        store.mark_done("dance", 0)


def test_training_labels_only_earlier_usable_labels(tmp_path):
    store = CampaignStore(tmp_path)
    assert store.read_labels() is None
    with pytest.raises(FileNotFoundError, match="labels.nc does not exist: the starting set has not been labeled"):
        store.training_labels(0)
    store.add_labels(_labels(3, status=["ok", "failed", "ok"]), iteration=-1, origin="start")
    store.add_labels(_labels(2, e0=10), iteration=0, origin="candidate")
    store.add_labels(_labels(1, e0=20), iteration=1, origin="candidate")
    np.testing.assert_array_equal(store.training_labels(0)["energy"].values, [0, 2])
    np.testing.assert_array_equal(store.training_labels(1)["energy"].values, [0, 2, 10, 11])
    np.testing.assert_array_equal(store.training_labels(2)["energy"].values, [0, 2, 10, 11, 20])
    assert store.training_labels(-1).sizes["config"] == 0


def test_add_labels_orders_by_iteration_and_replaces_only_same_origin(tmp_path):
    store = CampaignStore(tmp_path)
    store.add_labels(_labels(2, e0=10), iteration=1, origin="candidate")
    merged = store.add_labels(_labels(2), iteration=-1, origin="start")
    np.testing.assert_array_equal(merged["iteration"].values, [-1, -1, 1, 1])
    assert merged["iteration"].dtype == np.int32
    np.testing.assert_array_equal(store.read_labels()["energy"].values, [0, 1, 10, 11])
    merged = store.add_labels(_labels(1, e0=5), iteration=1, origin="start")  # same iteration, other origin
    np.testing.assert_array_equal(merged["energy"].values, [0, 1, 10, 11, 5])
    merged = store.add_labels(_labels(0), iteration=1, origin="candidate")  # a redo with no labels
    np.testing.assert_array_equal(merged["energy"].values, [0, 1, 5])
    np.testing.assert_array_equal(store.read_labels()["energy"].values, [0, 1, 5])
    assert list(store.read_labels()["origin"].values.astype(str)) == ["start", "start", "start"]


def test_add_labels_empty_store_and_empty_new(tmp_path):
    store = CampaignStore(tmp_path)
    out = store.add_labels(_labels(0), iteration=0, origin="candidate")
    assert out.sizes["config"] == 0 and "iteration" in out and "origin" in out
    assert out["origin"].dtype.kind == "U" and out["iteration"].dtype == np.int32
    assert not store.labels_path.exists()
    one = store.add_labels(_labels(1), iteration=0, origin="candidate")
    assert one.sizes["config"] == 1 and str(one["origin"].values[0]) == "candidate"
    assert store.add_labels(_labels(0), iteration=0, origin="candidate").sizes["config"] == 0


def test_aligned_fills_missing_variables_by_type():
    a = xr.Dataset({"e": ("config", [1.0, 2.0]), "n": ("config", np.array([3, 4], np.int32)),
                    "t": ("config", np.array(["x", "yy"], dtype=object)), "g": ("other", [1.0])})
    b = xr.Dataset({"e": ("config", [5.0])})
    pa, pb = _aligned([a, b])
    assert pa["t"].dtype.kind == "U" and a["t"].dtype.kind == "O"  # converted on a copy
    assert "g" not in pb
    assert pb["n"].dtype == np.int32 and pb["n"].values.tolist() == [-1] and pb["n"].dims == ("config",)
    assert pb["t"].dims == ("config",)
    assert pb["t"].dtype.kind == "U" and pb["t"].values.tolist() == [""]
    c = xr.Dataset({"e": ("config", [5.0, 6.0])})
    d = xr.Dataset({"f": ("config", np.array([1.5], np.float32))})
    pc, _ = _aligned([c, d])
    assert pc["f"].dtype == np.float32 and np.isnan(pc["f"].values).all() and pc["f"].shape == (2,)


def test_metrics_units_missing_values_and_rows(tmp_path):
    store = CampaignStore(tmp_path)
    assert store.read_metrics() is None and store.metrics_row(0) is None
    store.record_metrics(2, {"n_labels": 4, "fit_s": 1.5, "test_energy_meV_per_atom": 3.0,
                             "test_forces_eV_per_A": 0.1, "stop_reason": "", "note": None})
    ds = store.record_metrics(0, {"n_labels": 2, "extra": 7.0, "stop_reason": None})
    assert ds.attrs["schema"] == "pesflow.campaign_metrics/1"
    assert list(ds["iteration"].values) == [0, 2] and ds["iteration"].dtype == np.int32
    assert ds["fit_s"].attrs == {"units": "s"}
    assert ds["test_energy_meV_per_atom"].attrs == {"units": "meV/atom"}
    assert ds["test_forces_eV_per_A"].attrs == {"units": "eV/Å"}
    assert ds["n_labels"].attrs == {} and ds["extra"].attrs == {}
    assert ds["n_labels"].dtype == float
    assert np.isnan(ds["fit_s"].values[0]) and np.isnan(ds["extra"].values[1])
    assert list(ds["stop_reason"].values) == ["", ""] and list(ds["note"].values) == ["", ""]
    assert list(ds.data_vars)[:2] == ["n_labels", "extra"]
    assert store.metrics_row(1) is None
    row = store.metrics_row(2)
    assert row["n_labels"] == 4 and row["fit_s"] == 1.5 and row["stop_reason"] == "" and np.isnan(row["extra"])
    assert store.metrics_row(0)["extra"] == 7.0


def test_initialize_creates_nested_folders(tmp_path):
    store = CampaignStore(tmp_path / "a" / "b" / "c")
    store.initialize('name = "x"\n')
    assert store.config_path.read_text() == 'name = "x"\n'


def test_add_labels_keeps_insertion_order_within_an_iteration(tmp_path):
    """Rows are sorted by iteration with a stable sort: more than 16 rows, so an unstable sort would show."""
    store = CampaignStore(tmp_path)
    store.add_labels(_labels(10, e0=100), iteration=1, origin="candidate")
    store.add_labels(_labels(10, e0=0), iteration=-1, origin="start")
    merged = store.add_labels(_labels(10, e0=50), iteration=0, origin="candidate")
    expected = [*range(0, 10), *range(50, 60), *range(100, 110)]
    np.testing.assert_array_equal(merged["energy"].values, expected)
    np.testing.assert_array_equal(store.read_labels()["energy"].values, expected)
    assert merged["origin"].dtype.kind == "U"


def test_write_mtp_round_trip(tmp_path, shared_data):
    from hmc_core.mtp import read_mtp

    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[18])
    store = CampaignStore(tmp_path)
    target = store.path("potential.mtp", 0)
    assert store.write_mtp(mtp, target) == target
    back = read_mtp(target, species=[18])
    np.testing.assert_allclose(back.linear_coefficients, mtp.linear_coefficients)
    assert not list(target.parent.glob(".*.tmp"))


def test_resume_comparison_ignores_budgets_executor_directory_production_and_workers_only():
    from flows.store import _comparable

    base = 'name = "a"\n[potential]\nlevel = 6\n[labeling]\nmethod = "hf"\nn_workers = 1\n'
    free = '[stopping]\nmax_iterations = 9\n[executor]\nkind = "dask"\n[production]\nflow = "melt"\n'
    assert _comparable(base) == {"name": "a", "potential": {"level": 6}, "labeling": {"method": "hf"}}
    changed = 'directory = "elsewhere"\n' + base.replace("n_workers = 1", "n_workers = 4") + free
    assert _comparable(changed) == _comparable(base)
    assert _comparable(base.replace("level = 6", "level = 8")) != _comparable(base)


def test_every_dataset_written_carries_the_campaign_provenance(tmp_path):
    from hmc_core.configurations import make_configurations

    ds = make_configurations([np.zeros((1, 3))], [np.array([18])], attrs={"source": "test"})
    stamped = CampaignStore(tmp_path / "a", provenance={"campaign_seed": 7, "campaign_config": "x"})
    stamped.write_dataset("one.nc", ds)
    back = stamped.read_dataset("one.nc")
    assert back.attrs["campaign_seed"] == 7 and back.attrs["campaign_config"] == "x" and back.attrs["source"] == "test"
    assert "campaign_seed" not in ds.attrs  # the caller's dataset is not modified
    plain = CampaignStore(tmp_path / "b")
    assert plain.provenance == {}
    plain.write_dataset("one.nc", ds)
    assert "campaign_seed" not in plain.read_dataset("one.nc").attrs and plain.read_dataset("one.nc").attrs["source"]
