"""Uncertainty of linear potentials (MTP): extrapolation grade (MaxVol active set) and Bayesian variance.

Names other stages use (keep them stable):

* :class:`ActiveSet` (:mod:`.maxvol`): MaxVol active set, ``mode`` ``"atom"`` (rows are atomic
  environments; a configuration's grade is the max over its atoms) or ``"config"`` (one row per
  configuration, the sum of its atoms' rows).
  ``ActiveSet.from_basis(rows, config_id, atom_index, mode)`` builds one from training rows;
  ``.grades(rows)`` / ``.config_grades(rows, row_config, n)`` give γ = max |b A⁻¹|;
  ``.update(rows, config_id, atom_index)`` swaps new labelled rows in (MaxVol, rank-1 updates of A⁻¹);
  ``.select(rows, row_config, n, budget)`` is the greedy MaxVol choice of whole configurations;
  ``.to_dataset()`` / ``ActiveSet.from_dataset(ds)`` store it (netCDF via xarray, bit for bit).
* :mod:`.grade`, with a potential (an MTP or any per-atom basis callable):
  ``build_active_set(model, configs, mode)``, ``update_active_set(active, model, configs, config_ids)``,
  ``configuration_grades(model, active, configs)``, ``configuration_rows(model, configs, mode)`` and
  ``grade_monitor(model, active, species, cell, pbc) -> Callable[[positions], float]`` for
  ``hmc_core.hmc.run_chain(..., monitor=..., stop_above=break_threshold)``.
* :class:`BayesianLinearModel` (:mod:`.bayes`): predictive std of energies / per-atom energies from a
  Bayesian linear regression on the same rows, and a greedy variance-based batch choice.
* :class:`Committee` (:mod:`.committee`): spread of linear fits on bootstrap resamples of the
  configurations (``Committee.fit(design, targets, groups).std(rows)``).

An active set belongs to one basis: ``update`` (MaxVol swaps) is valid while the radial coefficients
stay fixed (linear refits); after a full fit changes them, rebuild it with ``build_active_set``.

Grade conventions (as MLIP's): γ ≤ 1 interpolation; γ > 2 worth labelling; γ > 10 the potential is
extrapolating far ("break": HMC chains stop there).
"""

from hmc_core.uncertainty.bayes import BayesianLinearModel
from hmc_core.uncertainty.committee import Committee
from hmc_core.uncertainty.grade import (
    basis_function,
    build_active_set,
    configuration_grades,
    configuration_rows,
    grade_monitor,
    update_active_set,
)
from hmc_core.uncertainty.maxvol import ActiveSet, Selection

__all__ = ["ActiveSet", "BayesianLinearModel", "Committee", "Selection", "basis_function", "build_active_set",
           "configuration_grades", "configuration_rows", "grade_monitor", "update_active_set"]
