"""The campaign's wiring (``flows/active_learning.py``: :class:`Campaign` and the ``active_learning`` flow), run
in this process on a real Prefect server with real stages (HF/STO-3G water labels by PySCF, MTP fits, HMC,
MaxVol selection), small enough to repeat for every mutant of ``make mutation``.

What is checked is what the flow must wire, each against the stage called directly with the same inputs and
random stream: the starting and test sets, every fit, every chain (start, temperature, seed), the selection,
the labels, the stage markers, the metrics row (every column recomputed here), DONE.json and final.mtp, the
log lines and the Prefect artifacts; then resume from stage markers, a finished campaign, larger budgets,
and each stop rule as the flow applies it.

The Prefect server: the one named by ``PESFLOW_TEST_PREFECT_API_URL`` (``bench/mutation.py`` starts one for all
mutants), else Prefect's test harness (a temporary server, once per module). Label cache: the folder named by
``PESFLOW_TEST_LABEL_CACHE``, else one per module, shared by the campaigns here (it answers repeated PySCF
calculations; a mutant that changes what is labeled just misses it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from flows.config import load_config
from flows.store import CampaignStore

CONFIG = """
name = "{name}"
seed = 11
[system]
builtin = "H2O"
n_start = 3
n_test = {n_test}
rattle = 0.08
test_rattle = 0.05
[potential]
level = 2
max_iter = {max_iter}
[hmc]
temperatures = [300.0, 900.0]
n_starts = 2
n_samples = 8
n_warmup = 2
save_every = 2
[selection]
threshold = {threshold}
break_threshold = {break_threshold}
budget = 2
[labeling]
method = "hf"
basis = "sto-3g"
density_fit = false
n_workers = 1
cache_dir = "{cache}"
[stopping]
max_iterations = {iterations}
max_labels = {max_labels}
stop_when_no_candidates = {stop_when_no_candidates}
{target}
"""
STAGES = ("label start set", "label test set", "fit", "explore", "select", "label")


@pytest.fixture(scope="module")
def tag() -> str:
    """A suffix making this module's campaign names unique: the Prefect server (and the artifacts it keeps) may be
    shared by many test processes (mutmut forks one per mutant from a process that imported this module)."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def label_cache(tmp_path_factory):
    return os.environ.get("PESFLOW_TEST_LABEL_CACHE") or str(tmp_path_factory.mktemp("label-cache"))


class Lines(logging.Handler):
    """The campaign's log lines (the Prefect run logger of the flow and of its tasks)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def messages(self, level=logging.INFO) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level and r.module == "active_learning"]


@contextlib.contextmanager
def captured(logger_name: str):
    """The lines logged to ``logger_name`` (all levels) while the block runs."""
    handler = Lines()
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture
def lines():
    """Log lines of a campaign's flow run (Prefect's run logger)."""
    with captured("prefect.flow_runs") as handler:
        yield handler


def write_config(tmp_path, cache, tag, name="wiring", iterations=1, n_test=2, threshold=1.0, max_labels=200,
                 stop_when_no_candidates="false", target="", max_iter=20):
    path = tmp_path / f"{name}.toml"
    path.write_text(CONFIG.format(name=f"{name}-{tag}", iterations=iterations, n_test=n_test, threshold=threshold,
                                  max_labels=max_labels, stop_when_no_candidates=stop_when_no_candidates,
                                  target=target, cache=cache, max_iter=max_iter,
                                  break_threshold=max(50.0, 10 * threshold)))
    return path


def run(path, directory, **kwargs) -> dict:
    from flows.active_learning import active_learning

    return active_learning(config_path=str(path), directory=str(directory), **kwargs)


def artifacts(key: str, flow_run_name: str):
    """The artifacts with ``key`` of the first flow run named ``flow_run_name``, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
    )
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name])),
                                     sort=FlowRunSort.START_TIME_ASC)
        assert runs, f"no flow run named {flow_run_name}"
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]),
                                                                    flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id])),
                                     sort=ArtifactSort.CREATED_DESC)


def same_potential(a, b) -> None:
    """Two MTPs with the same parameters (to round-off of the .mtp text)."""
    for name in ("radial_coeffs", "species_coeffs", "moment_coeffs"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)
    assert a.scaling == pytest.approx(b.scaling, rel=1e-12)


def same(a: xr.Dataset, b: xr.Dataset, names=("positions", "species", "cell", "pbc", "n_atoms")) -> None:
    for name in names:
        if name in a or name in b:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


# ---- one stage at a time, on a copy of a finished reference campaign ------------------------------------------
# Each test removes one stage's completion marker from a copy of the reference campaign and calls that Campaign
# method directly: it must write exactly the reference's outputs (same stage inputs, same random streams, same
# files) and the same marker. Under ``make mutation`` the reference is made once by the unmutated code
# (``make_reference``, called by bench/mutation.py; PESFLOW_TEST_REFERENCE_CAMPAIGN names it), so a mutant of one
# stage's wiring costs a second, not a whole campaign; otherwise it is the module's campaign below.
TIMES = ("fit_s", "explore_s", "select_s", "label_s", "pyscf_s", "wall_s")
# label provenance that depends on what the label cache held (a hit, a warm start, SCF cycles, timings), not on
# what the stage was asked: the labels themselves (energy, forces, status) are compared
LABEL_HISTORY = ("wall_time", "warm_start", "warm_start_rmsd", "cache_hit", "scf_cycles", "scf_ladder_step")


def make_reference(directory, cache: str, tag: str = "ref") -> Path:
    """A finished reference campaign (the module's CONFIG, two iterations) in ``directory``/run."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run(write_config(directory, cache, tag), directory / "run", ui_plots=False)
    return directory / "run"


@pytest.fixture(scope="module")
def reference(request) -> Path:
    made = os.environ.get("PESFLOW_TEST_REFERENCE_CAMPAIGN")
    if made:
        return Path(made)
    tmp = request.getfixturevalue("campaign")[0]
    return tmp / "run"


@pytest.fixture
def stage_copy(reference, prefect_api, tmp_path, tag):
    """(Campaign, store, reference store) on a copy of the reference campaign; the campaign is renamed so that
    its Prefect artifacts are this test's own."""
    from flows.active_learning import Campaign

    shutil.copytree(reference, tmp_path / "copy")
    store = CampaignStore(tmp_path / "copy")
    cfg = load_config(store.config_path)
    cfg = cfg.model_copy(update={"name": f"stage-{tag}"})
    return Campaign(cfg, store, ui_plots=False), store, CampaignStore(reference)


def same_marker(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if key in TIMES:
            assert got[key] > 0 or (key == "pyscf_s" and np.isnan(value)), key
        else:
            assert got[key] == pytest.approx(value, nan_ok=True), key


def same_files(a: CampaignStore, b: CampaignStore, names, iteration=None) -> None:
    for name in names:
        if name.endswith(".nc"):
            x, y = a.read_dataset(name, iteration), b.read_dataset(name, iteration)
            for var in set(x.variables) | set(y.variables):
                if var not in LABEL_HISTORY:
                    np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=f"{name}: {var}")
        elif name.endswith(".json"):
            x, y = a.read_json(name, iteration), b.read_json(name, iteration)
            for report in (x.get("fit_report"), y.get("fit_report")):  # the fit's timings differ, nothing else
                if report:
                    report.pop("fit_seconds"), report["optimizer"].pop("seconds")
            assert x == y, name
        else:
            assert a.path(name, iteration).read_bytes() == b.path(name, iteration).read_bytes(), name


def test_start_sets_stage(stage_copy):
    campaign, store, ref = stage_copy
    store.path("start.done.json").unlink()
    store.path("test_set.nc").unlink()
    campaign.start_sets()
    assert store.read_json("start.done.json")["n"] == ref.read_json("start.done.json")["n"]
    assert store.read_json("start.done.json")["wall_s"] > 0
    same_files(store, ref, ["test_set.nc"])
    assert store.read_dataset("test_set.nc").attrs["label_wall_s"] > 0
    x, y = store.read_labels(), ref.read_labels()
    for var in ("positions", "species", "energy", "forces", "iteration", "origin", "status"):
        np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=var)
    assert set(campaign.spent) == {"label start set", "label test set"}
    spent = dict(campaign.spent)
    campaign.start_sets()  # both answered by the store now
    assert campaign.spent == spent


@pytest.mark.parametrize("it", [0, 1])
def test_fit_stage(stage_copy, it):
    campaign, store, ref = stage_copy
    store.path("fit.done.json", it).unlink()
    potential, active, done = campaign.fit(it, store.training_labels(it))
    same_marker(done, ref.stage_done("fit", it))
    same_marker(store.stage_done("fit", it), ref.stage_done("fit", it))
    same_files(store, ref, ["potential.mtp", "potential.json", "active_set.nc"], it)
    assert potential.describe() == ref.read_json("potential.json", it)["potential"]
    np.testing.assert_array_equal(active.to_dataset()[list(active.to_dataset().data_vars)[0]].values,
                                  store.read_dataset("active_set.nc", it)[list(active.to_dataset().data_vars)[0]]
                                  .values)
    assert set(campaign.spent) == {"fit"}
    again = campaign.fit(it, store.training_labels(it))[2]  # the marker answers: nothing refitted
    assert again == store.stage_done("fit", it) and set(campaign.spent) == {"fit"}


def _iteration0(campaign, store):
    from hmc_core.mtp import read_mtp
    from hmc_core.uncertainty import ActiveSet

    potential = read_mtp(store.path("potential.mtp", 0))
    active = ActiveSet.from_dataset(store.read_dataset("active_set.nc", 0))
    return potential, active


def test_explore_stage(stage_copy):
    from prefect.task_runners import ThreadPoolTaskRunner

    campaign, store, ref = stage_copy
    store.path("explore.done.json", 0).unlink()
    potential, active = _iteration0(campaign, store)
    with ThreadPoolTaskRunner(max_workers=2) as runner:
        campaign.runner = runner
        pool, done = campaign.explore(0, potential, active, store.training_labels(0))
    same_marker(done, ref.stage_done("explore", 0))
    same_marker(store.stage_done("explore", 0), ref.stage_done("explore", 0))
    same_files(store, ref, ["samples.nc", "trajectories.nc"], 0)
    np.testing.assert_array_equal(pool["positions"].values, ref.read_dataset("samples.nc", 0)["positions"].values)
    assert set(campaign.spent) == {"explore"}


def test_select_stage(stage_copy):
    campaign, store, ref = stage_copy
    store.path("select.done.json", 0).unlink()
    potential, active = _iteration0(campaign, store)
    candidates, done = campaign.select(0, potential, active, store.read_dataset("samples.nc", 0),
                                       int(store.metrics_row(0)["n_labels"]))
    same_marker(done, ref.stage_done("select", 0))
    same_marker(store.stage_done("select", 0), ref.stage_done("select", 0))
    same_files(store, ref, ["candidates.nc", "pool_summary.nc"], 0)
    np.testing.assert_array_equal(candidates["positions"].values,
                                  ref.read_dataset("candidates.nc", 0)["positions"].values)
    assert set(campaign.spent) == {"select"}


def test_label_stage(stage_copy):
    campaign, store, ref = stage_copy
    store.path("label.done.json", 0).unlink()
    done = campaign.label(0, store.read_dataset("candidates.nc", 0))
    same_marker(done, ref.stage_done("label", 0))
    same_marker(store.stage_done("label", 0), ref.stage_done("label", 0))
    x, y = store.read_labels(), ref.read_labels()
    for var in ("positions", "species", "energy", "forces", "iteration", "origin", "status"):
        np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=var)
    assert set(campaign.spent) == {"label"}


def test_labels_on_dask_workers_come_back_in_order_one_batch_per_worker(stage_copy):
    """``[executor] kind = "dask"``: one label task per batch (n_workers batches), each labeling in its worker with
    one process, the batches concatenated in input order."""
    campaign, store, ref = stage_copy
    start = ref.read_labels().isel(config=slice(0, 3))

    def too_long(signum, frame):  # a wiring fault can leave a Dask future unresolved forever
        raise TimeoutError("labels on Dask workers did not come back within 60 s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)
    try:
        _dask_labels(campaign, store, start)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _dask_labels(campaign, store, start) -> None:
    from distributed import LocalCluster

    from flows.active_learning import task_runner

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        campaign.config = campaign.config.with_overrides(executor={"kind": "dask", "address": cluster.scheduler_address,
                                                                   "n_workers": 2})
        with task_runner(campaign.config, store) as runner:
            campaign.runner = runner
            title = f"dask labels {campaign.config.name}"
            labels = campaign.label_set(start.drop_vars(["energy", "forces"]), title)
            one = campaign.label_set(start.isel(config=[2]).drop_vars(["energy", "forces"]), f"one {title}")
    np.testing.assert_array_equal(labels["positions"].values, start["positions"].values)
    np.testing.assert_array_equal(labels["energy"].values, start["energy"].values)
    np.testing.assert_array_equal(one["energy"].values, start["energy"].values[2:])
    assert task_run_names(title) == [f"{title} [1/2]", f"{title} [2/2]"]
    assert task_run_names(f"one {title}") == [f"one {title}"]


def task_run_names(prefix: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        ran = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=prefix)))
    return sorted(t.name for t in ran if t.name.startswith(prefix + " [") or t.name == prefix)


@pytest.fixture
def module_lines():
    """Log lines of flows.active_learning outside a flow run (Campaign methods called directly)."""
    with captured("flows.active_learning") as handler:
        yield handler


def keyed(key: str) -> list:
    """The artifacts with ``key``, newest first (stage tests make them outside a flow run; keys are unique)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                     sort=ArtifactSort.CREATED_DESC)


def rmse_line(it: int, row: dict) -> str:
    stop = f" → stop: {row['stop_reason']}" if row["stop_reason"] else ""
    return (f"iteration {it}: {int(row['n_labels'])} labels, test force RMSE "
            f"{row['test_force_rmse_eV_per_A']:.4f} eV/Å, energy RMSE {row['test_energy_rmse_meV_per_atom']:.2f} "
            f"meV/atom{stop}")


def test_iterations_from_markers_record_the_reference_rows_and_publish_them(stage_copy, module_lines):
    from prefect.artifacts import Artifact, create_progress_artifact

    campaign, store, ref = stage_copy
    name = campaign.config.name
    store.metrics_path.unlink()
    campaign.progress_id = create_progress_artifact(0.0, key=f"{name}-progress")
    assert campaign.iteration(0) is None
    assert Artifact.get(f"{name}-progress").data == 50.0  # 1 of max_iterations + 1 = 2 iterations done
    assert campaign.iteration(1) == "iteration budget (1 label rounds); not converged"
    assert Artifact.get(f"{name}-progress").data == 100.0
    assert campaign.spent == {}  # every stage answered by its marker
    x, y = store.read_metrics(), ref.read_metrics()
    assert set(x.data_vars) == set(y.data_vars)
    for var in x.data_vars:
        if var != "iteration_s":
            np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=var)
    assert (x["iteration_s"].values > 0).all()
    assert campaign.iteration(1) == "iteration budget (1 label rounds); not converged"  # a recorded row is final

    info = module_lines.messages()
    assert info == [rmse_line(0, store.metrics_row(0)), rmse_line(1, store.metrics_row(1))]
    table = keyed(f"{name}-metrics")
    assert len(table) == 2 and table[0].description == f"campaign {name}: metrics per iteration"
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    assert [r["iteration"] for r in rows] == [0, 1]
    markdown = keyed(f"{name}-iteration")
    assert [a.description for a in markdown] == [f"campaign {name}: iteration 1", f"campaign {name}: iteration 0"]
    assert "iteration budget (1 label rounds)" in markdown[0].data and keyed(f"{name}-plots") == []
    assert not module_lines.messages(logging.WARNING)


def test_published_plots_of_an_iteration(stage_copy, module_lines):
    campaign, store, ref = stage_copy
    name = campaign.config.name
    campaign.ui_plots = True  # the plots artifact, as a campaign run with plots publishes it
    campaign.publish(1, store.metrics_row(1), store.read_metrics())
    [plots] = keyed(f"{name}-plots")
    assert plots.description == f"campaign {name}: learning curve and parity, iteration 1"
    assert plots.data.count("](data:image/png;base64,") == 2
    assert not module_lines.messages(logging.WARNING)


def test_a_finished_reference_returns_its_summary(stage_copy, module_lines):
    campaign, store, ref = stage_copy
    summary = campaign.run()
    assert summary["reason"] == ref.read_json("DONE.json")["reason"] and summary["finished"]
    assert campaign.spent == {} and summary["n_labels"] == ref.read_labels().sizes["config"]
    assert module_lines.messages() == [f"campaign in {store.root} already finished ({summary['reason']})"]


def test_a_run_from_markers_finishes_like_the_reference(stage_copy, module_lines):
    from prefect.artifacts import Artifact

    campaign, store, ref = stage_copy
    name = campaign.config.name
    for done in ("DONE.json", "metrics.nc", "final.mtp", "final.json"):
        store.path(done).unlink()
    summary = campaign.run()
    reason = "iteration budget (1 label rounds); not converged"
    assert store.read_json("DONE.json") == ref.read_json("DONE.json") == {"reason": reason, "iterations": 2}
    assert store.path("final.mtp").read_bytes() == ref.path("potential.mtp", 1).read_bytes()
    assert store.read_json("final.json") == store.read_json("potential.json", 1)
    assert summary["reason"] == reason and summary["n_labels"] == ref.read_labels().sizes["config"]
    assert campaign.spent == {}
    progress = Artifact.get(f"{name}-progress")
    assert progress.data == 100.0 and progress.description == f"campaign {name}: finished ({reason})"
    info = module_lines.messages()
    assert info[0] == f"campaign {name} in {store.root}"
    assert info[-1] == f"campaign finished after 2 iteration(s): {reason}"


@pytest.fixture(scope="module")
def campaign(prefect_api, label_cache, tag, tmp_path_factory):
    """One finished two-iteration campaign (iteration 0 explores, selects and labels; iteration 1 fits and stops
    at the iteration budget), with the log lines it wrote."""
    tmp = tmp_path_factory.mktemp("wiring")
    with captured("prefect.flow_runs") as handler:
        summary = run(write_config(tmp, label_cache, tag), tmp / "run", ui_plots=False)
    return tmp, summary, handler, f"wiring-{tag}"


def test_one_campaign_end_to_end(campaign):
    """Everything the module's campaign must have produced, in one test: mutation testing attributes the
    campaign (a module fixture) to the first test that uses it, so its checks all live here."""
    check_every_stage_gets_its_inputs_and_its_outputs_are_stored(campaign)
    check_metrics_rows_hold_what_each_stage_measured(campaign)
    check_the_log_says_what_each_stage_did(campaign)
    check_the_prefect_ui_gets_progress_metrics_iteration_and_plots(campaign)
    check_stage_task_runs_are_named_for_the_ui(campaign)


def check_every_stage_gets_its_inputs_and_its_outputs_are_stored(campaign):
    from flows.systems import load_system, rattled_set
    from hmc_core.mtp import read_mtp
    from hmc_core.uncertainty import ActiveSet
    from tasks.explore import ExploreInputs, plan_chains, run_explore
    from tasks.fit import run_fit
    from tasks.label import label_configurations
    from tasks.select import SelectInputs, run_select

    tmp, summary, _, name = campaign
    cfg = load_config(tmp / "wiring.toml")
    store = CampaignStore(tmp / "run")
    labels = store.read_labels()

    # starting set and test set: the configured rattles with their own streams, labeled by PySCF
    system = load_system("H2O")
    start = rattled_set(system, 3, 0.08, cfg.system.min_distance, cfg.stream("start_set"))
    test_set = store.read_dataset("test_set.nc")
    same(labels.isel(config=slice(0, 3)), start)
    same(test_set, rattled_set(system, 2, 0.05, cfg.system.min_distance, cfg.stream("test_set")))
    n_sel = labels.sizes["config"] - 3
    assert n_sel >= 1
    assert list(labels["iteration"].values) == [-1, -1, -1] + [0] * n_sel
    assert list(labels["origin"].values) == ["start"] * 3 + ["candidate"] * n_sel
    assert test_set.attrs["label_wall_s"] > 0
    assert store.read_json("start.done.json")["n"] == 3 and store.read_json("start.done.json")["wall_s"] > 0
    direct = label_configurations(start, cfg.labeling.label_settings())
    np.testing.assert_allclose(labels["energy"].values[:3], direct["energy"].values, rtol=0, atol=1e-7)

    # iteration 0: the fit on the start set, with the fit stream
    fit = run_fit(labels.isel(config=slice(0, 3)), cfg.potential, cfg.stream("fit"))
    mtp0 = read_mtp(store.path("potential.mtp", 0))
    same_potential(mtp0, fit.potential)
    meta = store.read_json("potential.json", 0)
    assert meta["iteration"] == 0 and meta["potential"] == fit.potential.describe()
    assert meta["fit_report"]["optimizer"]["iterations"] == fit.report["optimizer"]["iterations"]
    active0 = ActiveSet.from_dataset(store.read_dataset("active_set.nc", 0))
    np.testing.assert_allclose(active0.to_dataset()["A"].values if "A" in active0.to_dataset() else 0,
                               fit.active_set.to_dataset()["A"].values if "A" in fit.active_set.to_dataset() else 0)
    marker = store.stage_done("fit", 0)
    assert marker["n_basis"] == mtp0.n_basis and marker["fit_s"] > 0
    assert marker["fit_capped"] == int(fit.report["optimizer"]["iterations"] >= 20)

    # iteration 0: every chain of the plan, at its own temperature and seed, in plan order
    plan = plan_chains(cfg.hmc, 3, cfg.stream("chain_starts", 0))
    assert len(plan) == 4
    pool = store.read_dataset("samples.nc", 0)
    traces = store.read_dataset("trajectories.nc", 0)
    assert traces.sizes["chain"] == 4
    offset, stopped = 0, 0
    for c, chain in enumerate(plan):
        one = run_explore(ExploreInputs(labels.isel(config=[chain.start]), chain.temperature, mtp0, active0, 50.0),
                          cfg.hmc, cfg.stream("chain", 0, 0, *chain.key))
        n = one.frames.sizes["config"]
        part = pool.isel(config=slice(offset, offset + n))
        same(part, one.frames)
        np.testing.assert_array_equal(part["grade"].values, one.frames["grade"].values)
        assert set(part["chain"].values) == {c} and set(part["start"].values) == {chain.start}
        assert set(part["temperature"].values) == {chain.temperature}
        np.testing.assert_array_equal(traces["potential_energy"].values[c], one.trace["potential_energy"].values[0])
        offset += n
        stopped += one.stopped_early
    assert offset == pool.sizes["config"]
    explored = store.stage_done("explore", 0)
    ran = np.isfinite(traces["potential_energy"].values)
    assert explored["n_pool"] == offset and explored["n_chains"] == 4 and explored["chains_stopped"] == stopped
    assert explored["acceptance"] == pytest.approx(traces["accepted"].values[ran].mean(), abs=1e-12)
    assert explored["max_grade"] == pytest.approx(np.nanmax(pool["grade"].values), abs=1e-12)
    assert explored["explore_s"] > 0

    # iteration 0: the selection from that pool, with the label budget left, then its labels
    sel = run_select(SelectInputs(pool, mtp0, active0, max_new=200 - 3), cfg.selection, cfg.stream("select", 0))
    candidates = store.read_dataset("candidates.nc", 0)
    same(candidates, sel.selected)
    assert candidates.sizes["config"] == n_sel
    xr.testing.assert_allclose(store.read_dataset("pool_summary.nc", 0), sel.summary)
    selected = store.stage_done("select", 0)
    assert (selected["n_selected"], selected["n_above_threshold"], selected["n_above_break"],
            selected["n_invalid"]) == (n_sel, sel.n_above_threshold, sel.n_above_break, sel.n_invalid)
    same(labels.isel(config=slice(3, None)), candidates)
    labeled = store.stage_done("label", 0)
    assert labeled["n_new_labels"] == n_sel and labeled["n_failed"] == 0 and labeled["label_s"] > 0
    assert labeled["pyscf_s"] == pytest.approx(float(np.nansum(labels["wall_time"].values[3:])))

    # iteration 1: the fit on all labels; the iteration budget stops before exploring
    mtp1 = read_mtp(store.path("potential.mtp", 1))
    fit1 = run_fit(labels, cfg.potential, cfg.stream("fit"))
    same_potential(mtp1, fit1.potential)
    for stage in ("explore", "select", "label"):
        assert store.stage_done(stage, 1) is None
    assert store.path("final.mtp").read_bytes() == store.path("potential.mtp", 1).read_bytes()
    assert store.read_json("final.json") == store.read_json("potential.json", 1)
    done = store.read_json("DONE.json")
    assert done == {"reason": "iteration budget (1 label rounds); not converged", "iterations": 2}


def check_metrics_rows_hold_what_each_stage_measured(campaign):
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import prediction_errors

    tmp, summary, _, name = campaign
    store = CampaignStore(tmp / "run")
    metrics = store.read_metrics()
    assert list(metrics["iteration"].values) == [0, 1]
    labels, test_set = store.read_labels(), store.read_dataset("test_set.nc")
    n_all = labels.sizes["config"]
    for it, n_labels in ((0, 3), (1, n_all)):
        row = store.metrics_row(it)
        mtp = read_mtp(store.path("potential.mtp", it))
        assert row["n_labels"] == n_labels
        for key, value in prediction_errors(mtp, test_set).items():
            assert row[f"test_{key}"] == pytest.approx(value, rel=1e-9), key
        for key, value in prediction_errors(mtp, labels.isel(config=slice(0, n_labels))).items():
            assert row[f"train_{key}"] == pytest.approx(value, rel=1e-9), key
        for stage in ("fit", "explore", "select", "label"):
            for key, value in (store.stage_done(stage, it) or {}).items():
                assert row[key] == pytest.approx(value), (stage, key)
        assert row["iteration_s"] > 0
    assert store.metrics_row(0)["stop_reason"] == ""
    assert store.metrics_row(1)["stop_reason"] == "iteration budget (1 label rounds); not converged"
    assert np.isnan(store.metrics_row(1)["n_pool"])

    assert summary["reason"] == "iteration budget (1 label rounds); not converged" and summary["finished"]
    assert summary["n_labels"] == n_all and summary["final_potential"] == str(store.path("final.mtp"))
    assert set(summary["this_run_s"]) == set(STAGES)
    assert all(v > 0 for v in summary["this_run_s"].values())
    assert summary["flow_body_s"] >= sum(summary["this_run_s"].values())


def check_the_log_says_what_each_stage_did(campaign):
    tmp, _, handler, name = campaign
    store = CampaignStore(tmp / "run")
    f0, e0, s0 = (store.stage_done(s, 0) for s in ("fit", "explore", "select"))
    f1 = store.stage_done("fit", 1)
    pool = store.read_dataset("samples.nc", 0)
    expected = [
        f"campaign {name} in {store.root}",
        "labeled 3 starting configurations (3 ok)",
        f"iteration 0: fitted MTP level 2 on 3 labels in {f0['fit_s']:.1f} s",
        f"iteration 0: 4 HMC chains, {e0['n_pool']} frames, {e0['chains_stopped']} chains stopped at the break "
        f"grade, max grade {e0['max_grade']:.3g}",
        f"iteration 0: {s0['n_above_threshold']} of {pool.sizes['config']} frames above grade 1, "
        f"{s0['n_selected']} selected",
    ]
    info = handler.messages()
    for line in expected:
        assert line in info, (line, info)
    assert any(m.startswith(f"iteration 0: labeled {s0['n_selected']} configuration(s) (0 failed) in ")
               and m.endswith(" s")
               for m in info), info
    n_all = store.read_labels().sizes["config"]
    assert f"iteration 1: fitted MTP level 2 on {n_all} labels in {f1['fit_s']:.1f} s" in info
    assert info[-1] == "campaign finished after 2 iteration(s): iteration budget (1 label rounds); not converged"
    capped = [m for m in handler.messages(logging.WARNING) if "iteration cap" in m]
    assert capped == [f"iteration {it}: the fit stopped at its iteration cap ([potential] max_iter = 20) before "
                      "converging; raise max_iter for a converged fit"
                      for it in (0, 1) if store.stage_done("fit", it)["fit_capped"]]


def check_the_prefect_ui_gets_progress_metrics_iteration_and_plots(campaign):
    tmp, _, _, name = campaign
    run_name = f"campaign-{name}"  # the flow run's name (the artifacts below are those of that run)
    [progress] = artifacts(f"{name}-progress", run_name)
    assert progress.data == 100.0 and progress.type == "progress"
    assert progress.description == (f"campaign {name}: finished (iteration budget (1 label rounds); "
                                    "not converged)")
    table = artifacts(f"{name}-metrics", run_name)
    assert len(table) == 2 and table[0].type == "table"
    assert table[0].description == f"campaign {name}: metrics per iteration"
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    assert [r["iteration"] for r in rows] == [0, 1]
    iteration = artifacts(f"{name}-iteration", run_name)
    assert [a.description for a in iteration] == [f"campaign {name}: iteration 1", f"campaign {name}: iteration 0"]
    assert "iteration budget" in iteration[0].data
    assert artifacts(f"{name}-plots", run_name) == []  # ui_plots=False (plots on: the error-target campaign)
    assert CampaignStore(tmp / "run").read_json("DONE.json")["iterations"] == 2


def test_resume_from_markers_recomputes_nothing_and_records_the_same_rows(campaign, label_cache):
    tmp, summary, _, name = campaign
    copy = tmp / "resumed"
    shutil.copytree(tmp / "run", copy)
    (copy / "metrics.nc").unlink()  # DONE.json stays: without metrics.nc there is no record of why it stopped
    (copy / "final.mtp").unlink()
    again = run(tmp / "wiring.toml", copy, ui_plots=False)
    assert again["this_run_s"] == {}  # every stage answered by its marker
    a, b = CampaignStore(tmp / "run").read_metrics(), CampaignStore(copy).read_metrics()
    for var in a.data_vars:
        if var != "iteration_s":
            np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)
    assert (copy / "final.mtp").read_bytes() == (tmp / "run" / "final.mtp").read_bytes()
    assert again["reason"] == summary["reason"]


def test_a_finished_campaign_is_not_rerun_and_larger_budgets_continue_it(campaign, lines):
    tmp, summary, _, name = campaign
    copy = tmp / "continued"
    shutil.copytree(tmp / "run", copy)
    before = (copy / "metrics.nc").read_bytes()
    again = run(tmp / "wiring.toml", copy)
    assert again["this_run_s"] == {} and (copy / "metrics.nc").read_bytes() == before
    assert any(m.startswith(f"campaign in {copy} already finished (iteration budget") for m in lines.messages())

    # the nightly continuation: one more label round
    more = run(tmp / "wiring.toml", copy, more_iterations=1, ui_plots=False)
    store = CampaignStore(copy)
    assert list(store.read_metrics()["iteration"].values) == [0, 1, 2]
    assert store.metrics_row(1)["stop_reason"] == ""  # the lifted budget stop is replaced
    assert store.metrics_row(2)["stop_reason"] == "iteration budget (2 label rounds); not converged"
    assert store.read_json("DONE.json") == {"reason": "iteration budget (2 label rounds); not converged",
                                            "iterations": 3}
    assert set(more["this_run_s"]) == {"fit", "explore", "select", "label"}
    assert store.path("final.mtp").read_bytes() == store.path("potential.mtp", 2).read_bytes()
    n_before = CampaignStore(tmp / "run").read_labels().sizes["config"]
    assert store.read_labels().sizes["config"] == n_before + store.stage_done("label", 1)["n_new_labels"]


def test_each_stop_rule_stops_the_flow_where_it_should(prefect_api, label_cache, tag, tmp_path):
    # error target: reached after the first fit, so nothing is explored; without a test set it is never checked
    cfg = write_config(tmp_path, label_cache, tag, name="target", iterations=3, target="force_rmse_target = 100.0")
    out = run(cfg, tmp_path / "target", ui_plots=True)
    store = CampaignStore(tmp_path / "target")
    assert out["reason"].startswith("error target reached: test force RMSE ")
    [plots] = artifacts(f"target-{tag}-plots", f"campaign-target-{tag}")
    assert plots.description == f"campaign target-{tag}: learning curve and parity, iteration 0"
    assert plots.data.count("](data:image/png;base64,") == 2
    assert list(store.read_metrics()["iteration"].values) == [0] and store.stage_done("explore", 0) is None

    # label budget: 3 start labels + at most 1 selected, then the budget stops iteration 1; the configuration is
    # passed as the CLI passes it (validated, not a path), and the flow run is still named after the campaign
    from flows.active_learning import active_learning

    cfg = write_config(tmp_path, label_cache, tag, name="budget", iterations=5, max_labels=4, n_test=0)
    out = active_learning(config=load_config(cfg), directory=str(tmp_path / "budget"), ui_plots=False)
    assert flow_runs(f"campaign-budget-{tag}")
    store = CampaignStore(tmp_path / "budget")
    assert out["reason"] == "label budget (4 labels); not converged"
    assert store.stage_done("select", 0)["n_selected"] == 1 and store.read_labels().sizes["config"] == 4
    assert not store.has("test_set.nc") and "test_force_rmse_eV_per_A" not in store.read_metrics()

    # nothing above the selection grade: converged after selecting, nothing labeled
    cfg = write_config(tmp_path, label_cache, tag, name="calm", iterations=3, threshold=1e9,
                       stop_when_no_candidates="true", n_test=0)
    out = run(cfg, tmp_path / "calm", ui_plots=False)
    store = CampaignStore(tmp_path / "calm")
    assert out["reason"].startswith("converged: no explored frame above grade 1000000000.0")
    assert store.stage_done("select", 0)["n_selected"] == 0 and store.stage_done("label", 0) is None
    assert list(store.read_metrics()["iteration"].values) == [0]
    assert store.read_json("DONE.json")["iterations"] == 1


def test_stage_tasks_are_named_for_the_ui_and_never_cached():
    from prefect.cache_policies import NO_CACHE

    from flows.active_learning import named
    from tasks.fit import fit_task

    task = named(fit_task, "fit iteration 7 (9 labels)")
    assert task.task_run_name == "fit iteration 7 (9 labels)" and task.cache_policy is NO_CACHE
    assert task.fn is fit_task.fn


def check_stage_task_runs_are_named_for_the_ui(campaign):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    tmp, _, _, name = campaign
    store = CampaignStore(tmp / "run")
    n_sel = store.stage_done("select", 0)["n_selected"]
    with get_client(sync_client=True) as client:
        [flow_run] = client.read_flow_runs(  # the first run of that name: resumed runs below reuse the name
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"campaign-{name}"])),
            sort=FlowRunSort.START_TIME_ASC, limit=1)
        ran = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id])))
    # Prefect may file task runs of the stage tests (called outside any flow) under this run too: only those
    # that started while the campaign's flow run ran are its own
    names = {t.name for t in ran if flow_run.start_time <= t.start_time <= flow_run.end_time}
    hmc = [f"HMC iteration 0 start {c.start} at {c.temperature:g} K" for c in chains(tmp)]
    assert names == set(["label start set (3)", "label test set (2)", "fit iteration 0 (3 labels)", *hmc,
                            "select iteration 0", f"label iteration 0 ({n_sel} configurations)",
                            f"fit iteration 1 ({3 + n_sel} labels)"])


def chains(tmp):
    from tasks.explore import plan_chains

    cfg = load_config(tmp / "wiring.toml")
    return plan_chains(cfg.hmc, 3, cfg.stream("chain_starts", 0))


def flow_runs(name: str, after=None) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterStartTime

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[name]), start_time=FlowRunFilterStartTime(after_=after) if after else None))


def test_a_flow_run_with_an_unreadable_configuration_is_named_so(prefect_api, tmp_path):
    import datetime

    from flows.active_learning import active_learning
    from flows.config import ConfigError

    before = datetime.datetime.now(datetime.UTC)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[stopping]\nmax_iterations = -1\n")
    with pytest.raises(ConfigError, match="max_iterations"):
        active_learning(config_path=str(bad), directory=str(tmp_path / "bad"))
    assert len(flow_runs("campaign-invalid-config", after=before)) == 1


@pytest.mark.parametrize(("parameters", "name"), [
    ({"config": {"name": "from-a-deployment"}}, "campaign-from-a-deployment"),  # parameters as the API stores them
    ({"config_path": None}, "campaign-water-hf"),  # the embedded default campaign
    ({"config_path": "/nonexistent/campaign.toml"}, "campaign-invalid-config"),
])
def test_flow_run_names_from_every_form_of_the_parameters(monkeypatch, parameters, name):
    import prefect.runtime.flow_run as flow_run

    from flows.active_learning import _campaign_run_name

    monkeypatch.setitem(flow_run.FIELDS, "parameters", lambda: parameters)
    assert _campaign_run_name() == name


def test_a_failing_run_leaves_its_progress_at_the_start(stage_copy):
    from prefect.artifacts import Artifact

    campaign, store, ref = stage_copy
    name = campaign.config.name
    for done in ("DONE.json", "metrics.nc"):
        store.path(done).unlink()
    store.path("potential.mtp", 0).write_text("not an MTP file\n")  # the fit marker stays: reading it fails
    with pytest.raises(Exception):  # noqa: B017 - whatever the MTP reader raises
        campaign.run()
    progress = Artifact.get(f"{name}-progress")
    assert progress.data == 0.0 and progress.description == f"campaign {name}: iterations done"
    assert not store.done_path.exists()
