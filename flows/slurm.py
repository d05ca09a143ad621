"""``[executor] kind = "slurm"``: a campaign's labels and HMC chains run as SLURM jobs; the flow itself stays on the
submitting host (a login node, or the machine of a deployment's worker).

How: dask-jobqueue's ``SLURMCluster`` (a Dask scheduler in the flow process; each SLURM job runs one Dask worker)
under prefect-dask's ``DaskTaskRunner``, so every task the campaign submits through its runner (HMC chains, label
batches) runs inside a SLURM job, and the Prefect UI shows them as task runs as usual. Jobs are pilots: each lives
until the campaign ends (or its walltime) and runs task after task.

Per job (``[executor]``, defaults in :class:`SlurmSettings`): ``partition``, ``account``, ``cores`` (CPUs; the
worker runs that many tasks at a time), ``memory``, ``walltime``; ``n_workers`` jobs. Per label, from the
labeler's cost (:func:`label_cost`: basis functions for PySCF, atoms for ASE labelers): labels at or above
``big_label_basis`` go to separate jobs of ``big_label_cores`` CPUs (Dask resource ``big_label``), one label at a
time with that many OpenMP/BLAS threads; started when a label stage first has such labels. Other labels use one
thread each, which keeps them bit-identical to a local run (:mod:`tasks.label`); big labels trade that for speed.

Failures are loud, never a hang:

* before anything starts (:func:`check_slurm`, called by :func:`flows.preflight.preflight`): the SLURM commands
  are installed, the controller answers ``sinfo`` within ``scheduler_timeout_s``, ``partition`` exists, the cores
  and memory fit its nodes, and ``sbatch --test-only`` accepts a job with the configured partition, account,
  cores, memory and walltime;
* while the campaign runs (:class:`SlurmWorkers`' watcher, every second): a job killed by the scheduler
  (``scancel``, walltime, node failure) or one whose worker died is replaced, and the Dask scheduler runs its tasks
  again elsewhere; labels finished before the kill are answered by the label cache, not recomputed. More than
  ``max_job_retries`` replaced jobs, a job pending (or refused by ``sbatch``) for longer than
  ``job_start_timeout_s``, or ``squeue`` failing for longer than ``scheduler_timeout_s`` cancel the campaign's
  tasks and end the run with a :class:`SlurmError` that names the setting.

Anything else dask-jobqueue can set (network ``interface``, extra ``#SBATCH`` lines, a job script prologue) comes
from its own Dask configuration, ``jobqueue.slurm.*`` (e.g. ``~/.config/dask/jobqueue.yaml``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flows.app import UserError

log = logging.getLogger(__name__)

#: how to get the SLURM client commands where they are missing
INSTALL_HINT = ("run pesflow on a host with the SLURM client commands (a cluster's login node), or install them "
                "(Debian/Ubuntu: `apt-get install slurm-wlm munge`; tests/slurm/start.sh starts a one-node SLURM)")
POLL_S = 1.0


class SlurmError(UserError):
    """SLURM refused, lost or never started the campaign's jobs; the message names the ``[executor]`` setting."""


@dataclass(frozen=True)
class SlurmSettings:
    """``[executor]`` with the SLURM defaults filled in: ``cores`` CPUs, ``memory`` (e.g. ``"2GB"``) and
    ``walltime`` (``[D-]HH:MM:SS``) per job; ``n_workers`` jobs; big labels (``>= big_label_basis`` basis
    functions, None = no split) in jobs of ``big_label_cores`` CPUs and ``memory`` × big_label_cores / cores. A job
    of several ``cores`` runs that many tasks in threads of one worker process (PySCF's Python parts then share
    one GIL; one-core jobs avoid that);
    ``job_start_timeout_s``, ``scheduler_timeout_s`` (s), ``max_job_retries`` (replaced jobs per campaign run)."""

    partition: str | None = None
    account: str | None = None
    n_workers: int = 2
    cores: int = 1
    memory: str = "2GB"
    walltime: str = "01:00:00"
    big_label_basis: int | None = None
    big_label_cores: int = 4
    job_start_timeout_s: float = 600.0
    scheduler_timeout_s: float = 30.0
    max_job_retries: int = 3
    dashboard_address: str | None = "127.0.0.1:0"

    @classmethod
    def of(cls, executor) -> SlurmSettings:
        """From a :class:`flows.config.ExecutorConfig` (unset keys: the defaults above)."""
        given = {k: getattr(executor, k) for k in cls.__dataclass_fields__ if getattr(executor, k) is not None}
        return cls(**given, **({"dashboard_address": None} if executor.dashboard_address is None else {}))

    def memory_mb(self, cores: int | None = None) -> int:
        """Memory of a job, MB (SLURM's M = MiB); of a job with ``cores`` CPUs (scaled from ``memory``)."""
        return max(1, int(parse_memory(self.memory) * (cores or self.cores) / self.cores) // 2**20)


def parse_memory(text: str) -> int:
    """``"2GB"``, ``"1.5 GiB"``, ``"500MB"`` → bytes (K/M/G/T as powers of 1024, as SLURM counts)."""
    text = text.strip().upper().replace(" ", "").replace("IB", "B")
    number, unit = text[:-2], text[-2]
    return int(float(number) * 1024 ** "KMGT".index(unit) * 1024)


# ---- talking to SLURM ------------------------------------------------------------------------------------------
def slurm_command(argv: list[str], timeout_s: float, check: bool = True) -> subprocess.CompletedProcess:
    """Run a SLURM client command; :class:`SlurmError` when it is not installed, does not answer within
    ``timeout_s`` s, or (``check``) fails. The error names ``[executor] scheduler_timeout_s`` where that helps."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"[executor] kind = \"slurm\": the SLURM command `{argv[0]}` is not on PATH; {INSTALL_HINT}")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"[executor] kind = \"slurm\": the SLURM controller did not answer `{' '.join(argv[:2])} …` "
                         f"within {timeout_s:g} s ([executor] scheduler_timeout_s); check that slurmctld runs and "
                         "`sinfo` works on this host, or raise scheduler_timeout_s") from None
    if check and proc.returncode != 0:
        raise SlurmError(f"[executor] kind = \"slurm\": the SLURM controller does not answer (`{' '.join(argv[:2])} "
                         f"…` failed: {last_line(proc.stderr)}); check that slurmctld runs and `sinfo` works on "
                         "this host (SLURM_CONF?)")
    return proc


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


@dataclass(frozen=True)
class Partition:
    """One SLURM partition as ``sinfo`` reports it: the largest node's CPUs and memory (MB), up or not."""

    name: str
    default: bool
    up: bool
    cpus: int
    memory_mb: int


def partitions(timeout_s: float) -> dict[str, Partition]:
    """The cluster's partitions by name (``sinfo``); SlurmError when SLURM does not answer."""
    out = slurm_command(["sinfo", "-h", "-o", "%P|%a|%c|%m"], timeout_s).stdout
    found: dict[str, Partition] = {}
    for line in out.splitlines():
        name, avail, cpus, mem = (line.split("|") + ["", "", "", ""])[:4]
        if not name:
            continue
        default, name = name.endswith("*"), name.rstrip("*")
        cpus_n, mem_n = int(cpus.rstrip("+") or 0), int(mem.rstrip("+") or 0)
        old = found.get(name)
        if old is not None:
            cpus_n, mem_n = max(cpus_n, old.cpus), max(mem_n, old.memory_mb)
        found[name] = Partition(name, default, avail == "up", cpus_n, mem_n)
    return found


def check_slurm(executor) -> str | None:
    """Preflight of ``[executor] kind = "slurm"`` (see the module docstring); returns the partition to use (None for
    other kinds). Raises :class:`SlurmError` naming the setting to fix."""
    if executor.kind != "slurm":
        return None
    s = SlurmSettings.of(executor)
    found = partitions(s.scheduler_timeout_s)
    names = ", ".join(sorted(found)) or "none"
    if s.partition is None:
        default = [p.name for p in found.values() if p.default]
        if not default:
            raise SlurmError(f"[executor] partition is not set and this SLURM cluster has no default partition; set "
                             f"partition to one of: {names}")
        name = default[0]
    else:
        name = s.partition
    if name not in found:
        raise SlurmError(f"[executor] partition = {name!r} is not a partition of this SLURM cluster (it has: {names}); "
                         "set partition to one of them")
    part = found[name]
    for key, cores in (("cores", s.cores), ("big_label_cores", s.big_label_cores if s.big_label_basis else 0)):
        if part.cpus and cores > part.cpus:
            raise SlurmError(f"[executor] {key} = {cores} is more than the {part.cpus} CPUs of a node in partition "
                             f"{name!r}: such a job could never start; lower {key}")
        if part.memory_mb and cores and s.memory_mb(cores) > part.memory_mb:
            raise SlurmError(f"[executor] memory = {s.memory!r} ({s.memory_mb(cores)} MB for a job of {cores} CPUs) "
                             f"is more than the {part.memory_mb} MB of a node in partition {name!r}; lower memory")
    argv = ["sbatch", "--test-only", "-p", name, "-c", str(s.cores), f"--mem={s.memory_mb()}M", "-t", s.walltime,
            "-J", "pesflow-preflight", "--wrap", "true"] + (["-A", s.account] if s.account else [])
    proc = slurm_command(argv, s.scheduler_timeout_s, check=False)
    if proc.returncode != 0:
        raise SlurmError(f"[executor] SLURM refuses a job with partition = {name!r}, account = {s.account!r}, cores = "
                         f"{s.cores}, memory = {s.memory!r}, walltime = {s.walltime!r}: "
                         f"{last_line(proc.stderr).removeprefix('sbatch: error: ')}; fix these settings")
    return name


# ---- per-label resources ---------------------------------------------------------------------------------------
def label_cost(configs, settings) -> np.ndarray:
    """The labeler's cost of each configuration: PySCF basis functions (``nao``; built once per species tuple and
    cell kind, no SCF), or atoms for ASE labelers. ``configs``: a configurations dataset; returns (n_config,) int."""
    from hmc_core.configurations import config_arrays

    n = configs.sizes["config"]
    if settings.labeler != "pyscf":
        return configs["n_atoms"].values.astype(int)
    from tasks.pyscf_adapter import build_system, is_periodic

    seen: dict[tuple, int] = {}
    cost = np.zeros(n, int)
    for k in range(n):
        pos, species, cell, pbc = config_arrays(configs, k)
        key = (tuple(int(z) for z in species), is_periodic(pbc))
        if key not in seen:
            seen[key] = int(build_system(species, pos, cell, pbc, settings).nao_nr())
        cost[k] = seen[key]
    return cost


@dataclass(frozen=True)
class LabelBatch:
    """One label task: the configuration indices, the label settings it runs with, whether it needs a big job."""

    index: np.ndarray
    settings: object
    big: bool


def label_batches(configs, settings, s: SlurmSettings) -> list[LabelBatch]:
    """Split a label stage into tasks: the labels below ``big_label_basis`` into at most ``n_workers × cores``
    batches (one thread each), the big ones into at most ``n_workers`` batches with ``big_label_cores`` threads.
    Batches are balanced by the expected SCF cost, (basis functions)³ (:func:`balanced`)."""
    n = configs.sizes["config"]
    one = settings.model_copy(update={"n_workers": 1})
    cost = label_cost(configs, settings)
    big = np.zeros(n, bool) if s.big_label_basis is None else cost >= s.big_label_basis
    batches = []
    for is_big, slots, batch_settings in (
            (False, s.n_workers * s.cores, one),
            (True, s.n_workers, one.model_copy(update={"threads_per_worker": s.big_label_cores}))):
        idx = np.flatnonzero(big == is_big)
        batches += [LabelBatch(part, batch_settings, is_big) for part in balanced(idx, cost[idx] ** 3.0, slots)]
    return batches


def balanced(index: np.ndarray, weight: np.ndarray, slots: int) -> list[np.ndarray]:
    """``index`` split into at most ``slots`` non-empty groups of similar total ``weight`` (largest first, each to
    the lightest group; ties by position), each group in ascending order."""
    groups: list[list[int]] = [[] for _ in range(min(len(index), slots))]
    load = np.zeros(len(groups))
    for k in sorted(range(len(index)), key=lambda k: (-weight[k], k)):
        g = int(np.argmin(load))
        groups[g].append(int(index[k]))
        load[g] += weight[k]
    return [np.array(sorted(g), dtype=int) for g in groups]


def submit_labels(runner, make_task, configs, settings, cache_dir: str | None, executor, title: str):
    """Label ``configs`` in SLURM jobs (:func:`label_batches`): one ``make_task(name)`` task per batch, big batches
    on big-label jobs (started here when first needed). Returns the labels in input order."""
    import dask

    from hmc_core.configurations import concat
    from tasks.label import LabelInputs

    s = SlurmSettings.of(executor)
    batches = label_batches(configs, settings, s)
    n_big = sum(b.big for b in batches)
    if n_big:
        runner.workers.want_big(n_big)
    names = [f"{title} [{b + 1}/{len(batches)}]" if len(batches) > 1 else title for b in range(len(batches))]
    futures = []
    for name, batch in zip(names, batches, strict=True):
        annotations = {"resources": {"big_label": 1}} if batch.big else {}
        with dask.annotate(**annotations):
            futures.append(runner.submit(make_task(name), {
                "inputs": LabelInputs(configs.isel(config=batch.index), cache_dir, configs),
                "settings": batch.settings}))
    labels = [f.result().labels for f in futures]
    runner.workers.record_jobs(runner.client, [f.wrapped_future for f in futures],
                               [f"{name}\t{len(batch.index)}" for name, batch in zip(names, batches, strict=True)])
    order = np.argsort(np.concatenate([b.index for b in batches]), kind="stable")
    return concat(labels).isel(config=order)


def script_module_dirs() -> list[str]:
    """Folders of modules this process loaded from a file under a bare name that a fresh Python in the job would not
    find: a deployment's flow runs load ``flows/active_learning.py`` as module ``active_learning`` (Prefect puts
    ``flows/`` on this process's ``sys.path`` only), and tasks pickled in that run refer to it. The jobs get these
    folders on ``PYTHONPATH``; the standard library, site-packages and the working directory they have anyway."""
    import site
    import sysconfig

    standard = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    on_path = {Path(p).resolve() for p in [*standard, *site.getsitepackages(), os.getcwd()]}
    dirs: list[str] = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or "." in name or name == "__main__" or Path(file).stem != name:
            continue
        folder = Path(file).resolve().parent
        if folder not in on_path and str(folder) not in dirs:
            dirs.append(str(folder))
    return dirs


# ---- the jobs ----------------------------------------------------------------------------------------------------
class SlurmWorkers:
    """The campaign's SLURM jobs: a ``SLURMCluster`` with ``n_workers`` jobs (names ``pesflow-<campaign>-<i>``),
    big-label jobs on demand (``…-big-<i>``), and a watcher thread (every second) that replaces jobs that ended,
    and raises the alarms of the module docstring: :attr:`error` is set and the Dask tasks are cancelled
    (:func:`slurm_task_runner` then raises the error). ``directory``: where the job logs go (``slurm-logs/``).
    Construction runs :func:`check_slurm` (SlurmError); entering submits the jobs, leaving cancels them."""

    def __init__(self, executor, directory: Path, name: str):
        self.s = SlurmSettings.of(executor)
        self.partition = check_slurm(executor)
        self.directory, self.job_name = Path(directory), f"pesflow-{name}"
        self.error: SlurmError | None = None
        self.submitted: set[str] = set()
        self.planned = 0
        self.n_big = 0
        self._pending_since: dict[str, float] = {}
        self._unsubmitted_since: dict[str, float] = {}
        self._silent_since: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._exit = contextlib.ExitStack()

    # -- lifetime ---------------------------------------------------------------------------------------------
    def __enter__(self) -> SlurmWorkers:
        import dask
        from dask_jobqueue import SLURMCluster

        s = self.s
        # dead jobs are replaced by the watcher only (SpecCluster's own lost-worker handling could close a
        # replacement that has not connected yet); a task may be lost with its worker max_job_retries + 1 times; a
        # worker silent for 60 s (its node gone) is given up, so its tasks run elsewhere
        self._exit.enter_context(dask.config.set({"distributed.deploy.lost-worker-timeout": "100000d",
                                                  "distributed.scheduler.allowed-failures": s.max_job_retries + 1,
                                                  "distributed.scheduler.worker-ttl": "60s"}))
        logs = self.directory / "slurm-logs"
        logs.mkdir(parents=True, exist_ok=True)
        dashboard = {"dashboard": False} if s.dashboard_address is None else {"dashboard_address": s.dashboard_address}
        try:
            self.cluster = SLURMCluster(**self.job_options(False), scheduler_options=dashboard, name=self.job_name)
            self._exit.callback(self.cluster.close)
            self._set_spec(s.n_workers, 0)
            self._watcher = threading.Thread(target=self._watch, name=f"{self.job_name}-watcher", daemon=True)
            self._watcher.start()
        except BaseException:
            self._exit.close()
            raise
        log.info("SLURM: %d job(s) of %d CPU(s), %s, %s in partition %s (logs in %s)", s.n_workers, s.cores,
                 s.memory, s.walltime, self.partition, logs)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if getattr(self, "_watcher", None) is not None:
            self._watcher.join(timeout=10)
        self._exit.close()  # closes the cluster: scancel of every job still there

    @property
    def address(self) -> str:
        """The Dask scheduler's address (the workers in the jobs connect to it)."""
        return self.cluster.scheduler_address

    # -- jobs -------------------------------------------------------------------------------------------------
    def job_options(self, big: bool) -> dict:
        """dask-jobqueue's job keywords: a small job (``cores`` CPUs, one worker with ``cores`` threads) or a
        big-label job (``big_label_cores`` CPUs, one thread, the Dask resource ``big_label``, job name ``…-big``)."""
        s = self.s
        options = dict(queue=self.partition, account=s.account, cores=s.cores, processes=1,
                       memory=f"{s.memory_mb()}MB", walltime=s.walltime, job_name=self.job_name,
                       log_directory=str(self.directory / "slurm-logs"), python=sys.executable,
                       local_directory=str(self.directory / "dask-scratch"))
        extra = script_module_dirs()
        if extra:  # after the prologue of the user's dask-jobqueue configuration (module load, …)
            import dask

            prologue = list(dask.config.get("jobqueue.slurm.job-script-prologue", None) or [])
            options["job_script_prologue"] = prologue + [
                f"export PYTHONPATH={':'.join(extra)}${{PYTHONPATH:+:$PYTHONPATH}}"]
        if big:
            options.update(cores=1, job_cpu=s.big_label_cores, memory=f"{s.memory_mb(s.big_label_cores)}MB",
                           job_name=f"{self.job_name}-big", worker_extra_args=["--resources", "big_label=1"])
        return options

    def job_script(self, big: bool) -> str:
        """The batch script of a small or a big-label job (for a scheduler at a placeholder address)."""
        from dask_jobqueue.slurm import SLURMJob

        return SLURMJob("tcp://scheduler:8786", name="worker", **self.job_options(big)).job_script()

    def _spec(self, big: bool) -> dict:
        spec = copy.deepcopy(self.cluster.new_spec)
        if big:
            spec["options"].update(self.job_options(True))
        return spec

    def _set_spec(self, n_small: int, n_big: int) -> None:
        """Ask for exactly these jobs (named specs of the cluster; ``scale`` submits the missing ones)."""
        with self._lock:
            spec = self.cluster.worker_spec
            for i in range(n_small):
                spec.setdefault(f"{self.job_name}-{i}", self._spec(False))
            for i in range(n_big):
                spec.setdefault(f"{self.job_name}-big-{i}", self._spec(True))
            self.n_big = max(self.n_big, n_big)
            self.planned = max(self.planned, len(spec))
            self.cluster.scale(len(spec))

    def want_big(self, n: int) -> None:
        """Make sure ``min(n, n_workers)`` big-label jobs exist (started on first need, kept to the end)."""
        if min(n, self.s.n_workers) > self.n_big:
            self._set_spec(0, min(n, self.s.n_workers))

    # -- watching ---------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.check_once()
            except SlurmError as exc:
                self.fail(exc)
                return
            except Exception as exc:  # never let the watcher die silently
                log.warning("SLURM watcher: %s: %s", type(exc).__name__, exc)

    def _jobs(self) -> dict[str, str]:
        """Spec name → SLURM job id of the jobs submitted for the current specs."""
        return {name: str(job.job_id) for name, job in list(self.cluster.workers.items())
                if getattr(job, "job_id", None)}

    def check_once(self) -> None:
        """One round of the watcher: replace ended jobs, raise SlurmError on the alarms of the module docstring."""
        s = self.s
        self._check_submitted()
        jobs = self._jobs()
        self.submitted |= set(jobs.values())
        if not jobs:
            return
        asked = time.monotonic()
        try:
            proc = slurm_command(["squeue", "-h", "-j", ",".join(jobs.values()), "-o", "%i|%T|%r"],
                                 s.scheduler_timeout_s, check=False)
            answered = proc.returncode == 0 or "Invalid job id" in proc.stderr
        except SlurmError:
            answered = False
        now = time.monotonic()
        if not answered:
            self._silent_since = self._silent_since or asked
            if now - self._silent_since > s.scheduler_timeout_s:
                raise SlurmError(f"[executor] kind = \"slurm\": the SLURM controller has not answered `squeue` for "
                                 f"{now - self._silent_since:.0f} s ([executor] scheduler_timeout_s = "
                                 f"{s.scheduler_timeout_s:g}); the campaign's jobs are cancelled")
            return
        self._silent_since = None
        states = {}
        for line in proc.stdout.splitlines():
            job_id, state, reason = (line.split("|") + ["", ""])[:3]
            states[job_id.strip()] = (state, reason)
        for name, job_id in jobs.items():
            state, reason = states.get(job_id, ("GONE", ""))
            if state == "PENDING":
                since = self._pending_since.setdefault(job_id, now)
                if now - since > s.job_start_timeout_s:
                    raise SlurmError(f"[executor] SLURM job {job_id} ({name}, partition {self.partition!r}) has been "
                                     f"pending for {now - since:.0f} s (reason: {reason or 'none given'}), longer than "
                                     f"[executor] job_start_timeout_s = {s.job_start_timeout_s:g}; check `squeue -j "
                                     f"{job_id}`, choose another partition, ask for fewer cores/memory, or raise "
                                     "job_start_timeout_s")
            elif state in ("GONE", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                           "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"):
                self._replace(name, job_id, state)

    def _check_submitted(self) -> None:
        """Jobs asked for but not submitted (``sbatch`` failed; dask-jobqueue logs why) are asked for again; after
        ``job_start_timeout_s`` that is an error."""
        now = time.monotonic()
        missing = [name for name in list(self.cluster.worker_spec) if name not in self.cluster.workers]
        self._unsubmitted_since = {name: self._unsubmitted_since.get(name, now) for name in missing}
        late = [name for name in missing if now - self._unsubmitted_since[name] > self.s.job_start_timeout_s]
        if late:
            raise SlurmError(f"[executor] the SLURM job {late[0]} could not be submitted for "
                             f"{now - self._unsubmitted_since[late[0]]:.0f} s, longer than [executor] "
                             f"job_start_timeout_s = {self.s.job_start_timeout_s:g} (sbatch refused it: see this run's "
                             "log; partition, account, cores, memory and walltime are the settings it gets)")
        if missing:
            with self._lock:
                self.cluster.scale(len(self.cluster.worker_spec))

    def _replace(self, name: str, job_id: str, state: str) -> None:
        replaced = len(self.submitted) - self.planned + 1
        if replaced > self.s.max_job_retries:
            raise SlurmError(f"[executor] {replaced} SLURM jobs of this campaign ended before it finished (the last: "
                             f"job {job_id}, {name}, {state.lower() if state != 'GONE' else 'gone from squeue'}), more "
                             f"than [executor] max_job_retries = {self.s.max_job_retries}; see the job logs in "
                             f"{self.directory / 'slurm-logs'} (killed, walltime, node failure, or a worker that "
                             "cannot start?) and raise max_job_retries if jobs are killed on purpose")
        log.warning("SLURM job %s (%s) ended (%s) while the campaign runs: submitting a replacement (%d of at most "
                    "%d); its tasks run again", job_id, name, state.lower(), replaced, self.s.max_job_retries)
        with self._lock:  # a new Dask worker name: the old worker may not have left the scheduler yet
            spec = self.cluster.worker_spec[name]
            spec["options"] = {**spec["options"], "name": f"{name}-retry{len(self.submitted)}"}
            self.cluster.workers.pop(name, None)
            self.cluster.scale(len(self.cluster.worker_spec))
        for _ in range(50):  # until the replacement has its job id (scale submits it on the cluster's loop)
            if self._jobs().get(name, job_id) != job_id:
                break
            time.sleep(0.1)

    def record_jobs(self, client, futures: list, titles: list[str]) -> None:
        """Append, for each finished Dask future, which SLURM job computed it to ``slurm-logs/tasks.tsv`` (columns:
        SLURM job id, Dask worker, then ``titles``' tab-separated text, e.g. task title and label count) and to
        the log. Best effort: a result no worker holds any more is recorded with job id ``?``."""
        try:
            holders = client.who_has(futures)
            names = {addr: w["name"] for addr, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        except Exception as exc:  # bookkeeping must never fail a label stage
            log.warning("SLURM: could not tell which jobs ran %s (%s)", titles[0] if titles else "tasks", exc)
            return
        jobs = {getattr(job, "name", name): str(job.job_id) for name, job in list(self.cluster.workers.items())}
        lines = []
        for future, title in zip(futures, titles, strict=True):
            worker = names.get(next(iter(holders.get(future.key, ())), None), "?")
            lines.append(f"{jobs.get(worker, '?')}\t{worker}\t{title}")
            log.info("SLURM job %s (worker %s) ran %s", jobs.get(worker, "?"), worker, title.split("\t")[0])
        with open(self.directory / "slurm-logs" / "tasks.tsv", "a") as out:
            out.write("".join(line + "\n" for line in lines))

    def fail(self, error: SlurmError) -> None:
        """Record ``error`` and cancel every unfinished Dask task, so that a flow waiting on one stops at once."""
        log.error("%s", error)
        self.error = error
        scheduler = self.cluster.scheduler

        def cancel():
            for key, ts in list(scheduler.tasks.items()):
                if ts.state not in ("memory", "erred", "forgotten") and ts.who_wants:
                    client = next(iter(ts.who_wants)).client_key
                    scheduler.stimulus_cancel([key], client, force=True, reason="pesflow-slurm", msg=str(error))

        self.cluster.loop.add_callback(cancel)


def _runner_class():
    from prefect_dask import DaskTaskRunner

    class SlurmTaskRunner(DaskTaskRunner):
        """prefect-dask's runner on the campaign's :class:`SlurmWorkers` (``workers``)."""

        def __init__(self, workers: SlurmWorkers):
            super().__init__(address=workers.address)
            self.workers = workers

    return SlurmTaskRunner


@contextlib.contextmanager
def slurm_task_runner(config, store):
    """The task runner of ``[executor] kind = "slurm"``: jobs started on entry, all cancelled on exit. An exception
    raised while the watcher has found a problem becomes that :class:`SlurmError`."""
    with SlurmWorkers(config.executor, store.root, config.name) as workers:
        try:
            with _runner_class()(workers) as runner:
                yield runner
        except BaseException:
            if workers.error is not None:
                raise workers.error from None
            raise
        if workers.error is not None:
            raise workers.error
