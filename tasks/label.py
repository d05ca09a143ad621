"""Label stage: configurations → PySCF energies (eV) and forces (eV/Å) with provenance.

Stage contract (see :mod:`tasks.explore`): settings :class:`tasks.label_settings.LabelSettings`,
:class:`LabelInputs`, :func:`run_label` ``(inputs, settings, seed) -> LabelResult`` and its Prefect task
:data:`label_task`. The numerical core is :func:`label_configurations` (testable without Prefect), with
helpers :func:`label_atoms` (a list of ASE ``Atoms`` in) and :func:`label_file` (file in, netCDF out).

The whole batch is validated before any SCF starts (:func:`check_batch`). Labels are cached on disk
(:mod:`tasks.label_cache`; every entry is verified against the question before it is used), warm-started from
the nearest cached geometry of the same molecule, and run in separate processes when ``n_workers > 1``. A
configuration whose SCF does not converge after the ladder is recorded with ``status="failed"`` and NaN
labels; the batch goes on.

Deterministic labels: a label is a function of its configuration, the settings and the cache's content before
the call, bit for bit, whatever ``n_workers`` is. Two things make it so:

- Each PySCF calculation runs with one OpenMP/BLAS thread unless ``settings.threads_per_worker`` asks for
  more (parallelism comes from worker processes). Measured (water, HF and PBE/6-31G, PySCF 2.14): one thread
  gives bit-identical repeats; two threads differ from run to run by up to 5e-12 eV and 7e-12 eV/Å, since
  OpenMP reductions add in a scheduling-dependent order. Rounding stored labels (say to 1e-9 eV) would not
  cure that: a value near a rounding boundary still flips, with probability ~noise/grid per number (~5 % of
  water labels at 1e-9 eV). An explicit ``threads_per_worker > 1`` trades this reproducibility for speed on
  large molecules (pyscf-notes: 1.5x on 144+ basis functions).
- The warm-start guess of every configuration is chosen here, before any job runs, among cache entries that
  are not configurations of this call (nearest geometry, ties by key): it does not depend on which worker
  finishes first, nor on labels of this call finished before a kill (a resumed call picks the same guesses).
  Without a cache there are no warm starts. Results still depend on the guess at the SCF tolerance (at the
  default ``conv_tol`` 1e-9 Ha: energies ~1e-8 eV, forces ~1e-4 eV/Å), so the same configurations labeled with
  an empty cache and with a filled one agree to that tolerance, not bitwise.

Variables added per configuration: ``energy`` (eV), ``forces`` (eV/Å), ``status`` ("ok"/"failed"),
``reason``, ``scf_cycles``, ``wall_time`` (s), ``warm_start`` (1 if started from a stored density),
``warm_start_rmsd`` (Å from the geometry whose density was used), ``cache_hit``, ``scf_ladder_step``
(``"none"`` = converged at the first attempt), ``scf_stability`` ("stable", "unstable→reoptimised" or "not
checked"; see ``LabelSettings.stability_check``). For cache hits ``scf_cycles`` and ``wall_time`` are those of the
original calculation.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import task

from hmc_core.configurations import (
    ConfigurationError,
    config_arrays,
    from_atoms,
    read_structures,
    validate,
    write_netcdf,
)
from hmc_core.neighbors import closest_pair
from tasks.label_cache import LabelCache, LabelQuestion, labeler_identity
from tasks.label_settings import LabelSettings
from tasks.label_worker import LabelJob, LabelOutcome, init_worker, run_in_worker, run_job

__all__ = ["LabelInputError", "LabelInputs", "LabelResult", "LabelSettings", "check_batch", "label_atoms",
           "label_configurations", "label_file", "label_task", "run_label", "successful"]

Progress = Callable[[int, int], None]


class LabelInputError(ValueError):
    """Configurations that cannot be labeled as given (found before any SCF starts)."""


def _pyscf():
    from tasks import pyscf_adapter

    return pyscf_adapter


def _ase():
    from tasks import ase_labeler

    return ase_labeler


def check_batch(configs: xr.Dataset, settings: LabelSettings) -> None:
    """Raise :class:`LabelInputError` for the first problem that would make a label wrong or fail.

    ASE labelers (``settings.labeler != "pyscf"``) have their own checks (:func:`tasks.ase_labeler.check_batch`).
    PySCF checks, in this order: empty input; schema; per configuration no atoms, NaN/inf positions or cell,
    a system PySCF cannot give forces for (periodic rules), atoms closer than ``settings.min_distance`` Å
    (coincident atoms named as a duplicated atom, before the spin check they would otherwise fail), electron
    count vs charge and spin; then every element against the basis (and its ECP).
    """
    if settings.labeler != "pyscf":
        return _ase().check_batch(configs, settings)
    if configs.sizes.get("config", 0) == 0:
        raise LabelInputError("nothing to label: the configurations dataset is empty")
    try:
        validate(configs)
    except ConfigurationError as exc:
        raise LabelInputError(str(exc)) from None
    adapter = _pyscf()
    periodic_species: set[int] = set()
    open_species: set[int] = set()  # elements of open-boundary configurations (all-electron/ECP rules)
    for k in range(configs.sizes["config"]):
        pos, species, cell, pbc = config_arrays(configs, k)
        where = f"config {k}"
        if len(species) == 0:
            raise LabelInputError(f"{where} has no atoms")
        if not np.all(np.isfinite(pos)):
            bad = sorted({int(a) for a in np.nonzero(~np.isfinite(pos))[0]})
            raise LabelInputError(f"{where}: positions of atoms {bad[:10]} are NaN or inf")
        if not np.all(np.isfinite(cell)):
            raise LabelInputError(f"{where}: the cell contains NaN or inf")
        try:
            adapter.check_supported(settings, pbc)
        except adapter.UnsupportedLabelError as exc:
            raise LabelInputError(f"{where}: {exc}") from None
        if pbc.any():
            if abs(np.linalg.det(cell)) < 1e-6:
                raise LabelInputError(f"{where} is periodic but its cell has zero volume; give the lattice vectors")
            periodic_species.update(int(z) for z in species)
        else:
            open_species.update(int(z) for z in species)
        pair = closest_pair(pos, cell, pbc, settings.min_distance)  # before the spin check: a duplicated
        if pair is not None:                                           # atom also changes the electron count
            i, j, d = pair
            if d < 0.1:
                raise LabelInputError(f"{where}: atoms {i} and {j} coincide ({d:.3f} Å apart): a duplicated atom in "
                                      f"the structure; remove the copy")
            raise LabelInputError(f"{where}: atoms {i} and {j} are {d:.3f} Å apart, closer than min_distance "
                                  f"{settings.min_distance} Å (a broken or overlapping structure; lower "
                                  f"min_distance only if this is intended)")
        n_electrons = int(species.sum()) - settings.charge
        if n_electrons <= 0:
            raise LabelInputError(f"{where}: charge {settings.charge} leaves {n_electrons} electrons")
        if settings.spin > n_electrons or (n_electrons - settings.spin) % 2:
            example = ("spin=0 for a closed shell, 2 for a triplet" if n_electrons % 2 == 0
                       else "spin=1 for a doublet, 3 for a quartet")
            hint = (f"give a spin 2S with the parity of the electron count ({example}) or change the charge"
                    if (n_electrons - settings.spin) % 2 else "lower the spin")
            raise LabelInputError(f"{where}: {n_electrons} electrons (charge {settings.charge}) cannot have spin "
                                  f"2S={settings.spin}; {hint}")
    try:  # each element under the rules of the systems it occurs in (a GTH basis has no core for open ones)
        if open_species:
            adapter.check_elements(np.array(sorted(open_species)), settings, periodic=False)
        if periodic_species:
            adapter.check_elements(np.array(sorted(periodic_species)), settings, periodic=True)
    except ValueError as exc:
        raise LabelInputError(str(exc)) from None


def calculation_threads(settings: LabelSettings) -> int:
    """OpenMP/BLAS threads of one PySCF calculation: ``settings.threads_per_worker``, default 1 (the only count
    that gives bit-reproducible labels; see the module docstring)."""
    return settings.threads_per_worker or 1


def _questions(configs: xr.Dataset, settings: LabelSettings, version: str) -> list[LabelQuestion]:
    method_key, labeler = settings.method_key(), labeler_identity(version)
    questions = []
    for k in range(configs.sizes["config"]):
        pos, species, cell, pbc = config_arrays(configs, k)
        questions.append(LabelQuestion(species, pos, cell, pbc, method_key, labeler, settings.position_tolerance))
    return questions


def _run_parallel(jobs: list[LabelJob], settings: LabelSettings, cache_dir: str | None, n_workers: int,
                  on_done: Callable[[LabelOutcome], None]) -> list[LabelJob]:
    """Run ``jobs`` in ``n_workers`` spawned processes; returns the jobs lost to a crashed worker."""
    threads = calculation_threads(settings)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_worker,
                             initargs=(settings, cache_dir, threads)) as pool:
        futures = {pool.submit(run_in_worker, job): job for job in jobs}
        lost = []
        for future in as_completed(futures):
            try:
                on_done(future.result())
            except BrokenProcessPool:
                lost.append(futures[future])
    return lost


def label_configurations(configs: xr.Dataset, settings: LabelSettings, cache_dir: str | os.PathLike | None = None,
                         n_workers: int | None = None, progress: Progress | None = None,
                         labeled_alongside: xr.Dataset | None = None) -> xr.Dataset:
    """Label every configuration with PySCF; returns ``configs`` plus energies, forces and provenance.

    ``configs``: a configurations dataset (``hmc_core.configurations`` schema; positions Å).
    ``cache_dir``: folder of the persistent label cache (None: no cache and no warm starts; see the module
    docstring on determinism). ``n_workers``: processes (default ``settings.n_workers``).
    ``progress(done, total)`` is called after each finished configuration.
    ``labeled_alongside``: configurations labeled at the same time by other calls into the same cache (e.g. the
    other batches of one iteration on Dask workers); like this call's own, they are never warm-start sources,
    so the guesses, and hence the labels, do not depend on which call finishes first.
    Existing ``energy``/``forces`` variables are replaced by the labels.

    Workers are *spawned*: a script that calls this with ``n_workers > 1`` at import level needs the usual
    ``if __name__ == "__main__":`` guard. Inside a daemonic process (a Dask worker) labels run in-process.
    ASE labelers (``settings.labeler``) are computed by :func:`tasks.ase_labeler.label_configurations`.
    """
    if settings.labeler != "pyscf":
        return _ase().label_configurations(configs, settings, cache_dir, n_workers, progress)
    check_batch(configs, settings)
    adapter = _pyscf()
    n_config = configs.sizes["config"]
    questions = _questions(configs, settings, adapter.PYSCF_VERSION)
    outcomes: dict[int, LabelOutcome] = {}

    def on_done(outcome: LabelOutcome) -> None:
        outcomes[outcome.index] = outcome
        if progress is not None:
            progress(len(outcomes), n_config)

    try:
        cache = LabelCache(cache_dir) if cache_dir is not None else None
    except ValueError as exc:  # an unusable cache folder: refused before any SCF, like bad input
        raise LabelInputError(str(exc)) from None
    pending = []
    for k, question in enumerate(questions):  # cache hits are answered here, without starting workers
        hit = cache.get(question) if cache is not None else None
        if hit is None:
            pending.append(k)
        else:
            on_done(LabelOutcome.from_cache(k, hit, settings))
    alongside = _questions(labeled_alongside, settings, adapter.PYSCF_VERSION) if labeled_alongside is not None else []
    pending = _plan_warm_starts(questions, pending, settings, cache, {q.key for q in questions + alongside})
    n_workers = min(n_workers or settings.n_workers, len(pending))
    if n_workers > 1 and multiprocessing.current_process().daemon:
        n_workers = 1  # a daemonic process (e.g. a Dask worker) may not start children: label in this process
    if n_workers > 1:
        cache_str = str(Path(cache_dir)) if cache_dir is not None else None
        lost = _run_parallel(pending, settings, cache_str, n_workers, on_done)
        if lost:  # a worker died (killed, out of memory): finished labels are safe, retry the rest once
            if cache is not None:
                cache.remove_stale_temporaries()  # what the dead worker (or its terminated peers) left mid-write
            lost = _run_parallel(lost, settings, cache_str, n_workers, on_done)
        if cache is not None:
            cache.remove_stale_temporaries()
        for job in lost:
            on_done(LabelOutcome.failed(job.index, len(job.question.species),
                                        "worker process died twice while this configuration was pending"))
    elif pending:
        from threadpoolctl import threadpool_limits

        threads = calculation_threads(settings)
        previous = adapter.set_threads(threads)
        try:
            with threadpool_limits(limits=threads):
                for job in pending:
                    on_done(run_job(job, settings, cache))
        finally:
            adapter.set_threads(previous)
    return _assemble(configs, [outcomes[k] for k in range(n_config)], settings, adapter.PYSCF_VERSION)


def _plan_warm_starts(questions: list[LabelQuestion], pending: list[int], settings: LabelSettings,
                      cache: LabelCache | None, exclude: set[str]) -> list[LabelJob]:
    """Jobs for the ``pending`` configurations, each with its warm-start source: the nearest cache entry of the
    same family (within ``settings.warm_start_max_rmsd`` Å) whose key is not in ``exclude`` (this call's)."""
    if not settings.warm_start or cache is None:
        return [LabelJob(k, questions[k]) for k in pending]
    jobs = []
    for k in pending:
        path, distance = cache.nearest(questions[k], exclude=exclude)
        if path is not None and distance <= settings.warm_start_max_rmsd:
            jobs.append(LabelJob(k, questions[k], str(path), distance))
        else:
            jobs.append(LabelJob(k, questions[k]))
    return jobs


def _assemble(configs: xr.Dataset, outcomes: list[LabelOutcome], settings: LabelSettings, version: str) -> xr.Dataset:
    out = configs.copy()
    n_config, n_max = out.sizes["config"], out.sizes["atom"]
    forces = np.full((n_config, n_max, 3), np.nan)
    n_atoms = configs["n_atoms"].values
    for k, o in enumerate(outcomes):
        if o.status == "ok" and not (np.isfinite(o.energy) and np.shape(o.forces) == (n_atoms[k], 3)
                                     and np.all(np.isfinite(o.forces))):  # never an "ok" label with holes
            outcomes[k] = o = LabelOutcome.failed(o.index, int(n_atoms[k]), "non-finite or wrong-shaped label")
        forces[o.index, : len(o.forces)] = o.forces
    out["energy"] = ("config", np.array([o.energy for o in outcomes], np.float64), {"units": "eV"})
    out["forces"] = (("config", "atom", "xyz"), forces, {"units": "eV/Å"})
    out["status"] = ("config", np.array([o.status for o in outcomes], dtype=str))
    out["reason"] = ("config", np.array([o.reason for o in outcomes], dtype=str))
    out["scf_cycles"] = ("config", np.array([o.scf_cycles for o in outcomes], np.int32))
    out["wall_time"] = ("config", np.array([o.wall_time for o in outcomes], np.float64), {"units": "s"})
    out["warm_start"] = ("config", np.array([o.warm_start for o in outcomes], np.int8))
    out["warm_start_rmsd"] = ("config", np.array([o.warm_start_rmsd for o in outcomes], np.float64), {"units": "Å"})
    out["cache_hit"] = ("config", np.array([o.cache_hit for o in outcomes], np.int8))
    out["scf_ladder_step"] = ("config", np.array([o.ladder_step for o in outcomes], dtype=str))
    out["scf_stability"] = ("config", np.array([o.stability for o in outcomes], dtype=str))
    out.attrs.update({
        "label_method": settings.method,
        "label_functional": settings.functional if settings.method == "dft" else "",
        "label_basis": settings.basis,
        "label_density_fit": int(settings.density_fit),
        "label_dispersion": settings.dispersion or "none",
        "label_charge": settings.charge,
        "label_spin": settings.spin,
        "label_conv_tol_hartree": settings.conv_tol,
        "label_settings": settings.model_dump_json(),
        "pyscf_version": version,
    })
    return out


def successful(labels: xr.Dataset) -> xr.Dataset:
    """Only the labels usable for fitting (:func:`hmc_core.mtp.fit.usable_labels`: status ``ok`` and a finite
    energy; failed labels never enter training data)."""
    from hmc_core.mtp.fit import usable_labels

    return usable_labels(labels)


@dataclass(frozen=True)
class LabelInputs:
    """configs: the configurations to label (positions Å); cache_dir: the label cache folder (None: none);
    labeled_alongside: configurations other calls label into the same cache at the same time (Dask batches)."""

    configs: xr.Dataset
    cache_dir: str | None = None
    labeled_alongside: xr.Dataset | None = None


@dataclass(frozen=True)
class LabelResult:
    """labels: ``configs`` plus energy (eV), forces (eV/Å), status/reason and provenance; n_ok / n_failed."""

    labels: xr.Dataset
    n_ok: int
    n_failed: int


def run_label(inputs: LabelInputs, settings: LabelSettings, seed=None) -> LabelResult:
    """The label stage (stage contract of :mod:`tasks.explore`): :func:`label_configurations` with
    ``settings.n_workers`` processes. ``seed`` is accepted for the common signature; labels use no randomness."""
    labels = label_configurations(inputs.configs, settings, cache_dir=inputs.cache_dir,
                                  labeled_alongside=inputs.labeled_alongside)
    n_ok = int(successful(labels).sizes["config"])
    return LabelResult(labels, n_ok, int(labels.sizes["config"]) - n_ok)


def label_atoms(atoms: Iterable, settings: LabelSettings, **kwargs) -> xr.Dataset:
    """:func:`label_configurations` for a list of ASE ``Atoms`` (positions Å)."""
    atoms = list(atoms)
    if not atoms:
        raise LabelInputError("nothing to label: the list of structures is empty")
    return label_configurations(from_atoms(atoms), settings, **kwargs)


def label_file(path: str | os.PathLike, settings: LabelSettings, out: str | os.PathLike,
               cache_dir: str | os.PathLike | None = None, n_workers: int | None = None,
               progress: Progress | None = None) -> xr.Dataset:
    """Read structures from ``path`` (any ASE format or netCDF), label them, write ``out`` (netCDF) atomically."""
    labels = label_configurations(read_structures(path), settings, cache_dir=cache_dir, n_workers=n_workers,
                                  progress=progress)
    write_netcdf(labels, out)
    return labels


label_task = task(run_label, name="label")
