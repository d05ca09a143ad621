"""One label job, run in this process or in a worker process (spawned; PySCF imported after threads are set).

:func:`init_worker` sets the thread counts (OpenMP, BLAS, PySCF) before PySCF is imported in a fresh
worker; :func:`run_job` labels one configuration: cache lookup, warm-start density, SCF + gradient,
and the result written to the cache the moment it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tasks.label_cache import DensityMemory, LabelCache
from tasks.label_settings import LabelSettings


@dataclass(frozen=True)
class LabelJob:
    """One configuration to label: ``positions`` (n, 3) Å, ``species`` (n,) Z, ``cell`` (3, 3) Å, ``pbc`` (3,)."""

    index: int
    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    family: str
    key: str


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

    @classmethod
    def from_cache(cls, index: int, hit: dict) -> LabelOutcome:
        """A label read from the cache (``scf_cycles``/``wall_time`` are those of the original calculation)."""
        return cls(index, hit["energy"], hit["forces"], "ok", "", hit["scf_cycles"], hit["wall_time"], False, np.nan,
                   hit["ladder_step"], True)


_worker: dict = {}  # per worker process: settings, cache, density memory (set by init_worker)


def thread_environment(threads: int) -> dict[str, str]:
    """Environment for a worker with ``threads`` threads; passive waiting so idle threads free the core."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OMP_WAIT_POLICY": "PASSIVE"}


def init_worker(settings: LabelSettings, cache_dir: str | None, threads: int) -> None:
    """Process-pool initializer: threads first, then PySCF, then this worker's cache and density memory."""
    os.environ.update(thread_environment(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # numpy's BLAS may already be loaded
    from tasks import pyscf_adapter

    pyscf_adapter.set_threads(threads)
    _worker.update(settings=settings, cache=LabelCache(cache_dir) if cache_dir else None, memory=DensityMemory())


def run_in_worker(job: LabelJob) -> LabelOutcome:
    """Entry point in a worker process (after :func:`init_worker`)."""
    return run_job(job, _worker["settings"], _worker["cache"], _worker["memory"])


def run_job(job: LabelJob, settings: LabelSettings, cache: LabelCache | None, memory: DensityMemory) -> LabelOutcome:
    """Label one configuration (cache first), store the result, remember its density for warm starts."""
    from tasks.pyscf_adapter import run_label

    if cache is not None:
        hit = cache.get(job.family, job.key)
        if hit is not None:
            return LabelOutcome.from_cache(job.index, hit)
    dm0, distance = None, np.inf
    if settings.warm_start:
        dm0, distance = memory.nearest(job.family, job.positions)
        if cache is not None:
            dm_disk, d_disk = cache.nearest(job.family, job.positions)
            if d_disk < distance:
                dm0, distance = dm_disk, d_disk
        if distance > settings.warm_start_max_rmsd:
            dm0, distance = None, np.inf
    result = run_label(job.species, job.positions, job.cell, job.pbc, settings, dm0=dm0)
    if result.status == "ok":
        if result.dm is not None:
            memory.add(job.family, job.positions, result.dm)
        if cache is not None:
            cache.put(job.family, job.key, job.positions, result.energy, result.forces, result.scf_cycles,
                      result.wall_time, result.ladder_step, result.dm)
    return LabelOutcome(job.index, result.energy, result.forces, result.status, result.reason, result.scf_cycles,
                        result.wall_time, dm0 is not None, distance if dm0 is not None else np.nan,
                        result.ladder_step, False)
