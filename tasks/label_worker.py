"""One label job, run in this process or in a worker process (spawned; PySCF imported after threads are set).

:func:`init_worker` sets the thread counts (OpenMP, BLAS, PySCF) before PySCF is imported in a fresh
worker; :func:`run_job` labels one configuration: cache lookup (verified), the warm-start density chosen by
the parent (:func:`tasks.label.label_configurations` picks it before any job runs, so the guess does not
depend on which worker runs what), SCF + gradient, and the result written to the cache the moment it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tasks.label_cache import LabelCache, LabelQuestion
from tasks.label_settings import LabelSettings


@dataclass(frozen=True)
class LabelJob:
    """One configuration to label (``question``: species, positions Å, cell Å, pbc, method, labeler) and the
    cache entry whose density starts its SCF (``warm_start``, None = PySCF's default guess) at
    ``warm_start_rmsd`` Å."""

    index: int
    question: LabelQuestion
    warm_start: str | None = None
    warm_start_rmsd: float = np.nan


@dataclass
class LabelOutcome:
    """What :func:`run_job` returns: energy eV, forces (n, 3) eV/Å, provenance of this one label."""

    index: int
    energy: float
    forces: np.ndarray
    status: str
    reason: str
    scf_cycles: int
    wall_time: float
    warm_start: bool
    warm_start_rmsd: float
    ladder_step: str
    cache_hit: bool
    stability: str = "not checked"  # SCF stability check: "stable", "unstable→reoptimised", "not checked"

    @classmethod
    def from_cache(cls, index: int, hit: dict, settings: LabelSettings) -> LabelOutcome:
        """A label read from the cache (``scf_cycles``/``wall_time`` are those of the original calculation). Whether
        stability was checked is part of the cache key, and only stable solutions are stored when it is."""
        return cls(index, hit["energy"], hit["forces"], "ok", "", hit["scf_cycles"], hit["wall_time"], False, np.nan,
                   hit["ladder_step"], True, "stable" if settings.checks_stability() else "not checked")

    @classmethod
    def failed(cls, index: int, n_atoms: int, reason: str, scf_cycles: int = 0, wall_time: float = 0.0,
               ladder_step: str = "failed") -> LabelOutcome:
        """A label that did not succeed: NaN energy and forces, ``status="failed"``."""
        return cls(index, np.nan, np.full((n_atoms, 3), np.nan), "failed", reason, scf_cycles, wall_time, False,
                   np.nan, ladder_step, False)


_worker: dict = {}  # per worker process: settings, cache (set by init_worker)


def thread_environment(threads: int) -> dict[str, str]:
    """Environment for a worker with ``threads`` threads; passive waiting so idle threads free the core."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"}


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the process that started it dies (``PR_SET_PDEATHSIG``), so a
    ``kill -9`` of a labeling command never leaves PySCF workers behind; a worker whose parent is already gone
    (killed between the spawn and this call: the worker was re-parented) exits at once. No-op elsewhere."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os._exit(1)


def init_worker(settings: LabelSettings, cache_dir: str | None, threads: int) -> None:
    """Process-pool initializer: die with the parent, threads first, then PySCF, then this worker's cache."""
    die_with_parent()
    os.environ.update(thread_environment(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # numpy's BLAS may already be loaded
    from tasks import pyscf_adapter

    pyscf_adapter.set_threads(threads)
    _worker.update(settings=settings, cache=LabelCache(cache_dir) if cache_dir else None)


def run_in_worker(job: LabelJob) -> LabelOutcome:
    """Entry point in a worker process (after :func:`init_worker`)."""
    return run_job(job, _worker["settings"], _worker["cache"])


def run_job(job: LabelJob, settings: LabelSettings, cache: LabelCache | None) -> LabelOutcome:
    """Label one configuration (a verified cache entry first), store the result in the cache."""
    from tasks.pyscf_adapter import PYSCF_VERSION, run_label

    q = job.question
    if cache is not None:
        hit = cache.get(q)
        if hit is not None:
            return LabelOutcome.from_cache(job.index, hit, settings)
    dm0 = cache.density(job.warm_start, q) if cache is not None and job.warm_start is not None else None
    result = run_label(q.species, q.positions, q.cell, q.pbc, settings, dm0=dm0)
    forces = np.asarray(result.forces, np.float64)
    if result.status == "ok" and not (np.isfinite(result.energy) and forces.shape == (len(q.species), 3)
                                      and np.all(np.isfinite(forces))):
        return LabelOutcome.failed(job.index, len(q.species), f"labeler returned energy {result.energy!r} and forces "
                                   f"of shape {forces.shape} with non-finite values or the wrong shape",
                                   result.scf_cycles, result.wall_time)
    if result.status == "ok" and cache is not None:
        cache.put(q, result.energy, forces, result.scf_cycles, result.wall_time, result.ladder_step, result.dm,
                  PYSCF_VERSION)
    return LabelOutcome(job.index, result.energy, forces, result.status, result.reason, result.scf_cycles,
                        result.wall_time, dm0 is not None, job.warm_start_rmsd if dm0 is not None else np.nan,
                        result.ladder_step, False, result.stability)
