"""Fit stage: labelled configurations → a Moment Tensor Potential, its active set and a fit report.

Stage contract (see :mod:`tasks.explore`): :class:`MTPSettings` (the campaign's ``[potential]``),
:func:`run_fit` ``(labels, settings, seed) -> FitResult`` and :data:`fit_task`. The numerical core is
:func:`fit_potential`. Only configurations with a finite energy and, when a ``status`` variable exists,
``status == "ok"`` enter the fit (:func:`hmc_core.mtp.fit.usable_configurations`: failed labels are data,
never training points).

Determinism: the fit runs with one BLAS/OpenMP thread (threadpoolctl), so the same labels and seed give the
same coefficients bit for bit on any machine and under any worker count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from threadpoolctl import threadpool_limits

from hmc_core.configurations import config_arrays
from hmc_core.mtp import MTP, write_mtp
from hmc_core.mtp.fit import FitSettings, TrainingData, error_report, fit_full, fit_linear, usable_configurations
from hmc_core.mtp.levels import generate_basis
from hmc_core.neighbors import closest_pair


def smallest_distance(ds: xr.Dataset, indices, cutoff: float = 5.0) -> float:
    """Smallest interatomic distance (Å, periodic images included) among the given configurations."""
    best = np.inf
    for k in indices:
        x, _, cell, pbc = config_arrays(ds, int(k))
        pair = closest_pair(x, cell, pbc, cutoff)
        if pair is not None:
            best = min(best, pair[2])
    return best


def fit_potential(labels: xr.Dataset, *, level: int = 10, species=None, min_dist: float | None = None,
                  max_dist: float = 5.0, radial_basis_size: int = 8, settings: FitSettings = FitSettings(),
                  full: bool = True, start: MTP | None = None, seed: int = 0,
                  out: str | Path | None = None, verbose: bool = False) -> tuple[MTP, dict]:
    """Fit an MTP to the usable configurations of ``labels`` (energy eV, forces eV/Å, stress eV/Å³).

    ``start``: a previous potential to refine (its basis, cutoffs and radial coefficients are kept);
    otherwise a new level-``level`` basis is generated with ``species`` (default: the elements present),
    ``min_dist`` (default: 0.95 × the smallest distance in the data, Å), ``max_dist`` (cutoff, Å) and
    radial coefficients U(−0.1, 0.1) from ``seed``. ``full``: also optimise the radial coefficients
    (L-BFGS-B, ``settings.max_iter`` iterations); otherwise linear fit only. ``out``: write an MLIP ``.mtp``;
    ``verbose``: print the optimiser's progress.

    Returns the potential and a JSON-able report (configurations used/dropped, sizes, timing, errors).
    """
    t0 = time.perf_counter()
    used = usable_configurations(labels)
    if len(used) == 0:
        raise ValueError("no usable configuration (finite energy and status 'ok') to fit")
    n = labels["n_atoms"].values[used]
    present = sorted({int(z) for k, nk in zip(used, n, strict=True) for z in labels["species"].values[k, :nk]})
    if start is not None:
        missing = sorted(set(present) - set(start.species))
        if missing:
            raise ValueError(f"the starting potential covers species {list(start.species)} but the labels also "
                             f"contain {missing}; start a new potential (start=None) with all species")
        mtp = start.copy()
    else:
        species = present if species is None else [int(z) for z in species]
        if min_dist is None:
            min_dist = round(0.95 * min(smallest_distance(labels, used, max_dist), max_dist), 3)
        mtp = MTP.untrained(generate_basis(level), species, min_dist=min_dist, max_dist=max_dist,
                            radial_basis_size=radial_basis_size, seed=seed)
    data = TrainingData(mtp, labels, used)
    mtp = fit_linear(mtp, data, settings)
    info = {}
    if full and settings.max_iter > 0:
        mtp, info = fit_full(mtp, data, settings, verbose=verbose)
    seconds = time.perf_counter() - t0
    report = {
        "n_configs_used": int(len(used)),
        "n_configs_dropped": int(labels.sizes["config"] - len(used)),
        "n_atoms_used": int(n.sum()),
        "level": mtp.basis.level,
        "n_basis": mtp.n_basis,
        "n_parameters": int(mtp.radial_coeffs.size + mtp.n_species + mtp.n_basis),
        "species": list(mtp.species),
        "min_dist": mtp.min_dist,
        "max_dist": mtp.max_dist,
        "full_fit": bool(info),
        "optimizer": info,
        "fit_seconds": seconds,
        "train_errors": error_report(mtp, labels, used),
    }
    if out is not None:
        report["path"] = str(write_mtp(mtp, out))
    return mtp, report


class MTPSettings(BaseModel):
    """The potential and its fit (campaign section ``[potential]``).

    level: MTP level (MLIP's even levels 2…28); cutoff: max_dist, Å; min_distance: min_dist, Å (None: 0.95 × the
    smallest distance in the labels); radial_basis_size: Chebyshev polynomials; energy_weight / force_weight:
    loss weights (energies per atom, eV; forces eV/Å); regularization: L2 (ridge) strength on the column-scaled
    linear system, which makes the linear solution unique; full_fit: also optimise the radial coefficients,
    at most ``max_iter`` L-BFGS-B iterations (Shapeev, Multiscale Model. Simul. 14, 1153 (2016); Novikov et al.,
    Mach. Learn.: Sci. Technol. 2, 025002 (2021))."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    level: int = Field(8, ge=2, le=28)
    cutoff: float = Field(4.0, gt=0, le=20.0, allow_inf_nan=False)
    min_distance: float | None = Field(None, gt=0, allow_inf_nan=False)
    radial_basis_size: int = Field(8, ge=2, le=32)
    energy_weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    force_weight: float = Field(0.01, ge=0, allow_inf_nan=False)
    regularization: float = Field(1e-10, ge=0, allow_inf_nan=False)
    full_fit: bool = True
    max_iter: int = Field(200, ge=0, le=100_000)

    @field_validator("level")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"MTP levels are even numbers 2…28 (got {v})")
        return v

    @model_validator(mode="after")
    def _check(self) -> MTPSettings:
        if self.min_distance is not None and self.min_distance >= self.cutoff:
            raise ValueError(f"min_distance ({self.min_distance} Å) must be smaller than cutoff ({self.cutoff} Å)")
        if self.energy_weight + self.force_weight <= 0:
            raise ValueError("energy_weight and force_weight cannot both be 0")
        return self

    def loss(self) -> FitSettings:
        """The loss and optimiser settings of :mod:`hmc_core.mtp.fit`."""
        return FitSettings(energy_weight=self.energy_weight, force_weight=self.force_weight,
                           l2=self.regularization, max_iter=self.max_iter)


@dataclass(frozen=True)
class FitResult:
    """potential: the fitted MTP; active_set: the MaxVol active set (per atomic environment) of the training
    labels for it (grades of later frames are relative to it); report: JSON-able fit report (sizes, timing,
    training errors, whether the optimiser hit its iteration cap)."""

    potential: MTP
    active_set: object
    report: dict


def run_fit(labels: xr.Dataset, settings: MTPSettings, seed: np.random.SeedSequence | int) -> FitResult:
    """Fit a new MTP on the usable labels (radial coefficients start from ``seed``) and build its active set."""
    from hmc_core.uncertainty import build_active_set

    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    with threadpool_limits(1):
        potential, report = fit_potential(labels, level=settings.level, min_dist=settings.min_distance,
                                          max_dist=settings.cutoff, radial_basis_size=settings.radial_basis_size,
                                          settings=settings.loss(), full=settings.full_fit, seed=seed)
        used = labels.isel(config=usable_configurations(labels))
        active = build_active_set(potential, used, mode="atom")
    return FitResult(potential, active, report)


fit_task = task(run_fit, name="fit")
