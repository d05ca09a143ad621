"""End-to-end active-learning campaigns with real parts: PySCF labels (HF/STO-3G water), MTP fits, HMC
exploration with the grade monitor, MaxVol selection, under Prefect's test harness (a temporary server).

Reference values: none beyond consistency; the assertions are on what the campaign must produce (labels,
refitted potentials, metrics, artifacts) and on the stopping rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

TINY = """
name = "{name}"
seed = 3
[system]
builtin = "H2O"
n_start = 4
n_test = 4
rattle = 0.08
[potential]
level = 6
max_iter = 30
[hmc]
temperatures = [600.0]
n_starts = 2
n_samples = 30
n_warmup = 10
save_every = 2
[selection]
threshold = 1.1
budget = 3
[labeling]
method = "hf"
basis = "sto-3g"
density_fit = false
n_workers = {workers}
[stopping]
max_iterations = {iterations}
stop_when_no_candidates = false
[executor]
kind = "{executor}"
"""


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def tiny_config(tmp_path, name="tiny", iterations=2, executor="default", workers=1):
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, iterations=iterations, executor=executor, workers=workers))
    return path


def _artifacts(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_two_iteration_campaign_end_to_end(harness, tmp_path):
    from flows.active_learning import active_learning
    from flows.store import CampaignStore
    from hmc_core.mtp import read_mtp

    directory = tmp_path / "campaign"
    summary = active_learning(config_path=str(tiny_config(tmp_path)), directory=str(directory))
    store = CampaignStore(directory)
    assert summary["finished"] and summary["reason"].startswith("iteration budget")

    # labels: the starting set plus every selected candidate, all with PySCF energies and forces
    labels = xr.open_dataset(store.labels_path).load()
    origin = labels["origin"].values.astype(str)
    assert (origin == "start").sum() == 4
    n_selected = sum(store.read_dataset("candidates.nc", i).sizes["config"] for i in (0, 1))
    assert (origin == "candidate").sum() == n_selected >= 1
    ok = labels["status"].values.astype(str) == "ok"
    assert np.all(np.isfinite(labels["energy"].values[ok]))
    assert np.all(np.isfinite(labels["forces"].values[ok]))
    assert labels.attrs["label_method"] == "hf" and labels.attrs["label_basis"] == "sto-3g"

    # metrics: one row per fit (2 label rounds + the final fit), label counts growing by what was labeled
    m = store.read_metrics()
    assert list(m["iteration"].values) == [0, 1, 2]
    n = m["n_labels"].values
    assert n[0] == ok[origin == "start"].sum() and n[-1] == ok.sum()
    assert n[1] == n[0] + m["n_new_labels"].values[0]
    assert np.all(np.isfinite(m["test_force_rmse_eV_per_A"].values))
    assert np.all(m["fit_s"].values > 0) and np.all(m["explore_s"].values[:2] > 0)

    # refitted potentials: one per iteration, readable in MLIP format; the final one fitted on all labels
    pots = [read_mtp(store.path("potential.mtp", i)) for i in (0, 1, 2)]
    assert not np.allclose(pots[0].moment_coeffs, pots[2].moment_coeffs)
    final = read_mtp(store.path("final.mtp"))
    np.testing.assert_array_equal(final.moment_coeffs, pots[2].moment_coeffs)
    assert store.read_json("final.json")["fit_report"]["n_configs_used"] == ok.sum()

    # every file says how it was made: the campaign's seed and configuration, units on every variable
    for ds in (m, labels, store.read_dataset("samples.nc", 0), store.read_dataset("candidates.nc", 0)):
        assert ds.attrs["campaign_seed"] == 3 and "[hmc]" in ds.attrs["campaign_config"]
        assert all("units" in ds[v].attrs for v in ds.data_vars)

    # exploration: samples with grades, HMC traces; selection: grades above the threshold
    samples = store.read_dataset("samples.nc", 0)
    assert samples.sizes["config"] > 0 and np.isfinite(samples["grade"].values).any()
    cand = store.read_dataset("candidates.nc", 0)
    assert np.all(cand["grade"].values > 1.1)
    assert store.read_dataset("trajectories.nc", 0).sizes["chain"] == 2

    # Prefect artifacts: metrics table, markdown summary, progress at 100 %
    table = _artifacts("tiny-metrics")
    assert table and table[-1].type == "table"
    assert _artifacts("tiny-iteration")[-1].type == "markdown"
    progress = _artifacts("tiny-progress")
    assert progress and float(progress[-1].data) == pytest.approx(100.0)

    # a second call with the same command finds the campaign finished and computes nothing
    again = active_learning(config_path=str(tiny_config(tmp_path)), directory=str(directory))
    assert again["n_labels"] == summary["n_labels"]
    assert store.read_labels().sizes["config"] == labels.sizes["config"]


@pytest.mark.slow
def test_campaign_on_a_local_dask_cluster(harness, tmp_path):
    """The fan-out (HMC chains, label batches) runs on a real local Dask cluster of 2 worker processes."""
    from flows.active_learning import active_learning
    from flows.store import CampaignStore

    cfg = tiny_config(tmp_path, name="dask", iterations=1, executor="dask")
    summary = active_learning(config_path=str(cfg), directory=str(tmp_path / "c"))
    store = CampaignStore(tmp_path / "c")
    assert summary["finished"]
    m = store.read_metrics()
    assert list(m["iteration"].values) == [0, 1]
    assert store.read_dataset("trajectories.nc", 0).sizes["chain"] == 2
    assert (store.path("dask-scratch")).exists()  # the cluster's scratch space is the campaign's own
