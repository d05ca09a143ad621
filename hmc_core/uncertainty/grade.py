"""Extrapolation grades of configurations under a linear potential (MTP), and the HMC grade monitor.

A *basis model* gives each atom's row of the linear model: either an :class:`hmc_core.mtp.MTP`
(rows from :func:`hmc_core.mtp.per_atom_basis` with the species columns, so that the site energy is
row · ``mtp.linear_coefficients``) or any callable ``basis(positions, cell, pbc, species) -> (N, m)``
with the same meaning. A configuration's rows are its atoms' rows (``mode="atom"``) or their sum, the
gradient of its energy with respect to the linear coefficients (``mode="config"``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from hmc_core.configurations import config_arrays, validate
from hmc_core.uncertainty.maxvol import ActiveSet, row_grades

BasisFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def basis_function(model) -> BasisFunction:
    """Per-atom basis callable ``(positions (N,3) Å, cell (3,3) Å, pbc (3,), species (N,)) -> (N, m)``."""
    if callable(model) and not hasattr(model, "site_basis"):
        return model
    from hmc_core.mtp import per_atom_basis  # the MTP's own row builder (species columns included)

    def rows(positions, cell, pbc, species):
        return per_atom_basis(model, positions, cell, pbc, species, include_species=True)

    return rows


def configuration_rows(model, configs: xr.Dataset, mode: str = "atom") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of every configuration of ``configs`` for an active set in ``mode``.

    Returns ``rows`` (n_rows, m), ``row_config`` (n_rows,) configuration index, ``row_atom`` (n_rows,)
    atom index within the configuration (−1 in config mode).
    """
    if mode not in ("atom", "config"):
        raise ValueError(f"mode must be 'atom' or 'config', got {mode!r}")
    validate(configs)
    basis = basis_function(model)
    rows, rc, ra = [], [], []
    for k in range(configs.sizes["config"]):
        pos, species, cell, pbc = config_arrays(configs, k)
        b = np.asarray(basis(pos, cell, pbc, species), dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != len(species):
            raise ValueError(f"the basis model returned shape {b.shape} for config {k} with {len(species)} atoms; "
                             "expected (n_atoms, n_basis)")
        if mode == "atom":
            rows.append(b)
            rc.append(np.full(len(b), k, np.int64))
            ra.append(np.arange(len(b), dtype=np.int64))
        else:
            rows.append(b.sum(axis=0, keepdims=True))
            rc.append(np.array([k], np.int64))
            ra.append(np.array([-1], np.int64))
    if not rows:
        raise ValueError("the configurations dataset is empty")
    return np.ascontiguousarray(np.concatenate(rows)), np.concatenate(rc), np.concatenate(ra)


def build_active_set(model, configs: xr.Dataset, mode: str = "atom", config_ids=None, tol: float = 1e-3) -> ActiveSet:
    """Active set from a training set: MaxVol over its rows (``config_ids`` (n_config,) default 0..n−1)."""
    rows, rc, ra = configuration_rows(model, configs, mode)
    ids = np.arange(configs.sizes["config"]) if config_ids is None else np.asarray(config_ids, np.int64)
    return ActiveSet.from_basis(rows, ids[rc], ra if mode == "atom" else None, mode=mode, tol=tol)


def update_active_set(active: ActiveSet, model, configs: xr.Dataset, config_ids, tol: float = 1e-3) -> int:
    """Swap newly labelled configurations into ``active`` (MaxVol, rank-1 updates). Returns the swap count."""
    rows, rc, ra = configuration_rows(model, configs, active.mode)
    ids = np.asarray(config_ids, np.int64).reshape(-1)
    if ids.shape != (configs.sizes["config"],):
        raise ValueError(f"config_ids needs one id per configuration ({configs.sizes['config']}), got {ids.shape}")
    return active.update(rows, ids[rc], ra if active.mode == "atom" else None, tol=tol)


def configuration_grades(model, active: ActiveSet, configs: xr.Dataset) -> np.ndarray:
    """Extrapolation grade γ (n_config,) of each configuration (max over its atoms in atom mode)."""
    rows, rc, _ = configuration_rows(model, configs, active.mode)
    return active.config_grades(rows, rc, configs.sizes["config"])


def grade_monitor(model, active: ActiveSet, species, cell=None,
                  pbc=(False, False, False)) -> Callable[[np.ndarray], float]:
    """Callable ``positions (N, 3) Å -> γ`` for :func:`hmc_core.hmc.run_chain` ``monitor=`` (with
    ``stop_above=`` the break threshold, the chain stops once it leaves the trusted region; the grades
    of all saved frames are recorded in the samples' ``monitor`` variable).

    Safe to share between chain threads (no mutable state). Non-finite rows (e.g. atoms closer than
    the MTP's ``min_dist`` with ``below_min_dist="nan"``) give γ = inf.
    """
    basis = basis_function(model)
    species = np.asarray(species, dtype=np.int32).reshape(-1)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    inverse = active.inverse
    per_atom = active.mode == "atom"

    def monitor(positions: np.ndarray) -> float:
        b = np.asarray(basis(np.asarray(positions, dtype=np.float64), cell, pbc, species), dtype=np.float64)
        if not np.all(np.isfinite(b)):
            return float("inf")
        rows = np.ascontiguousarray(b if per_atom else b.sum(axis=0, keepdims=True))
        g = np.empty(len(rows))
        row_grades(rows, inverse, g)
        return float(g.max())

    return monitor


__all__ = ["BasisFunction", "basis_function", "build_active_set", "configuration_grades", "configuration_rows",
           "grade_monitor", "update_active_set"]
