"""Candidate selection (tasks/select.py) and the HMC grade monitor with a real MTP basis.

The MTP is the level-10 MLIP fixture ``../shared/data/mtp/cubic_level10.mtp`` (its basis only
matters here; species mapped to argon), evaluated on small argon clusters.
"""

from __future__ import annotations

import numpy as np
import pytest

from hmc_core.configurations import make_configurations
from hmc_core.uncertainty import build_active_set, configuration_grades, grade_monitor
from tasks.select import REASONS, select_candidates, select_task

BASE = np.array([[0, 0, 0], [3.7, 0, 0], [0, 3.7, 0], [0, 0, 3.7], [3.7, 3.7, 0], [3.7, 0, 3.7]], float)


@pytest.fixture(scope="module")
def mtp(shared_data):
    from hmc_core.mtp import read_mtp

    return read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[18])


def clusters(n, scale, seed):
    rng = np.random.default_rng(seed)
    pos = [BASE + scale * rng.standard_normal(BASE.shape) for _ in range(n)]
    return make_configurations(pos, [np.full(len(BASE), 18)] * n)


@pytest.fixture(scope="module")
def setup(mtp):
    train = clusters(12, 0.05, seed=0)
    active = build_active_set(mtp, train, mode="atom")
    rng = np.random.default_rng(5)
    far = clusters(8, 0.5, seed=1)
    # a pool with near-duplicates: every far configuration three times, slightly perturbed
    pos = np.concatenate([far["positions"].values + 1e-4 * rng.standard_normal(far["positions"].shape)
                          for _ in range(3)] + [train["positions"].values])
    pool = make_configurations(list(pos), [np.full(len(BASE), 18)] * len(pos))
    return train, active, pool


def test_selection_budget_no_duplicates_deterministic(mtp, setup):
    _, active, pool = setup
    sel, summary = select_candidates(pool, mtp, active, budget=5, seed=3)
    idx = sel["pool_index"].values
    assert 0 < len(idx) <= 5 and len(set(idx)) == len(idx)
    assert len(set(idx % 8)) == len(idx)  # never two copies of the same far configuration
    assert np.all(sel["grade"].values >= 2.0)
    assert set(sel["reason"].values) <= {"extrapolation", "break"}
    assert set(summary["reason"].values) <= set(REASONS)
    assert summary["grade_count"].sum() == pool.sizes["config"]
    assert summary.attrs["n_selected"] == len(idx) and summary["selected"].sum() == len(idx)
    # training configurations are interpolation: never candidates
    assert np.all(summary["grade"].values[24:] <= 1.0 + 1e-3)
    again, _ = select_candidates(pool, mtp, active, budget=5, seed=3)
    assert np.array_equal(again["pool_index"].values, idx)
    np.testing.assert_array_equal(again["positions"].values, sel["positions"].values)
    # selected rows equal the pool rows, labels of the pool schema kept
    np.testing.assert_array_equal(sel["positions"].values, pool["positions"].values[idx])


def test_selection_thresholds_and_break_reason(mtp, setup):
    _, active, pool = setup
    grades = configuration_grades(mtp, active, pool)
    sel, summary = select_candidates(pool, mtp, active, threshold=2.0, break_threshold=float(np.median(grades[:24])),
                                     budget=50)
    assert "break" in set(sel["reason"].values)
    nothing, s2 = select_candidates(pool, mtp, active, threshold=1e12, break_threshold=1e13, budget=5)
    assert nothing.sizes["config"] == 0 and s2.attrs["n_candidates"] == 0
    zero, _ = select_candidates(pool, mtp, active, budget=0)
    assert zero.sizes["config"] == 0
    with pytest.raises(ValueError, match="threshold"):
        select_candidates(pool, mtp, active, threshold=0.5)
    with pytest.raises(ValueError, match="budget"):
        select_candidates(pool, mtp, active, budget=-1)


def test_select_task_matches_plain_function(mtp, setup):
    """The stage function (budget = min(settings.budget, labels left)) and its Prefect task choose what the
    numerical core chooses; counts come from the summary."""
    from tasks.select import SelectInputs, SelectionSettings, run_select

    _, active, pool = setup
    plain, summary = select_candidates(pool, mtp, active, budget=2, seed=5)
    settings = SelectionSettings(budget=3)
    stage = run_select(SelectInputs(pool, mtp, active, max_new=2), settings, 5)
    via_task = select_task.fn(SelectInputs(pool, mtp, active, max_new=2), settings, 5)
    for result in (stage, via_task):
        assert np.array_equal(plain["pool_index"].values, result.selected["pool_index"].values)
        assert result.n_above_threshold == summary.attrs["n_candidates"] > 0
        assert result.n_above_break == summary.attrs["n_break"]
    assert stage.selected.sizes["config"] == 2


def test_threshold_means_strictly_above(mtp, setup):
    """γ exactly at the threshold is not a candidate (">" everywhere), and break_threshold must exceed it."""
    from tasks.select import SelectionSettings

    _, active, pool = setup
    _, summary = select_candidates(pool, mtp, active, budget=0)
    g = np.sort(summary["grade"].values[np.isfinite(summary["grade"].values)])
    at = float(g[len(g) // 2])
    _, exact = select_candidates(pool, mtp, active, threshold=max(at, 1.0), break_threshold=1e9, budget=0)
    assert exact.attrs["n_candidates"] == int((summary["grade"].values > max(at, 1.0)).sum())
    with pytest.raises(ValueError, match="must exceed"):
        select_candidates(pool, mtp, active, threshold=3.0, break_threshold=3.0)
    with pytest.raises(ValueError, match="must exceed"):
        SelectionSettings(threshold=3.0, break_threshold=3.0)


def test_grade_monitor_stops_hmc_chain(mtp, setup):
    """An argon HMC chain at high temperature leaves the trusted region; the monitor stops it."""
    from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
    from hmc_core.potentials import ForceField, LennardJones

    _, active, _ = setup
    species = np.full(len(BASE), 18)
    mon = grade_monitor(mtp, active, species)
    assert mon(BASE) <= 1.5
    lj = LennardJones.rare_gas("Ar", tail=False)
    sampler = HMCSampler(ForceField(lj, species), HMCConfig(temperature=300.0, dt=5.0, n_steps=10))
    res = run_chain(sampler, BASE, n_samples=200, seed=1, monitor=mon, stop_above=10.0)
    assert res.stopped_early and res.monitor[-1] > 10.0 and np.all(res.monitor[:-1] <= 10.0)


def test_update_with_new_labels_brings_them_inside(mtp, setup):
    from hmc_core.uncertainty import update_active_set

    train, active, pool = setup
    far = pool.isel(config=np.arange(8))
    before = configuration_grades(mtp, active, far)
    updated = active.copy()
    n_swaps = update_active_set(updated, mtp, far, config_ids=np.arange(100, 108))
    after = configuration_grades(mtp, updated, far)
    assert n_swaps > 0 and before.max() > 2 and after.max() <= 1 + 1e-3
    assert configuration_grades(mtp, updated, train).max() <= before.max()
    assert set(updated.config_id.tolist()) & set(range(100, 108))
    assert updated.residual() < 1e-6
