"""Fit stage: labelled configurations → a Moment Tensor Potential and a fit report.

Plain function :func:`fit_potential` (testable without Prefect) and its Prefect task :data:`fit_task`.
Only configurations with a finite energy and, when a ``status`` variable exists, ``status == "ok"``
enter the fit (failed labels are data, never training points).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import task

from hmc_core.configurations import config_arrays
from hmc_core.mtp import MTP, write_mtp
from hmc_core.mtp.fit import FitSettings, TrainingData, error_report, fit_full, fit_linear, usable_configurations
from hmc_core.mtp.levels import generate_basis
from hmc_core.neighbors import NeighborList


def smallest_distance(ds: xr.Dataset, indices, cutoff: float = 5.0) -> float:
    """Smallest interatomic distance (Å, periodic images included) among the given configurations."""
    best = np.inf
    for k in indices:
        x, _, cell, pbc = config_arrays(ds, int(k))
        nl = NeighborList(cutoff, 0.0, full=False)
        x = nl.build(x, cell, pbc)
        i, j, shift = nl.pairs()
        if len(i):
            best = min(best, float(np.linalg.norm(x[j] - x[i] + shift, axis=1).min()))
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


fit_task = task(fit_potential, name="fit", task_run_name="fit-mtp")
