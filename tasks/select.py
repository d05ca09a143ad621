"""Select stage: extrapolation grades of sampled configurations → at most ``budget`` candidates to label.

Stage contract (see :mod:`tasks.explore`): :class:`SelectionSettings` (the campaign's ``[selection]``),
:class:`SelectInputs`, :func:`run_select` ``(inputs, settings, seed) -> SelectResult`` and :data:`select_task`.
The numerical core is :func:`select_candidates`.

Rule (MLIP's active learning, Podryabinkin & Shapeev 2017): a configuration is a candidate when its
grade γ (w.r.t. the current active set) is above ``threshold`` (γ > threshold, default 2). "Above" means
strictly greater everywhere in pesflow: candidates (γ > threshold), breaks (γ > break_threshold) and the HMC
chain stop (γ > break_threshold), and the settings require break_threshold > threshold. Among the candidates, greedy
MaxVol picks, one configuration at a time, the one whose row grows the active-set volume most, then
updates the grades of the rest (so near-duplicates from one HMC chain lose their grade once one of
them is picked), until ``budget`` configurations are chosen or none would grow the volume
(γ ≤ 1 + ``tol``). In atom mode, rows of an already chosen configuration are swapped in for free.

Configurations with γ > ``break_threshold`` (default 10) are *selected like the others*, not
discarded: they are where the potential extrapolates most and so carry the most information (MLIP
labels them too). Their ``reason`` is ``"break"`` so a campaign can count them: they show that a
chain left the trusted region (the HMC grade monitor stops chains there). Configurations whose
basis is not finite (atoms closer than the potential's ``min_dist``) get γ = inf, reason
``"invalid"``, and are never selected. Frames that no labeler should see (:mod:`hmc_core.frame_checks`: an atom
with no neighbour within ``max_isolation`` Å, a periodic cell squeezed flat) keep their grade but are never
selected either: their reason is the problem (``"isolated_atom"``, ``"degenerate_cell"``) and the pool summary's
``problem`` says what was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hmc_core.configurations import validate
from hmc_core.frame_checks import PROBLEMS, frame_problems
from hmc_core.uncertainty import ActiveSet, configuration_rows

#: fixed grade-histogram bin edges (so pool summaries of different iterations line up)
GRADE_BIN_EDGES = np.concatenate([[0.0], np.geomspace(0.1, 1e4, 26), [np.inf]])
REASONS = ("below_threshold", "not_chosen", "extrapolation", "break", "invalid", *PROBLEMS)


def select_candidates(pool: xr.Dataset, mtp, active_set: ActiveSet, threshold: float = 2.0,
                      break_threshold: float = 10.0, budget: int = 20, seed: int = 0,
                      tol: float = 1e-3, max_isolation: float | None = None, min_cell_width: float = 1.0,
                      min_cell_shape: float = 0.05) -> tuple[xr.Dataset, xr.Dataset]:
    """Choose at most ``budget`` configurations of ``pool`` to label (see module docstring).

    pool: configurations dataset (e.g. HMC samples); mtp: the potential whose basis defines the
    grades (an :class:`hmc_core.mtp.MTP` or a per-atom basis callable); active_set: the current
    :class:`~hmc_core.uncertainty.ActiveSet` (not modified). ``seed`` fixes the order in which ties
    are broken (the result is deterministic for a seed). ``max_isolation`` (Å; None: not checked),
    ``min_cell_width`` (Å) and ``min_cell_shape``: the frame checks of :func:`hmc_core.frame_checks.frame_problems`.

    Returns ``selected``: the chosen configurations (schema of ``pool`` plus ``grade`` γ before
    selection, ``volume_gain`` (the factor by which each pick grew |det A|), ``selection_rank``,
    ``pool_index`` and ``reason`` ∈ {"extrapolation", "break"}), and ``pool_summary``: per pool
    configuration ``grade``, ``selected``, ``reason``; the grade histogram (``grade_count`` over
    ``grade_bin`` with ``grade_bin_lower``/``grade_bin_upper``); thresholds and counts as attributes.
    """
    if not (np.isfinite(threshold) and threshold >= 1.0):
        raise ValueError(f"threshold must be ≥ 1 (γ ≤ 1 is interpolation), got {threshold}")
    if not break_threshold > threshold:
        raise ValueError(f"break_threshold ({break_threshold}) must exceed threshold ({threshold})")
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget}")
    validate(pool)
    n = pool.sizes["config"]
    if n == 0:
        raise ValueError("the pool of configurations is empty")
    rows, row_config, _ = configuration_rows(mtp, pool, active_set.mode)
    finite_row = np.isfinite(rows).all(axis=1)
    valid = np.ones(n, bool)
    valid[row_config[~finite_row]] = False
    keep = valid[row_config]
    rows, row_config = np.ascontiguousarray(rows[keep]), row_config[keep]

    grades = np.full(n, np.inf)
    if len(rows):
        grades[valid] = active_set.config_grades(rows, row_config, n)[valid]
    problem = frame_problems(pool, max_isolation, min_cell_width, min_cell_shape)
    sane = problem == ""
    candidate = valid & sane & (grades > threshold)

    # tie-breaking order: a seeded permutation of the configurations
    perm = np.random.default_rng(seed).permutation(n)
    rank_of = np.empty(n, np.int64)
    rank_of[perm] = np.arange(n)
    order = np.argsort(rank_of[row_config], kind="stable")
    sel = active_set.select(rows[order], rank_of[row_config[order]], n, int(budget), tol=tol,
                            candidates=candidate[perm])
    chosen = perm[sel.chosen]

    reason = np.where(~valid, "invalid", np.where(grades <= threshold, "below_threshold", "not_chosen")).astype(object)
    reason[valid & ~sane] = [p.split(":", 1)[0] for p in problem[valid & ~sane]]
    reason[chosen] = np.where(grades[chosen] > break_threshold, "break", "extrapolation")
    selected_flag = np.zeros(n, np.int8)
    selected_flag[chosen] = 1

    out = pool.isel(config=chosen)
    out["grade"] = ("config", grades[chosen])
    out["volume_gain"] = ("config", sel.gain)
    out["selection_rank"] = ("config", np.arange(len(chosen), dtype=np.int32))
    out["pool_index"] = ("config", chosen.astype(np.int64))
    out["reason"] = ("config", reason[chosen].astype(str))
    out.attrs.update(_attrs(threshold, break_threshold, budget, seed, active_set))

    counts, _ = np.histogram(np.where(np.isfinite(grades), grades, 1e300), bins=GRADE_BIN_EDGES)
    summary = xr.Dataset(
        {
            "grade": ("config", grades),
            "selected": ("config", selected_flag),
            "reason": ("config", reason.astype(str)),
            "problem": ("config", problem.astype(str)),
            "grade_count": ("grade_bin", counts.astype(np.int64)),
            "grade_bin_lower": ("grade_bin", GRADE_BIN_EDGES[:-1]),
            "grade_bin_upper": ("grade_bin", GRADE_BIN_EDGES[1:]),
        },
        attrs={
            **_attrs(threshold, break_threshold, budget, seed, active_set),
            "schema": "pesflow.selection_summary/1",
            "n_pool": int(n),
            "n_invalid": int((~valid).sum()),
            "n_unphysical": int((valid & ~sane).sum()),
            **{f"n_{p}": int((reason == p).sum()) for p in PROBLEMS},
            "n_candidates": int(candidate.sum()),
            "n_selected": int(len(chosen)),
            "n_break": int((valid & (grades > break_threshold)).sum()),
            "max_grade": float(grades[valid].max()) if valid.any() else float("nan"),
            "n_swaps": int(sel.n_swaps),
        },
    )
    summary["grade"].attrs["description"] = "extrapolation grade max|b A^-1| w.r.t. the active set before selection"
    return out, summary


def _attrs(threshold, break_threshold, budget, seed, active_set: ActiveSet) -> dict:
    return {"selection_threshold": float(threshold), "break_threshold": float(break_threshold),
            "budget": int(budget), "seed": int(seed), "active_set_mode": active_set.mode}


class SelectionSettings(BaseModel):
    """Selection by extrapolation grade γ (campaign section ``[selection]``): candidates have γ > ``threshold``;
    a chain stops, and a selected frame counts as a "break", at γ > ``break_threshold``; at most ``budget``
    labels per iteration. Frames with an atom that has no neighbour within ``max_isolation`` Å (an exploded
    cluster, an evaporated or dissociated atom; None: not checked) or with a periodic cell thinner than
    ``min_cell_width`` Å or sheared to less than ``min_cell_shape`` of a·b·c are never selected
    (:mod:`hmc_core.frame_checks`). ``force_error_threshold`` (eV/Å): a campaign selects above the grade whose
    median expected force error is this, from its calibration (:mod:`flows.calibration`), once one exists; the
    stage itself always uses ``threshold``."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    threshold: float = Field(2.0, ge=1.0, allow_inf_nan=False)
    break_threshold: float = Field(10.0, ge=1.0, allow_inf_nan=False)
    budget: int = Field(8, ge=1, le=100_000)
    force_error_threshold: float | None = Field(None, gt=0, le=100.0, allow_inf_nan=False)
    max_isolation: float | None = Field(6.0, gt=0, le=1000.0, allow_inf_nan=False)
    min_cell_width: float = Field(1.0, ge=0, le=1000.0, allow_inf_nan=False)
    min_cell_shape: float = Field(0.05, ge=0, lt=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _order(self) -> SelectionSettings:
        if not self.break_threshold > self.threshold:
            raise ValueError(f"break_threshold ({self.break_threshold}) must exceed threshold ({self.threshold})")
        return self


@dataclass(frozen=True)
class SelectInputs:
    """pool: explored frames (configurations dataset); potential: the MTP whose basis defines the grades;
    active_set: its active set; max_new: labels still allowed by the campaign's label budget."""

    pool: xr.Dataset
    potential: object
    active_set: ActiveSet
    max_new: int


@dataclass(frozen=True)
class SelectResult:
    """selected: the chosen configurations; summary: per-frame grades and the grade histogram (see
    :func:`select_candidates`); counts: frames above the threshold, above the break threshold, invalid, and
    refused by the frame checks (``n_unphysical``)."""

    selected: xr.Dataset
    summary: xr.Dataset
    n_above_threshold: int
    n_above_break: int
    n_invalid: int
    n_unphysical: int = 0


def run_select(inputs: SelectInputs, settings: SelectionSettings, seed: np.random.SeedSequence | int) -> SelectResult:
    """At most ``min(settings.budget, inputs.max_new)`` candidates of ``inputs.pool`` (see module docstring)."""
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    budget = max(0, min(settings.budget, int(inputs.max_new)))
    selected, summary = select_candidates(inputs.pool, inputs.potential, inputs.active_set, settings.threshold,
                                          settings.break_threshold, budget, seed,
                                          max_isolation=settings.max_isolation,
                                          min_cell_width=settings.min_cell_width,
                                          min_cell_shape=settings.min_cell_shape)
    a = summary.attrs
    return SelectResult(selected, summary, int(a["n_candidates"]), int(a["n_break"]), int(a["n_invalid"]),
                        int(a["n_unphysical"]))


select_task = task(run_select, name="select")
