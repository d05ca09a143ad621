"""Units of every variable pesflow writes to a campaign's netCDF files, and the function that attaches them.

Physical quantities carry their unit (Å, eV, eV/Å, K, s, meV/atom); dimensionless values say ``"1"`` (fractions,
flags, grades, indices, atomic numbers, text), and numbers of things say ``"count"``. :func:`annotate_units`
fills in the ``units`` attribute of each variable that has none and never changes one that is set, so a unit
chosen where a variable is made (e.g. ``hmc_core.hmc`` for energies) wins. Writers call it just before writing
(``flows.store`` for campaign files); :func:`missing_units` lists what is still without one.
"""

from __future__ import annotations

import xarray as xr

COUNT = "count"
ONE = "1"

UNITS: dict[str, str] = {
    # configurations schema (hmc_core.configurations) and labels (tasks.label)
    "positions": "Å", "cell": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å³", "species": ONE,
    "n_atoms": COUNT, "pbc": ONE, "status": ONE, "reason": ONE, "scf_cycles": COUNT, "wall_time": "s",
    "warm_start": ONE, "cache_hit": ONE, "scf_ladder_step": COUNT, "scf_stability": ONE, "iteration": ONE,
    "origin": ONE, "system": ONE,
    # explored frames, candidates, pool summary (tasks.explore, tasks.select)
    "frame": ONE, "grade": ONE, "chain": ONE, "start": ONE, "temperature": "K", "volume_gain": ONE,
    "selection_rank": ONE, "pool_index": ONE, "selected": ONE, "grade_count": COUNT, "grade_bin_lower": ONE,
    "grade_bin_upper": ONE,
    # HMC traces per chain (hmc_core.hmc)
    "potential_energy": "eV", "kinetic_energy": "eV", "delta_H": "eV", "accepted": ONE,
    "accept_prob": ONE, "n_steps": COUNT, "acceptance_rate": ONE, "force_evaluations": COUNT,
    "stopped_early": ONE, "frame_sample": ONE, "monitor": ONE,
    # MaxVol active set (hmc_core.uncertainty)
    "active_basis": ONE, "active_inverse": ONE, "active_config_id": ONE, "active_atom_index": ONE,
    # metrics.nc columns (flows.store.write_metrics): errors carry their unit in the name
    "n_basis": COUNT, "fit_capped": ONE, "n_labels": COUNT, "n_pool": COUNT, "n_chains": COUNT,
    "chains_stopped": COUNT, "acceptance": ONE, "max_grade": ONE, "n_selected": COUNT, "n_above_threshold": COUNT,
    "n_above_break": COUNT, "n_invalid": COUNT, "n_new_labels": COUNT, "n_failed": COUNT, "stop_reason": ONE,
    # sane candidates (tasks.select, hmc_core.frame_checks)
    "problem": ONE, "n_unphysical": COUNT, "chains_low_acceptance": COUNT,
    # ensemble test set (tasks.ensemble_test)
    "ensemble_chain": ONE, "ensemble_drawn_at": ONE, "ensemble_redrawn": ONE, "ensemble_p_value": ONE,
    "ensemble_n": COUNT,
    # grade calibration (flows.calibration): median force error a·γ^b in eV/Å
    "calibration_a": "eV/Å", "calibration_b": ONE, "calibration_s": ONE, "calibration_n": COUNT,
    "calibration_heldout_coverage_68": ONE, "calibration_heldout_coverage_95": ONE, "threshold_gamma": ONE,
}


def unit_of(name: str) -> str | None:
    """The unit of variable ``name``: from the catalogue, else from its name's suffix (``_s`` seconds,
    ``_meV_per_atom``, ``_eV_per_A``, ``_K``); a per-system metrics column ``<system>.<column>`` has the unit of
    ``<column>``; None when unknown."""
    if "." in name:
        return unit_of(name.rsplit(".", 1)[1])
    if name in UNITS:
        return UNITS[name]
    for suffix, unit in (("_meV_per_atom", "meV/atom"), ("_eV_per_A", "eV/Å"), ("_eV", "eV"), ("_K", "K"),
                         ("_s", "s")):
        if name.endswith(suffix):
            return unit
    return None


def annotate_units(ds: xr.Dataset, strict: bool = True) -> xr.Dataset:
    """A shallow copy of ``ds`` in which every data variable and coordinate without a ``units`` attribute gets
    the catalogue's; with ``strict``, raises ValueError naming the data variables the catalogue does not know
    (writers pass ``strict=False``: a variable missing from the catalogue must not cost a campaign its files;
    the tests of :func:`missing_units` catch it)."""
    ds = ds.copy()
    unknown = []
    for name in list(ds.data_vars) + [c for c in ds.coords if c not in ds.dims or ds[c].dtype.kind in "fiu"]:
        if "units" in ds[name].attrs:
            continue
        unit = unit_of(str(name))
        if unit is None:
            if name in ds.data_vars:
                unknown.append(str(name))
            continue
        ds[name].attrs = {**ds[name].attrs, "units": unit}
    if unknown and strict:
        raise ValueError(f"no unit known for variable(s) {', '.join(unknown)}: add them to flows.netcdf_units.UNITS")
    return ds


def missing_units(ds: xr.Dataset) -> list[str]:
    """Data variables of ``ds`` without a ``units`` attribute."""
    return [str(k) for k, v in ds.data_vars.items() if "units" not in v.attrs]
