"""SLURM overhead: labels per hour of the label stage on SLURM jobs (``[executor] kind = "slurm"``, 1 and 2 jobs of
one CPU) against the local process pool (2 spawned workers) on the same batch, and the cost of a job.

Batch: the 10 molecules of ``bench/label_throughput.py`` (4 waters, 4 ethanols, 2 Ar₁₃), HF-D3(BJ)/6-31G by
default (``--method``, ``--basis``: e.g. ``--method dft --basis def2-svp`` for PBE-D3(BJ)/def2-SVP with density
fitting, ~10x the cost), one thread per label, a fresh label cache per run (no cache hits, no warm starts).
SLURM: a private one-node SLURM started with ``tests/slurm/start.sh`` unless ``SLURM_CONF`` is set (then that
cluster, partition ``--partition``), a Prefect server of this run's own (``flows.server.flow_server``).

Runs, in this order:
  local     ``label_configurations`` with 2 worker processes (their start-up included)
  slurm_1   1 job: from ``sbatch`` to the labels back (job start included), then again on the running job (warm)
  slurm_2   2 jobs: the same
Per-job overhead ``job_overhead_s``: what fresh jobs add to a label stage, cold − warm wall time (SLURM scheduling,
job launch, Python, Dask, Prefect and PySCF start-up in the job; the jobs of a run start in parallel), mean of the
slurm_1 and slurm_2 runs; ``job_registration_s``: seconds from a job's submission to its Dask worker registering.

    python bench/slurm_overhead.py [--json PATH] [--quick] [--method hf|dft] [--basis NAME] [--partition NAME]

``--quick`` runs HF/STO-3G (seconds; not the reported figures).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchutil import write_json  # noqa: E402
from label_throughput import batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def per_hour(n: int, seconds: float) -> float:
    return 3600.0 * n / seconds


def local_run(configs, settings, workers: int) -> float:
    """Wall seconds of the local label stage (``workers`` spawned processes, fresh cache)."""
    from tasks.label import label_configurations

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        labels = label_configurations(configs, settings, cache_dir=cache, n_workers=workers)
        seconds = time.perf_counter() - t0
    assert (labels["status"].values.astype(str) == "ok").all()
    return seconds


def slurm_run(configs, settings, jobs: int, partition: str | None, work: Path) -> dict:
    """Cold (from submission, job start included) and warm (running jobs) wall seconds of the label stage on
    ``jobs`` one-CPU SLURM jobs, and each job's seconds from submission to its worker registering."""
    from distributed import Client

    from flows.config import parse_config
    from flows.slurm import slurm_task_runner, submit_labels
    from flows.store import CampaignStore
    from tasks.label import label_task

    executor = {"kind": "slurm", "n_workers": jobs, "cores": 1, "memory": "2GB", "walltime": "01:00:00",
                **({"partition": partition} if partition else {})}
    config = parse_config({"name": f"bench-{jobs}", "executor": executor}, "bench")
    store = CampaignStore(work / f"slurm-{jobs}")
    out = {}

    def stage(title: str) -> float:
        with tempfile.TemporaryDirectory(dir=work) as cache:
            t0 = time.perf_counter()
            labels = submit_labels(runner, lambda name: label_task.with_options(task_run_name=name), configs,
                                   settings, cache, config.executor, title)
            seconds = time.perf_counter() - t0
        assert (labels["status"].values.astype(str) == "ok").all()
        return seconds

    up: dict[str, float] = {}

    def note_workers(address: str) -> None:  # seconds from submission to each worker's registration
        with Client(address, timeout=60) as client:
            while len(up) < jobs:
                for w in client.scheduler_info(n_workers=-1)["workers"].values():
                    up.setdefault(w["name"], time.perf_counter() - t_submit)
                time.sleep(0.05)

    t_submit = time.perf_counter()
    with slurm_task_runner(config, store) as runner:
        watcher = threading.Thread(target=note_workers, args=(runner.workers.address,), daemon=True)
        watcher.start()
        out["cold_s"] = stage(f"bench {jobs} job(s) cold")
        watcher.join(timeout=120)
        out["warm_s"] = stage(f"bench {jobs} job(s) warm")
    out["job_start_s"] = sorted(up.values())
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="HF/STO-3G smoke test")
    parser.add_argument("--partition", default=None, help="partition of an existing SLURM (with SLURM_CONF)")
    parser.add_argument("--method", default="hf", choices=["hf", "dft"], help="hf, or dft (PBE, density fitting)")
    parser.add_argument("--basis", default="6-31g")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "slurm"))
    from local_slurm import local_slurm

    from flows.server import flow_server
    from hmc_core.configurations import from_atoms
    from tasks.label_settings import LabelSettings

    if args.quick:
        settings = LabelSettings(method="hf", basis="sto-3g", density_fit=False, dispersion="d3bj", n_workers=2,
                                 threads_per_worker=1)
    else:
        settings = LabelSettings(method=args.method, functional="pbe", basis=args.basis,
                                 density_fit=args.method == "dft", dispersion="d3bj", n_workers=2, threads_per_worker=1)
    configs = from_atoms(batch())
    n = configs.sizes["config"]
    print(f"{n} labels ({settings.method} {settings.basis}), one thread each, {len(os.sched_getaffinity(0))} cores")

    t_local = local_run(configs, settings, 2)
    print(f"local pool (2 processes): {t_local:.1f} s")
    runs = {}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="slurm-bench.") as work:
        if not os.environ.get("SLURM_CONF"):
            stack.enter_context(local_slurm())
        stack.enter_context(flow_server())
        for jobs in (1, 2):
            runs[jobs] = slurm_run(configs, settings, jobs, args.partition, Path(work))
            print(f"slurm, {jobs} job(s): cold {runs[jobs]['cold_s']:.1f} s, warm {runs[jobs]['warm_s']:.1f} s, "
                  f"jobs up after {', '.join(f'{t:.1f}' for t in runs[jobs]['job_start_s'])} s")

    lph = {"local": per_hour(n, t_local)}
    warm = {}
    for jobs in (1, 2):
        lph[f"slurm_{jobs}"] = per_hour(n, runs[jobs]["cold_s"])
        warm[f"slurm_{jobs}"] = per_hour(n, runs[jobs]["warm_s"])
    overhead = statistics.mean(runs[k]["cold_s"] - runs[k]["warm_s"] for k in (1, 2))
    registration = statistics.median(runs[1]["job_start_s"] + runs[2]["job_start_s"])
    print(f"\n{'run':<10} {'labels/h (from submission)':>28} {'labels/h (running jobs)':>25} {'vs local':>9}")
    print(f"{'local':<10} {lph['local']:>28.0f} {'':>25} {1.0:>9.2f}")
    for key in ("slurm_1", "slurm_2"):
        print(f"{key:<10} {lph[key]:>28.0f} {warm[key]:>25.0f} {lph[key] / lph['local']:>9.2f}")
    print(f"per-job overhead (fresh jobs: cold − warm, mean of slurm_1 and slurm_2): {overhead:.1f} s; "
          f"submission → worker registered: {registration:.1f} s (median of 3 jobs)")
    figures = {
        "batch": f"{n} labels: 4 H2O, 4 C2H5OH, 2 Ar13 (bench/label_throughput.py)",
        "method": ("PBE" if settings.method == "dft" else "HF") + f"-D3(BJ)/{settings.basis}"
                  + ("/DF" if settings.density_fit else ""),
        "load_average_1min_at_end": os.getloadavg()[0],
        "threads_per_label": 1,
        "cores": len(os.sched_getaffinity(0)),
        "labels_per_hour": lph,
        "labels_per_hour_running_jobs": warm,
        "slurm_2_vs_local": lph["slurm_2"] / lph["local"],
        "job_overhead_s": overhead,
        "job_registration_s": registration,
        "job_start_s": {f"slurm_{k}": v["job_start_s"] for k, v in runs.items()},
        "wall_s": {"local": t_local, **{f"slurm_{k}_cold": v["cold_s"] for k, v in runs.items()},
                   **{f"slurm_{k}_warm": v["warm_s"] for k, v in runs.items()}},
    }
    write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
