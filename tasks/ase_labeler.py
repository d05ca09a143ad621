"""Labels from ASE calculators that run offline: the same contract as the PySCF labels of :mod:`tasks.label`.

Chosen with ``LabelSettings.labeler`` (``[labeling] labeler`` in a campaign file):

- ``"ase:lj"``  ``ase.calculators.lj.LennardJones``, a validation oracle. ``parameters``: ``epsilon`` (eV),
  ``sigma`` (Å), ``rc`` (cutoff, Å), ``smooth``, ``ro`` (Å). Defaults: argon as ``pesflow coexist --element Ar``
  uses it (:data:`hmc_core.potentials.lennard_jones.RARE_GAS`: ε/k_B = 119.8 K, σ = 3.405 Å, cutoff 3σ).
  ASE shifts the pair energy to zero at ``rc`` (no tail correction).
- ``"ase:emt"`` ``ase.calculators.emt.EMT`` (H, C, N, O, Al, Ni, Cu, Pd, Ag, Pt, Au); ``parameters``:
  ``asap_cutoff``.
- ``"ase:xtb"`` ``tblite.ase.TBLite``; ``parameters``: ``method`` (``"GFN2-xTB"`` default, ``"GFN1-xTB"``),
  ``charge``, ``multiplicity``, ``accuracy``, ``electronic_temperature`` (K), ``max_iterations``,
  ``verbosity`` (default 0). Elements H–Rn (Z ≤ 86).
- ``"ase"`` with ``calculator = "package.module:ClassName"``: any other ASE calculator class, built as
  ``ClassName(**parameters)``. The class is imported and built once when the settings are validated; a class
  that cannot be imported, is not an ASE calculator, or rejects the parameters (names checked against its
  ``default_parameters`` and constructor arguments when it declares them) is refused then, in one line.

Output (:func:`label_configurations`): the configurations plus ``energy`` (eV), ``forces`` (eV/Å), ``stress``
((config, voigt) eV/Å³, ASE sign convention, when any configuration is 3-D periodic and the calculator
implements stress; NaN elsewhere) and the provenance variables of the PySCF labels (``status``, ``reason``,
``wall_time`` s, ``cache_hit``; ``scf_cycles`` 0, ``warm_start`` 0, ``scf_ladder_step`` "none"). A calculator
that raises, or returns non-finite numbers, gives ``status="failed"`` with its exception as ``reason``; the
batch goes on. Labels are cached (:class:`tasks.label_cache.LabelCache`) under a key made of the labeler, the
calculator class, its resolved parameters (defaults included), and the versions of pesflow, ASE and the
calculator's package (major.minor). ``n_workers > 1`` runs configurations in spawned processes with
``threads_per_worker`` (default 1) OpenMP/BLAS threads each.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.label_cache import LabelCache, LabelQuestion, pesflow_version
from tasks.label_worker import LabelJob, LabelOutcome, die_with_parent, thread_environment

if TYPE_CHECKING:  # xarray, numba (via neighbors) are imported where used: workers start without them
    import xarray as xr

LABELER = "pesflow.ase_labeler"
LABELER_REVISION = 1  # bump when this module's numbers change for the same settings (old cache entries then miss)
XTB_MAX_Z = 86  # tblite's GFN1/GFN2 parametrisations cover H–Rn


def _argon() -> tuple[float, float]:
    """(ε eV, σ Å) of argon, the values ``pesflow coexist --element Ar`` uses."""
    from hmc_core.potentials.lennard_jones import RARE_GAS
    from hmc_core.units import METAL

    _, eps_k, sigma = RARE_GAS["Ar"]
    return eps_k * METAL.kB, sigma


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LJParameters(_Parameters):
    """``ase:lj``: epsilon (eV), sigma (Å), rc (cutoff Å; default 3σ), smooth (ASE's smooth cutoff from ro to rc),
    ro (Å, only with smooth; default 0.66·rc in ASE)."""

    epsilon: float = Field(default_factory=lambda: _argon()[0], gt=0, allow_inf_nan=False)
    sigma: float = Field(default_factory=lambda: _argon()[1], gt=0, allow_inf_nan=False)
    rc: float | None = Field(None, gt=0, allow_inf_nan=False)
    smooth: bool = False
    ro: float | None = Field(None, gt=0, allow_inf_nan=False)

    def resolved(self) -> dict:
        rc = 3.0 * self.sigma if self.rc is None else self.rc
        if self.ro is not None and not self.ro < rc:
            raise ValueError(f"ro = {self.ro} must be smaller than rc = {rc}")
        return {"epsilon": self.epsilon, "sigma": self.sigma, "rc": rc, "smooth": self.smooth,
                **({"ro": self.ro} if self.ro is not None else {})}


class EMTParameters(_Parameters):
    """``ase:emt``: asap_cutoff (ASAP's cutoff convention instead of ASE's)."""

    asap_cutoff: bool = False

    def resolved(self) -> dict:
        return self.model_dump()


class XTBParameters(_Parameters):
    """``ase:xtb``: tblite's keyword arguments (method, charge e, multiplicity 2S+1, accuracy, electronic
    temperature K, SCC iteration limit, verbosity)."""

    method: Literal["GFN2-xTB", "GFN1-xTB"] = "GFN2-xTB"
    charge: int | None = None
    multiplicity: int | None = Field(None, ge=1)
    accuracy: float = Field(1.0, gt=0, allow_inf_nan=False)
    electronic_temperature: float = Field(300.0, gt=0, allow_inf_nan=False)
    max_iterations: int = Field(250, ge=1)
    verbosity: int = Field(0, ge=0)

    def resolved(self) -> dict:
        return self.model_dump(exclude_none=True)


BUILTIN = {"lj": ("ase.calculators.lj:LennardJones", LJParameters),
           "emt": ("ase.calculators.emt:EMT", EMTParameters),
           "xtb": ("tblite.ase:TBLite", XTBParameters)}
LABELERS = ("pyscf", *(f"ase:{name}" for name in BUILTIN), "ase")


class AseLabelerError(ValueError):
    """An ASE labeler that cannot be used as configured (one line: what, and how to fix it)."""


@dataclass(frozen=True)
class AseSpec:
    """A resolved ASE labeler: ``labeler`` ("ase:lj", … or "ase"), ``calculator`` ("module:Class"), the class,
    ``parameters`` (keyword arguments, defaults filled in, JSON-normal), ``versions`` (package → version)."""

    labeler: str
    calculator: str
    cls: type
    parameters: dict
    versions: dict

    def make(self):
        """A fresh calculator instance."""
        return self.cls(**self.parameters)

    def method_key(self) -> dict:
        """The cache key's method part: labeler, class and resolved parameters."""
        return {"labeler": self.labeler, "calculator": self.calculator, "parameters": self.parameters}

    def identity(self) -> dict:
        """The cache key's labeler part: this module's revision and the major.minor versions that change numbers."""
        return {"labeler": LABELER, "revision": LABELER_REVISION,
                **{name: ".".join(v.split(".")[:2]) for name, v in self.versions.items()}}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        module = importlib.import_module(package)
        return str(getattr(module, "__version__", "unknown"))


def _check_value(name: str, value: Any) -> None:
    """Parameters are TOML/JSON values: finite numbers, booleans, text, lists and tables of them (no null)."""
    if isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AseLabelerError(f"parameters.{name} = {value!r} is not finite")
        return
    if isinstance(value, list | tuple):
        for k, v in enumerate(value):
            _check_value(f"{name}[{k}]", v)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_value(f"{name}.{k}", v)
        return
    raise AseLabelerError(f"parameters.{name} = {value!r}: a {type(value).__name__} is not allowed (numbers, "
                          "booleans, text, lists and tables only; leave a key out for its default)")


def _import_class(path: str, what: str | None = None) -> type:
    """The class named by ``"package.module:ClassName"``; AseLabelerError when it cannot be imported. ``what``
    names the setting in messages (default ``calculator = '<path>'``)."""
    from ase.calculators.calculator import BaseCalculator

    what = what or f"calculator = {path!r}"
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name or ":" in class_name:
        raise AseLabelerError(f"{what} is not an import path; write \"package.module:ClassName\", "
                              "e.g. \"ase.calculators.morse:MorsePotential\"")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while being imported
        raise AseLabelerError(f"{what} cannot be imported ({type(exc).__name__}: {exc}); install the package "
                              f"that provides {module_name} or fix the path") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AseLabelerError(f"{what} cannot be imported: module {module_name} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseCalculator)):
        raise AseLabelerError(f"{what} is not an ASE calculator class (a subclass of "
                              "ase.calculators.calculator.BaseCalculator)")
    return cls


def _known_names(cls: type) -> set[str] | None:
    """Parameter names a calculator class declares (``default_parameters`` and named constructor arguments), or
    None when it declares none beyond ``**kwargs`` (then any name is passed on)."""
    from ase.calculators.calculator import Calculator

    names = set(getattr(cls, "default_parameters", {}) or {})
    base = set(inspect.signature(Calculator.__init__).parameters)
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in base:
            names.add(p.name)
    return names or None


def resolve(labeler: str, calculator: str | None, parameters: dict) -> AseSpec:
    """Check an ASE labeler choice and resolve it (class imported, parameters validated and defaulted, the class
    built once). Raises :class:`AseLabelerError` with one line naming the key, the value and what is allowed."""
    for name, value in parameters.items():
        _check_value(name, value)
    return _resolve(labeler, calculator, json.dumps(parameters, sort_keys=True))


@lru_cache(maxsize=64)
def _resolve(labeler: str, calculator: str | None, parameters_json: str) -> AseSpec:
    parameters = json.loads(parameters_json)
    if labeler == "ase":
        if calculator is None:
            raise AseLabelerError("labeler = \"ase\" needs calculator = \"package.module:ClassName\" (or use a "
                                  f"built-in: {', '.join(LABELERS[1:-1])})")
        cls = _import_class(calculator)
        known = _known_names(cls)
        unknown = sorted(set(parameters) - known) if known is not None else []
        if unknown:
            raise AseLabelerError(f"unknown parameters {unknown} for {calculator}; it takes "
                                  f"{', '.join(sorted(known))}")
        resolved = {**(getattr(cls, "default_parameters", {}) or {}), **parameters}
        path = calculator
    else:
        name = labeler.removeprefix("ase:")
        if not labeler.startswith("ase:") or name not in BUILTIN:
            raise AseLabelerError(f"unknown labeler {labeler!r}; choose {', '.join(LABELERS[:-1])}, or \"ase\" with "
                                  "calculator = \"package.module:ClassName\" for another ASE calculator")
        if calculator is not None:
            raise AseLabelerError(f"calculator = {calculator!r} is only used with labeler = \"ase\" (labeler "
                                  f"{labeler!r} is built in)")
        path, model = BUILTIN[name]
        try:
            resolved = model(**parameters).resolved()
        except ValidationError as exc:
            parts = [f"parameters.{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: "
                     + ("unknown parameter" if e["type"] == "extra_forbidden"
                        else e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
            allowed = ", ".join(model.model_fields)
            raise AseLabelerError(f"labeler {labeler!r}: " + "; ".join(parts) + f" (parameters: {allowed})") from None
        except ValueError as exc:
            raise AseLabelerError(f"labeler {labeler!r}: {exc}") from None
        cls = _import_class(path, f"labeler {labeler!r} (class {path})")
    resolved = json.loads(json.dumps(resolved, sort_keys=True))  # JSON-normal: equal to its cache-header copy
    package = path.split(".")[0].split(":")[0]
    versions = {"pesflow": pesflow_version(), "ase": _version("ase")}
    if package != "ase":
        versions[package] = _version(package)
    spec = AseSpec(labeler, path, cls, resolved, versions)
    try:
        spec.make()
    except Exception as exc:  # the class's own check of its arguments, in its own words
        raise AseLabelerError(f"{path} rejected parameters {resolved} ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())})") from None
    return spec


def spec_of(settings) -> AseSpec:
    """The resolved labeler of ``settings`` (a :class:`tasks.label_settings.LabelSettings` with an ASE labeler)."""
    return resolve(settings.labeler, settings.calculator, dict(settings.parameters))


def _supported_elements(spec: AseSpec) -> tuple[Callable[[int], bool], str] | None:
    """(is Z covered, what is covered) for calculators with a known element list; None = not checkable."""
    if spec.labeler == "ase:emt":
        from ase.calculators.emt import parameters
        from ase.data import atomic_numbers

        covered = {atomic_numbers[s] for s in parameters}
        return (lambda z: z in covered), "EMT covers " + ", ".join(sorted(parameters))
    if spec.labeler == "ase:xtb":
        return (lambda z: 1 <= z <= XTB_MAX_Z), f"{spec.parameters['method']} covers H–Rn (Z ≤ {XTB_MAX_Z})"
    return None


def check_batch(configs: xr.Dataset, settings) -> None:
    """Raise :class:`tasks.label.LabelInputError` for the first problem found before any calculation: empty
    input, schema, no atoms, NaN/inf positions or cell, a periodic cell of zero volume, atoms closer than
    ``settings.min_distance`` Å, an element the calculator does not cover (EMT, xtb)."""
    from ase.data import chemical_symbols

    from hmc_core.configurations import ConfigurationError, config_arrays, validate
    from hmc_core.neighbors import closest_pair
    from tasks.label import LabelInputError

    if configs.sizes.get("config", 0) == 0:
        raise LabelInputError("nothing to label: the configurations dataset is empty")
    try:
        validate(configs)
    except ConfigurationError as exc:
        raise LabelInputError(str(exc)) from None
    covers = _supported_elements(spec_of(settings))
    for k in range(configs.sizes["config"]):
        pos, species, cell, pbc = config_arrays(configs, k)
        where = f"config {k}"
        if len(species) == 0:
            raise LabelInputError(f"{where} has no atoms")
        if not np.all(np.isfinite(pos)):
            raise LabelInputError(f"{where}: positions are NaN or inf")
        if not np.all(np.isfinite(cell)):
            raise LabelInputError(f"{where}: the cell contains NaN or inf")
        if pbc.any() and abs(np.linalg.det(cell)) < 1e-6:
            raise LabelInputError(f"{where} is periodic but its cell has zero volume; give the lattice vectors")
        pair = closest_pair(pos, cell, pbc, settings.min_distance)
        if pair is not None:
            i, j, d = pair
            raise LabelInputError(f"{where}: atoms {i} and {j} are {d:.3f} Å apart, closer than min_distance "
                                  f"{settings.min_distance} Å (a broken or overlapping structure; lower "
                                  "min_distance only if this is intended)")
        if covers is not None:
            bad = sorted({int(z) for z in species if not covers[0](int(z))})
            if bad:
                names = ", ".join(f"{chemical_symbols[z] if z < len(chemical_symbols) else '?'} (Z={z})" for z in bad)
                raise LabelInputError(f"{where}: element {names} is not covered by labeler {settings.labeler!r} "
                                      f"({covers[1]}); choose another labeler")


# ---- computing -------------------------------------------------------------------------------------------------

def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_hit(index: int, hit: dict) -> tuple[LabelOutcome, np.ndarray | None]:
    """A label read from the cache (``wall_time`` that of the original calculation) and its stress."""
    return (LabelOutcome(index, hit["energy"], hit["forces"], "ok", "", 0, hit["wall_time"], False, np.nan, "none",
                         True), hit.get("stress"))


def run_job(job: LabelJob, spec: AseSpec, cache: LabelCache | None) -> tuple[LabelOutcome, np.ndarray | None]:
    """Label one configuration (a verified cache entry first) and cache a success. Returns the outcome and the
    stress (6,) eV/Å³ (Voigt, ASE sign) or None. A calculator exception or non-finite result is a failed label."""
    q = job.question
    n = len(q.species)
    if cache is not None:
        hit = cache.get(q)
        if hit is not None:
            return _from_hit(job.index, hit)
    from ase import Atoms
    from ase.calculators.calculator import PropertyNotImplementedError

    t0 = time.perf_counter()
    stress = None
    try:
        atoms = Atoms(numbers=q.species, positions=q.positions, cell=q.cell, pbc=q.pbc)
        atoms.calc = spec.make()
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), np.float64)
        if q.pbc.all() and "stress" in getattr(atoms.calc, "implemented_properties", ()):
            try:
                stress = np.array(atoms.get_stress(voigt=True), np.float64)
            except PropertyNotImplementedError:
                stress = None
    except Exception as exc:  # any calculator error is this label's failure, not the batch's
        return LabelOutcome.failed(job.index, n, _one_line(exc), wall_time=time.perf_counter() - t0), None
    wall = time.perf_counter() - t0
    if not (np.isfinite(energy) and forces.shape == (n, 3) and np.all(np.isfinite(forces))
            and (stress is None or (stress.shape == (6,) and np.all(np.isfinite(stress))))):
        return LabelOutcome.failed(job.index, n, f"{spec.calculator} returned energy {energy!r} and forces of shape "
                                   f"{forces.shape} with non-finite values or the wrong shape", wall_time=wall), None
    if cache is not None:
        cache.put(q, energy, forces, 0, wall, "none", None, "", stress=stress, versions=spec.versions)
    return LabelOutcome(job.index, energy, forces, "ok", "", 0, wall, False, np.nan, "none", False), stress


_worker: dict = {}


def init_worker(settings, cache_dir: str | None, threads: int) -> None:
    """Process-pool initializer: die with the parent, set threads, resolve the labeler, open the cache."""
    die_with_parent()
    os.environ.update(thread_environment(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    _worker.update(spec=spec_of(settings), cache=LabelCache(cache_dir, store_density=False) if cache_dir else None)


def run_in_worker(job: LabelJob) -> tuple[LabelOutcome, np.ndarray | None]:
    return run_job(job, _worker["spec"], _worker["cache"])


def _run_parallel(jobs, settings, cache_dir, n_workers, on_done) -> list[LabelJob]:
    """Run ``jobs`` in ``n_workers`` spawned processes; returns the jobs lost to a crashed worker."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_worker,
                             initargs=(settings, cache_dir, settings.threads_per_worker or 1)) as pool:
        futures = {pool.submit(run_in_worker, job): job for job in jobs}
        lost = []
        for future in as_completed(futures):
            try:
                on_done(*future.result())
            except BrokenProcessPool:
                lost.append(futures[future])
    return lost


def label_configurations(configs: xr.Dataset, settings, cache_dir: str | os.PathLike | None = None,
                         n_workers: int | None = None, progress: Callable[[int, int], None] | None = None
                         ) -> xr.Dataset:
    """Label every configuration with the ASE labeler of ``settings``; the contract of
    :func:`tasks.label.label_configurations` (which calls this for ASE labelers): ``configs`` plus energy (eV),
    forces (eV/Å), stress (eV/Å³, periodic cells), status/reason and provenance. Raises LabelInputError before
    any calculation for bad input or an unusable cache folder."""
    from threadpoolctl import threadpool_limits

    from hmc_core.configurations import config_arrays
    from tasks.label import LabelInputError

    check_batch(configs, settings)
    spec = spec_of(settings)
    n_config = configs.sizes["config"]
    method, identity = spec.method_key(), spec.identity()
    questions = []
    for k in range(n_config):
        pos, species, cell, pbc = config_arrays(configs, k)
        questions.append(LabelQuestion(species, pos, cell, pbc, method, identity, settings.position_tolerance))
    try:
        cache = LabelCache(cache_dir, store_density=False) if cache_dir is not None else None
    except ValueError as exc:
        raise LabelInputError(str(exc)) from None
    outcomes: dict[int, LabelOutcome] = {}
    stresses: dict[int, np.ndarray | None] = {}

    def on_done(outcome: LabelOutcome, stress: np.ndarray | None) -> None:
        outcomes[outcome.index], stresses[outcome.index] = outcome, stress
        if progress is not None:
            progress(len(outcomes), n_config)

    pending = []
    for k, question in enumerate(questions):
        hit = cache.get(question) if cache is not None else None
        if hit is None:
            pending.append(LabelJob(k, question))
        else:
            on_done(*_from_hit(k, hit))
    n_workers = min(n_workers or settings.n_workers, len(pending))
    if n_workers > 1 and multiprocessing.current_process().daemon:
        n_workers = 1  # a daemonic process (a Dask worker) may not start children
    if n_workers > 1:
        cache_str = str(Path(cache_dir)) if cache_dir is not None else None
        lost = _run_parallel(pending, settings, cache_str, n_workers, on_done)
        if lost:
            lost = _run_parallel(lost, settings, cache_str, n_workers, on_done)
        if cache is not None:
            cache.remove_stale_temporaries()
        for job in lost:
            on_done(LabelOutcome.failed(job.index, len(job.question.species),
                                        "worker process died twice while this configuration was pending"), None)
    else:
        with threadpool_limits(limits=settings.threads_per_worker or 1):
            for job in pending:
                on_done(*run_job(job, spec, cache))
    return _assemble(configs, [outcomes[k] for k in range(n_config)], [stresses[k] for k in range(n_config)],
                     settings, spec)


def _assemble(configs: xr.Dataset, outcomes: list[LabelOutcome], stresses: list, settings, spec: AseSpec
              ) -> xr.Dataset:
    """The output dataset: the variables of :func:`tasks.label._assemble`, ``stress`` when any, ASE provenance."""
    from hmc_core.configurations import VOIGT

    out = configs.drop_vars([v for v in ("stress", "voigt") if v in configs.variables])
    n_config, n_max = out.sizes["config"], out.sizes["atom"]
    forces = np.full((n_config, n_max, 3), np.nan)
    for o in outcomes:
        forces[o.index, : len(o.forces)] = o.forces
    out["energy"] = ("config", np.array([o.energy for o in outcomes], np.float64), {"units": "eV"})
    out["forces"] = (("config", "atom", "xyz"), forces, {"units": "eV/Å"})
    if any(s is not None for s in stresses):
        stress = np.array([np.full(6, np.nan) if s is None else s for s in stresses], np.float64)
        out = out.assign_coords(voigt=list(VOIGT))
        out["stress"] = (("config", "voigt"), stress, {"units": "eV/Å³"})
    out["status"] = ("config", np.array([o.status for o in outcomes], dtype=str))
    out["reason"] = ("config", np.array([o.reason for o in outcomes], dtype=str))
    out["scf_cycles"] = ("config", np.array([o.scf_cycles for o in outcomes], np.int32))
    out["wall_time"] = ("config", np.array([o.wall_time for o in outcomes], np.float64), {"units": "s"})
    out["warm_start"] = ("config", np.zeros(n_config, np.int8))
    out["warm_start_rmsd"] = ("config", np.full(n_config, np.nan), {"units": "Å"})
    out["cache_hit"] = ("config", np.array([o.cache_hit for o in outcomes], np.int8))
    out["scf_ladder_step"] = ("config", np.array([o.ladder_step for o in outcomes], dtype=str))
    out["scf_stability"] = ("config", np.array([o.stability for o in outcomes], dtype=str))
    out.attrs.update({
        "label_method": spec.labeler,
        "label_labeler": spec.labeler,
        "label_calculator": spec.calculator,
        "label_parameters": json.dumps(spec.parameters, sort_keys=True),
        "label_settings": settings.model_dump_json(),
        "label_versions": json.dumps(spec.versions, sort_keys=True),
        "ase_version": spec.versions["ase"],
    })
    return out
