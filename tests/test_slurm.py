"""``[executor] kind = "slurm"`` (issue 20) against a real one-node SLURM (munged + slurmctld + slurmd started by
tests/slurm/start.sh, stopped by stop.sh): real PySCF labels, real Prefect, nothing mocked.

Tests marked ``slurm`` (``make test-slurm``; CI installs slurm-wlm and munge, and a missing SLURM fails there):
a two-iteration campaign whose labels and chains run as SLURM jobs (seen by ``sacct --completion``), with labels
bit-identical to the same campaign run locally; a ``scancel`` of the running label jobs mid-campaign, then
completion with nothing lost and nothing recomputed; big labels on their own jobs; an unknown partition, a job
that cannot start, a scheduler that does not answer, each a clear error. The unmarked tests (config keys, label
batches, the job script) need no SLURM and run in the default selection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import missing, require_module
from test_campaign import TINY

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
from local_slurm import INSTALL_FIX, finished_jobs, local_slurm, running_jobs, slurm_missing  # noqa: E402

BIN = Path(sys.executable).parent
LABEL_VARS = ("positions", "species", "energy", "forces", "status", "origin", "iteration")
SLURM_JOBS = {"n_workers": 2, "memory": "1GB", "walltime": "00:20:00", "job_start_timeout_s": 120}


def campaign_toml(tmp_path: Path, name: str, kind: str = "slurm", n_start: int = 4, **executor) -> Path:
    """The tiny HF/STO-3G water campaign of tests/test_campaign.py (2 label rounds) with ``n_start`` starting
    configurations, selection threshold 1.02 (so that 12 starting labels still leave candidates) and
    ``[executor] kind = kind`` plus the ``executor`` keys."""
    path = tmp_path / f"{name}.toml"
    text = TINY.format(name=name, iterations=1, executor=kind, workers=1).replace("n_start = 4", f"n_start = {n_start}")
    text = text.replace("threshold = 1.1", "threshold = 1.02")  # candidates in both label rounds
    path.write_text(text + "".join(f"{k} = {json.dumps(v)}\n" for k, v in executor.items()))
    return path


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The private SLURM (state directory); skipped here, a failure under CI, when SLURM is not installed."""
    why = slurm_missing()
    if why:
        missing(why, INSTALL_FIX)
    require_module("dask_jobqueue")
    with local_slurm(tmp_path_factory.mktemp("slurm")) as state:
        yield state


def run_campaign(config: Path, directory: Path) -> dict:
    from flows.active_learning import active_learning

    return active_learning(config_path=str(config), directory=str(directory), ui_plots=False)


def labels_of(directory: Path) -> xr.Dataset:
    from flows.store import CampaignStore

    return CampaignStore(directory).read_labels()


@pytest.fixture(scope="module")
def local_reference(slurm, prefect_api, tmp_path_factory):
    """The campaign of the SLURM tests (12 starting configurations) run with the default executor."""
    tmp = tmp_path_factory.mktemp("local")
    run_campaign(campaign_toml(tmp, "local-ref", "default", n_start=12), tmp / "campaign")
    return labels_of(tmp / "campaign")


def same_labels(x: xr.Dataset, y: xr.Dataset) -> None:
    for var in LABEL_VARS:
        np.testing.assert_array_equal(x[var].values, y[var].values, err_msg=var)


# ---- on the real SLURM -----------------------------------------------------------------------------------------
@pytest.mark.slurm
def test_campaign_on_slurm_labels_as_jobs_identical_to_local(slurm, prefect_api, local_reference, tmp_path):
    name = "slurm-two"
    summary = run_campaign(campaign_toml(tmp_path, name, n_start=12, **SLURM_JOBS), tmp_path / "campaign")
    assert summary["finished"] and summary["reason"].startswith("iteration budget")
    labels = labels_of(tmp_path / "campaign")
    same_labels(labels, local_reference)  # bit for bit: one thread per label, same warm-start plan
    assert (labels["origin"].values.astype(str) == "candidate").sum() >= 1
    jobs = finished_jobs(f"pesflow-{name}")
    assert len(jobs) >= 2, jobs  # the two worker jobs, ended (cancelled) when the campaign closed them
    assert {j["Partition"] for j in jobs} == {"debug"}
    assert not running_jobs(f"pesflow-{name}")
    assert list((tmp_path / "campaign" / "slurm-logs").glob("*.err"))  # every job wrote its log
    # which job labeled what: every label batch (starting set, test set, 2 candidate rounds) names a job sacct lists
    tasks = recorded_tasks(tmp_path / "campaign")
    assert {t["job"] for t in tasks} <= {j["JobID"] for j in jobs}
    assert sum(t["n"] for t in tasks) == labels.sizes["config"] + 4  # + the 4 test-set labels


@pytest.mark.slurm
def test_scancel_of_running_label_jobs_loses_and_recomputes_nothing(slurm, prefect_api, local_reference, tmp_path):
    """Both label jobs of the starting set are cancelled as soon as its first label is in the cache; the watcher
    submits replacements, Dask runs the batches again, the cache answers what had finished."""
    from flows.store import CampaignStore

    name = "slurm-kill"
    directory = tmp_path / "campaign"
    cache = CampaignStore(directory).label_cache_dir(None)
    seen: dict = {}

    def kill_when_labels_appear():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            entries = list(cache.glob("*/*.npz")) if cache.exists() else []
            if entries:
                seen["jobs"] = running_jobs(f"pesflow-{name}")
                subprocess.run(["scancel", *seen["jobs"]], check=True, timeout=30)
                seen["entries"] = {p: p.stat().st_mtime_ns for p in entries}
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_labels_appear, daemon=True)
    killer.start()
    summary = run_campaign(campaign_toml(tmp_path, name, n_start=12, **SLURM_JOBS), directory)
    killer.join(timeout=5)
    assert summary["finished"]
    assert seen.get("jobs"), "no running label job was found to cancel"
    same_labels(labels_of(directory), local_reference)
    # nothing recomputed: every cache entry that existed at the kill is the same file, untouched
    assert all(p.stat().st_mtime_ns == t for p, t in seen["entries"].items())
    labels = labels_of(directory)
    start = labels["origin"].values.astype(str) == "start"
    assert labels["cache_hit"].values[start].sum() >= 1  # answered by the cache when the batch ran again
    states = {j["JobID"]: j["State"] for j in finished_jobs(f"pesflow-{name}")}
    assert all(states.get(job) == "CANCELLED" for job in seen["jobs"]), states
    assert len(states) >= len(seen["jobs"]) + 2  # the replacements ran too
    tasks = recorded_tasks(directory)
    assert {t["job"] for t in tasks} <= set(states)
    assert any(t["title"].startswith("label start set") and t["job"] not in seen["jobs"] for t in tasks)


@pytest.mark.slurm
def test_big_labels_run_on_their_own_jobs(slurm, prefect_api, tmp_path):
    """Labels at or above ``big_label_basis`` basis functions (here ethanol's 21 in STO-3G, against water's 7) go to
    a separate big-label job with ``big_label_cores`` threads. On this 2-CPU node the big job has 1 CPU (one
    small job holds the other); the job script of a 4-CPU big job is checked in test_job_scripts."""
    from ase.build import molecule

    from flows.config import ExecutorConfig, parse_config
    from flows.slurm import slurm_task_runner, submit_labels
    from flows.store import CampaignStore
    from hmc_core.configurations import from_atoms
    from tasks.label import label_configurations, label_task
    from tasks.label_settings import LabelSettings

    configs = from_atoms([molecule("H2O"), molecule("CH3CH2OH"), molecule("H2O")])
    settings = LabelSettings(method="hf", basis="sto-3g", density_fit=False)
    executor = ExecutorConfig(kind="slurm", n_workers=1, memory="1GB", walltime="00:10:00", big_label_basis=10,
                              big_label_cores=1, job_start_timeout_s=120)

    config = parse_config({"name": "slurm-big", "executor": executor.model_dump(exclude_none=True)}, "test")
    store = CampaignStore(tmp_path / "campaign")
    with slurm_task_runner(config, store) as runner:
        labels = submit_labels(runner, lambda n: label_task.with_options(task_run_name=n), configs, settings,
                               None, executor, "big labels")
        workers = sorted(runner.workers.cluster.worker_spec)
    assert workers == ["pesflow-slurm-big-0", "pesflow-slurm-big-big-0"]
    local = label_configurations(configs, settings)
    for var in ("positions", "energy", "forces"):
        np.testing.assert_array_equal(labels[var].values, local[var].values, err_msg=var)
    jobs = finished_jobs("pesflow-slurm-big") + finished_jobs("pesflow-slurm-big-big")
    assert sorted(j["JobName"] for j in jobs) == ["pesflow-slurm-big", "pesflow-slurm-big-big"]


@pytest.mark.slurm
def test_unknown_partition_refused_before_anything_starts(slurm, tmp_path):
    cfg = campaign_toml(tmp_path, "slurm-nopart", partition="nosuch")
    proc = cli(cfg, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "[executor] partition = 'nosuch' is not a partition" in one_line(proc)
    assert "debug, held" in proc.stderr
    assert not (tmp_path / "home" / "prefect").exists()  # no Prefect server was started


@pytest.mark.slurm
def test_too_many_cores_refused(slurm, tmp_path):
    proc = cli(campaign_toml(tmp_path, "slurm-cores", cores=64), tmp_path)
    assert proc.returncode == 2 and "[executor] cores = 64" in one_line(proc)


@pytest.mark.slurm
def test_scheduler_that_does_not_answer(slurm, tmp_path):
    """A controller that accepts connections and never answers: refused after scheduler_timeout_s, not a hang."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        conf = (slurm / "slurm.conf").read_text().replace("SlurmctldPort=", f"SlurmctldPort={silent.getsockname()[1]}"
                                                                              "\n#SlurmctldPort=")
        (tmp_path / "silent.conf").write_text(conf)
        cfg = campaign_toml(tmp_path, "slurm-silent", scheduler_timeout_s=3)
        proc = cli(cfg, tmp_path, SLURM_CONF=str(tmp_path / "silent.conf"))
    assert proc.returncode == 2
    assert "did not answer" in one_line(proc) and "[executor] scheduler_timeout_s" in proc.stderr


@pytest.mark.slurm
def test_job_that_cannot_start_is_a_clear_error(slurm, prefect_api, tmp_path):
    """Partition ``held`` is DOWN: its jobs queue but never start; after job_start_timeout_s the run ends."""
    from flows.slurm import SlurmError

    cfg = campaign_toml(tmp_path, "slurm-held", partition="held", job_start_timeout_s=5)
    t0 = time.monotonic()
    with pytest.raises(SlurmError, match=r"pending for \d+ s \(reason: PartitionDown\).*job_start_timeout_s = 5"):
        run_campaign(cfg, tmp_path / "campaign")
    assert time.monotonic() - t0 < 60
    assert not running_jobs("pesflow-slurm-held")
    assert not subprocess.run(["squeue", "-h", "-n", "pesflow-slurm-held"], capture_output=True,
                              text=True).stdout.strip()  # the pending job was cancelled too


@pytest.mark.slurm
@pytest.mark.parametrize("alarm", ["jobs keep dying", "silent scheduler"])
def test_watcher_alarms_stop_waiting_tasks(slurm, tmp_path, alarm):
    """While tasks wait: more replaced jobs than max_job_retries (here 0: one scancel), or squeue not answering
    for scheduler_timeout_s (the controller swapped for a silent one), cancel the tasks with a SlurmError that
    names the setting, within seconds."""
    import socket

    from distributed import Client
    from distributed.client import FutureCancelledError

    from flows.config import ExecutorConfig
    from flows.slurm import SlurmWorkers

    ex = ExecutorConfig(kind="slurm", n_workers=1, memory="1GB", walltime="00:10:00", max_job_retries=0,
                        scheduler_timeout_s=2)
    conf = os.environ["SLURM_CONF"]
    with socket.socket() as silent, SlurmWorkers(ex, tmp_path, f"alarm-{alarm[:4]}") as workers:
        with Client(workers.address) as client:
            client.wait_for_workers(1, timeout=60)
            future = client.submit(time.sleep, 120, pure=False)
            time.sleep(1)
            t0 = time.monotonic()
            if alarm == "jobs keep dying":
                subprocess.run(["scancel", *workers._jobs().values()], check=True, timeout=30)
            else:
                silent.bind(("127.0.0.1", 0))
                silent.listen(8)
                text = (slurm / "slurm.conf").read_text()
                (tmp_path / "silent.conf").write_text(text.replace(
                    "SlurmctldPort=", f"SlurmctldPort={silent.getsockname()[1]}\n#SlurmctldPort="))
                os.environ["SLURM_CONF"] = str(tmp_path / "silent.conf")
            try:
                with pytest.raises(FutureCancelledError):
                    future.result(timeout=60)
            finally:
                os.environ["SLURM_CONF"] = conf  # so that closing the cluster cancels its jobs
        assert time.monotonic() - t0 < 20
    setting = "max_job_retries = 0" if alarm == "jobs keep dying" else "scheduler_timeout_s = 2"
    assert f"[executor] {setting}" in str(workers.error)
    assert not running_jobs(f"pesflow-alarm-{alarm[:4]}")


@pytest.mark.slurm
def test_readme_cluster_snippet_runs(slurm, tmp_path):
    """The README's cluster campaign, as written, through ``pesflow run`` (its own Prefect server), one label round
    short (``--max-iterations 0``: starting and test sets labeled as SLURM jobs, one fit)."""
    from flows.store import CampaignStore

    cfg = tmp_path / "water-slurm.toml"
    cfg.write_text(readme_cluster_toml())
    env = {**os.environ, "PESFLOW_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "pesflow"), "run", str(cfg), "--dir", str(tmp_path / "campaign"),
                           "--max-iterations", "0", "--no-plots", "--no-ui-plots"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = CampaignStore(tmp_path / "campaign").read_labels()
    assert (labels["status"].values.astype(str) == "ok").sum() == 8
    assert len(finished_jobs("pesflow-water-slurm")) >= 2


@pytest.mark.slurm
def test_nightly_deployment_runs_its_campaign_as_slurm_jobs(slurm, tmp_path):
    """The nightly deployment of a ``kind = "slurm"`` campaign (``pesflow deploy --config … --pool …``) on a real
    Prefect server: a process worker on this host (as on a login node) picks up the triggered run, whose flow
    submits the labels as SLURM jobs (recorded in slurm-logs/tasks.tsv, listed by sacct)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_server import prefect_server, stop, wait_for

    name = "slurm-nightly"
    cfg = campaign_toml(tmp_path, name, **SLURM_JOBS)
    directory = tmp_path / "campaign"
    with prefect_server(tmp_path / "prefect") as (url, env):
        reg = subprocess.run([str(BIN / "pesflow"), "deploy", "--pool", "slurm-login", "--config", str(cfg),
                              "--dir", str(directory), "--timezone", "UTC"], env=env, capture_output=True,
                             text=True, timeout=300)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        with temporary_settings({PREFECT_API_URL: url}):
            run = run_deployment("active-learning/nightly-continuation", parameters={"more_iterations": 0},
                                 timeout=0)
            log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
            worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "slurm-login"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
            try:
                def finished():
                    with get_client(sync_client=True) as client:
                        state = client.read_flow_run(run.id).state
                    return state if state is not None and state.is_final() else None

                state = wait_for(finished, 600, "the triggered flow run to finish", every=2.0)
            finally:
                stop(worker)
                log.close()
    assert state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
    tasks = recorded_tasks(directory)
    assert [t["title"].split(" [")[0] for t in tasks[:1]] == ["label start set (4)"]
    assert {t["job"] for t in tasks} <= {j["JobID"] for j in finished_jobs(f"pesflow-{name}")}


# ---- helpers ---------------------------------------------------------------------------------------------------
def recorded_tasks(directory: Path) -> list[dict]:
    """``slurm-logs/tasks.tsv`` of a campaign: which SLURM job ran which label batch (job, worker, title, n)."""
    rows = [line.split("\t") for line in (directory / "slurm-logs" / "tasks.tsv").read_text().splitlines()]
    return [{"job": job, "worker": worker, "title": title, "n": int(n)} for job, worker, title, n in rows]


def readme_cluster_toml() -> str:
    """The ```toml block of the README's section "Running on a cluster"."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("### Running on a cluster", 1)[1]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def cli(cfg: Path, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """``pesflow run CFG`` in a fresh PESFLOW_HOME; must answer within 30 s."""
    full = {**os.environ, "PESFLOW_HOME": str(tmp_path / "home"), **env}
    full.pop("PREFECT_API_URL", None)
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "pesflow"), "run", str(cfg), "--dir", str(tmp_path / "campaign")], env=full,
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    return proc


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The single error line of a refused command (no traceback)."""
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# ---- without SLURM ---------------------------------------------------------------------------------------------
def test_readme_cluster_snippet_is_a_valid_campaign(tmp_path):
    from flows.config import load_config

    (tmp_path / "water-slurm.toml").write_text(readme_cluster_toml())
    cfg = load_config(tmp_path / "water-slurm.toml")
    assert (cfg.executor.kind, cfg.executor.partition, cfg.executor.n_workers) == ("slurm", "debug", 2)


@pytest.mark.parametrize("executor, words", [
    ({"kind": "dask", "partition": "debug"}, "'partition' only apply to kind = \"slurm\""),
    ({"kind": "default", "cores": 2, "walltime": "01:00:00"}, "'cores', 'walltime' only apply"),
    ({"kind": "slurm", "memory": "lots"}, "memory"),
    ({"kind": "slurm", "walltime": "1h"}, "walltime"),
    ({"kind": "slurm", "cores": 0}, "cores"),
    ({"kind": "slurm", "job_start_timeout_s": 0}, "job_start_timeout_s"),
])
def test_executor_keys_checked(executor, words):
    from flows.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="executor") as err:
        parse_config({"executor": executor}, "test")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_slurm_settings_defaults_and_memory():
    from flows.config import ExecutorConfig
    from flows.slurm import SlurmSettings, parse_memory

    s = SlurmSettings.of(ExecutorConfig(kind="slurm", memory="3GB", cores=2))
    assert (s.cores, s.walltime, s.job_start_timeout_s, s.max_job_retries) == (2, "01:00:00", 600.0, 3)
    assert s.memory_mb() == 3072 and s.memory_mb(4) == 6144  # big-label jobs: memory scaled by their cores
    assert parse_memory("1.5 GiB") == parse_memory("1536MB") == 1536 * 2**20
    assert "cores" not in ExecutorConfig().model_dump(exclude_none=True)  # old campaign files round-trip


def test_balanced_batches():
    from flows.slurm import balanced

    groups = balanced(np.arange(6), np.array([1.0, 8.0, 1.0, 1.0, 8.0, 1.0]), 2)
    assert [g.tolist() for g in groups] == [[0, 1, 3], [2, 4, 5]]
    assert [g.tolist() for g in balanced(np.array([4, 9]), np.ones(2), 5)] == [[4], [9]]
    assert balanced(np.array([], int), np.array([]), 3) == []


def test_label_batches_split_by_cost():
    """Water (7 STO-3G basis functions) stays small, ethanol (21) is big: small labels in n_workers × cores
    one-thread batches, big ones in at most n_workers batches with big_label_cores threads."""
    from ase.build import molecule

    from flows.config import ExecutorConfig
    from flows.slurm import SlurmSettings, label_batches, label_cost
    from hmc_core.configurations import from_atoms
    from tasks.label_settings import LabelSettings

    configs = from_atoms([molecule("H2O")] * 5 + [molecule("CH3CH2OH")] * 3)
    settings = LabelSettings(method="hf", basis="sto-3g", density_fit=False, n_workers=4)
    np.testing.assert_array_equal(label_cost(configs, settings), [7] * 5 + [21] * 3)
    s = SlurmSettings.of(ExecutorConfig(kind="slurm", n_workers=2, cores=2, big_label_basis=10, big_label_cores=8))
    batches = label_batches(configs, settings, s)
    assert [b.index.tolist() for b in batches] == [[0, 4], [1], [2], [3], [5, 7], [6]]
    assert [b.big for b in batches] == [False] * 4 + [True] * 2
    assert {(b.settings.n_workers, b.settings.threads_per_worker) for b in batches if not b.big} == {(1, None)}
    assert {(b.settings.n_workers, b.settings.threads_per_worker) for b in batches if b.big} == {(1, 8)}
    assert all(not b.big for b in label_batches(configs, settings, SlurmSettings()))  # no split by default
    # balanced by (basis functions)³: 3 ethanols (21³ each) against 5 waters (7³) on 2 slots
    two_slots = [b.index.tolist() for b in label_batches(configs, settings, SlurmSettings(n_workers=2))]
    assert two_slots == [[5, 7], [0, 1, 2, 3, 4, 6]]


def test_script_loaded_modules_reach_the_jobs(tmp_path):
    """A module loaded from a file under a bare name (as Prefect loads a deployment's entrypoint) puts its folder
    on the jobs' PYTHONPATH, so that tasks pickled with references to it load in the job."""
    import importlib.util

    from flows.slurm import script_module_dirs

    (tmp_path / "entry_point_like.py").write_text("X = 1\n")
    spec = importlib.util.spec_from_file_location("entry_point_like", tmp_path / "entry_point_like.py")
    sys.modules["entry_point_like"] = importlib.util.module_from_spec(spec)
    try:
        assert str(tmp_path.resolve()) in script_module_dirs()
    finally:
        del sys.modules["entry_point_like"]
    assert str(tmp_path.resolve()) not in script_module_dirs()


def test_job_scripts(tmp_path):
    """The job scripts dask-jobqueue would submit: partition, account, CPUs, memory, walltime, job name; a big-label
    job books big_label_cores CPUs and offers the ``big_label`` resource."""
    require_module("dask_jobqueue")
    from flows.config import ExecutorConfig
    from flows.slurm import SlurmSettings, SlurmWorkers

    ex = ExecutorConfig(kind="slurm", partition="short", account="chem", cores=2, memory="4GB",
                        walltime="02:00:00", big_label_basis=100, big_label_cores=4)
    workers = SlurmWorkers.__new__(SlurmWorkers)  # no scheduler needed to write a job script
    workers.s, workers.partition, workers.job_name = SlurmSettings.of(ex), "short", "pesflow-x"
    workers.directory = tmp_path
    small, big = workers.job_script(False), workers.job_script(True)
    for line in ("#SBATCH -p short", "#SBATCH -A chem", "#SBATCH -t 02:00:00", "#SBATCH -J pesflow-x"):
        assert line in small
    assert "#SBATCH --cpus-per-task=2" in small and "--mem=4G" in small and "--nthreads 2" in small
    assert "#SBATCH --cpus-per-task=4" in big and "--mem=8G" in big and "--resources big_label=1" in big
    assert "#SBATCH -J pesflow-x-big" in big and "--nthreads 1" in big
