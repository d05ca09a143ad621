"""Campaigns that label periodic frames by cluster cuts (issue 16 §3, ``[labeling] cluster_cut``): the selected
frames of a 108-atom fcc argon crystal become open clusters around their uncertain atoms, labeled by ``ase:lj``,
and only the core atoms' forces are fitted; chains never start from a cluster. Bad ``cluster_cut`` input is one
line from ``pesflow run`` before anything starts.
"""

from __future__ import annotations

import logging
import shutil
import uuid

import numpy as np
import pytest

from flows.cli import main
from flows.config import ConfigError, parse_config
from flows.store import CampaignStore

CRYSTAL = """
name = "cut-{run}"
seed = 5

[system]
name = "crystal"
builtin = "fcc"
element = "Ar"
lattice_constant = 5.30
repeat = [3, 3, 3]
n_start = 3
n_test = 0
rattle = 0.03

[potential]
level = 2
cutoff = 5.0
max_iter = 20

[hmc]
temperatures = [60.0]
n_starts = 2
n_samples = 4
n_steps = 4
dt = 4.0
n_warmup = 1
save_every = 1

[selection]
threshold = 1.0
break_threshold = 50.0
budget = 3

[labeling]
labeler = "ase:lj"
n_workers = 1
cluster_cut = {{buffer = {buffer}}}

[stopping]
max_iterations = 2
max_labels = 100
stop_when_no_candidates = false
"""


@pytest.fixture(scope="module")
def cut_campaign(prefect_api, tmp_path_factory):
    """A finished two-iteration cluster-cut campaign: (folder, summary, campaign name)."""
    from flows.active_learning import active_learning

    tmp = tmp_path_factory.mktemp("cut")
    name = f"cut-{uuid.uuid4().hex[:8]}"
    path = tmp / "cut.toml"
    path.write_text(CRYSTAL.format(run=name.removeprefix("cut-"), buffer=2.5))
    summary = active_learning(config_path=str(path), directory=str(tmp / "run"), ui_plots=False)
    return tmp, summary, name


def test_cluster_cut_campaign_labels_clusters_and_fits_core_forces(cut_campaign):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
        TaskRunFilterName,
    )

    from hmc_core.cluster_cut import cut_cluster
    from hmc_core.configurations import config_arrays
    from hmc_core.mtp import read_mtp
    from hmc_core.uncertainty import ActiveSet
    from tasks.cluster_cuts import atom_grades

    tmp_path, summary, name = cut_campaign
    assert summary["finished"] and summary["this_run_s"]["cut"] > 0
    store = CampaignStore(tmp_path / "run")
    with get_client(sync_client=True) as client:
        [flow_run] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"campaign-{name}"])))
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]), name=TaskRunFilterName(like_="cluster cuts")))
    assert {r.name for r in runs} >= {"cluster cuts iteration 0"}
    labels = store.read_labels()

    # iteration 0: the selected frames were cut, and the clusters (not the frames) were labeled
    candidates, clusters = store.read_dataset("candidates.nc", 0), store.read_dataset("clusters.nc", 0)
    cut = store.stage_done("cut", 0)
    assert cut["n_clusters"] == clusters.sizes["config"] and 1 <= cut["n_clusters"] <= 3
    assert cut["n_uncertain_atoms"] >= cut["n_clusters"] and cut["cut_s"] > 0
    new = labels.isel(config=np.flatnonzero(labels["iteration"].values == 0))
    assert new.sizes["config"] == cut["n_clusters"] and not new["pbc"].values.any()
    np.testing.assert_array_equal(new["positions"].values[:, :clusters.sizes["atom"]], clusters["positions"].values)
    assert (new["status"].values.astype(str) == "ok").all()
    row = store.metrics_row(0)
    assert row["n_clusters"] == cut["n_clusters"] and row["n_new_labels"] == cut["n_clusters"]

    # each cluster is the cut of its source frame around its centre atom, with the core forces weighted 1
    active = ActiveSet.from_dataset(store.read_dataset("active_set.nc", 0))
    mtp0 = read_mtp(store.path("potential.mtp", 0))
    grades = atom_grades(mtp0, active, candidates)
    for j in range(clusters.sizes["config"]):
        k, centre = int(clusters["source_frame"].values[j]), int(clusters["centre_atom"].values[j])
        assert grades[k, centre] > 1.0
        x, z, cell, pbc = config_arrays(candidates, k)
        want = cut_cluster(x, z, cell, pbc, centre, 5.0, 2.5)
        n = want.n_atoms
        np.testing.assert_allclose(clusters["positions"].values[j, :n], want.positions, atol=1e-9)
        np.testing.assert_array_equal(clusters["force_weight"].values[j, :n], want.core.astype(float))
        assert clusters["energy_weight"].values[j] == 0.0

    # iteration 1: explored from whole periodic frames only, and fitted on the clusters' core forces
    pool = store.read_dataset("samples.nc", 1)
    assert pool["pbc"].values.all() and set(pool["n_atoms"].values) == {108}
    assert store.stage_done("fit", 1) is not None and store.metrics_row(1)["n_labels"] == 3 + cut["n_clusters"]


def test_the_cut_stage_alone_resumes_from_its_marker_and_keeps_to_the_label_budget(cut_campaign, prefect_api,
                                                                                    tmp_path):
    from flows.active_learning import Campaign
    from flows.config import load_config
    from hmc_core.mtp import read_mtp
    from hmc_core.uncertainty import ActiveSet

    tmp, _, _ = cut_campaign
    shutil.copytree(tmp / "run", tmp_path / "copy")
    store, ref = CampaignStore(tmp_path / "copy"), CampaignStore(tmp / "run")
    campaign = Campaign(load_config(store.config_path), store, ui_plots=False)
    potential = read_mtp(store.path("potential.mtp", 0))
    active = ActiveSet.from_dataset(store.read_dataset("active_set.nc", 0))
    frames = store.read_dataset("candidates.nc", 0)
    store.path("cut.done.json", 0).unlink()
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    lines: list[str] = []
    logger = logging.getLogger("flows.active_learning")
    logger.addHandler(handler)
    level, _ = logger.level, logger.setLevel(logging.INFO)
    try:
        clusters, done = campaign.cut(0, potential, active, frames, 3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    want = ref.stage_done("cut", 0)
    assert f"iteration 0: {want['n_clusters']} cluster(s) cut around {want['n_uncertain_atoms']} uncertain atom(s) " \
           f"of {frames.sizes['config']} frame(s)" in lines
    assert {k: v for k, v in done.items() if k != "cut_s"} == {k: v for k, v in want.items() if k != "cut_s"}
    assert store.stage_done("cut", 0) == done and done["cut_s"] > 0 and set(campaign.spent) == {"cut"}
    np.testing.assert_array_equal(clusters["positions"].values, ref.read_dataset("clusters.nc", 0)["positions"].values)
    spent = dict(campaign.spent)
    assert campaign.cut(0, potential, active, frames, 3)[1] == done and campaign.spent == spent  # the marker answers

    store.path("cut.done.json", 0).unlink()  # one label left in the budget (max_labels 100): one cluster
    clusters, done = campaign.cut(0, potential, active, frames, 99)
    assert done["n_clusters"] == clusters.sizes["config"] == 1 and want["n_clusters"] > 1


def test_cluster_cut_settings_are_checked_on_loading():
    data = {"labeling": {"labeler": "ase:lj", "cluster_cut": {"buffer": -1.0}}}
    with pytest.raises(ConfigError, match="buffer"):
        parse_config(data)
    with pytest.raises(ConfigError, match="cluster_cut"):
        parse_config({"labeling": {"labeler": "ase:lj", "cluster_cut": {"buffer": 2.0, "radius": 3.0}}})
    cfg = parse_config({"labeling": {"labeler": "ase:lj", "cluster_cut": {"buffer": 2.0}}})
    assert cfg.labeling.cluster_cut.buffer == 2.0 and "cluster_cut" not in cfg.labeling.label_settings().model_dump()
    assert parse_config({}).labeling.cluster_cut is None and "cluster_cut" not in parse_config({}).to_toml()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("buffer = 2.5", "buffer = 4.0"), "reaches half the cell's width"),
    (lambda t: t.replace('builtin = "fcc"\nelement = "Ar"\nlattice_constant = 5.30\nrepeat = [3, 3, 3]',
                         'builtin = "H2O"'), "is not periodic"),
])
def test_bad_cluster_cut_campaigns_are_refused_before_anything_starts(tmp_path, capsys, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(CRYSTAL.format(run="bad", buffer=2.5)))
    code = main(["run", str(path), "--dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err[-500:]
    assert err.startswith("error:") and err.strip().count("\n") == 0, err
    assert message in err and "Traceback" not in err and "[labeling] cluster_cut" in err
    assert not (tmp_path / "run").exists()
