"""Selection (tasks/select.py) details that mutation testing (``make mutation``, bench/mutation.py) found
untested: defaults, argument checks, invalid configurations, seeded tie-breaking, ``tol``, config mode, the
summary dataset and the stage function. A synthetic linear basis (rows [1, x, y, z] per atom) keeps it fast."""

from __future__ import annotations

import numpy as np
import pytest

from hmc_core.configurations import make_configurations
from hmc_core.uncertainty import build_active_set, configuration_grades
from tasks.select import (
    GRADE_BIN_EDGES,
    REASONS,
    SelectInputs,
    SelectionSettings,
    SelectResult,
    run_select,
    select_candidates,
    select_task,
)

TRI = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def basis(positions, cell, pbc, species):
    """Per-atom rows [1, x, y, z]; not finite when two atoms are closer than 0.5 Å (like an MTP's min_dist)."""
    pos = np.asarray(positions, float)
    rows = np.column_stack([np.ones(len(pos)), pos])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 1e9 * np.eye(len(pos))
    if d.min() < 0.5:
        rows[:] = np.nan
    return rows


def configs(positions):
    return make_configurations([np.asarray(p, float) for p in positions], [np.full(len(p), 18) for p in positions])


@pytest.fixture(scope="module")
def active():
    return build_active_set(basis, configs([TRI, TRI * 1.1]), mode="atom")


def far(scale, shift=0.0):
    return TRI * scale + shift


def test_defaults_and_attributes(active):
    pool = configs([TRI, far(3.0), far(20.0), far(5.0, 2.0)])
    sel, summary = select_candidates(pool, basis, active)
    expected = {"selection_threshold": 2.0, "break_threshold": 10.0, "budget": 20, "seed": 0,
                "active_set_mode": "atom"}
    for ds in (sel, summary):
        assert {k: ds.attrs[k] for k in expected} == expected
        assert type(ds.attrs["budget"]) is int and type(ds.attrs["seed"]) is int
        assert type(ds.attrs["selection_threshold"]) is float
    assert summary.attrs["schema"] == "pesflow.selection_summary/1"
    assert summary.attrs["n_pool"] == 4 and summary.attrs["n_invalid"] == 0
    grades = configuration_grades(basis, active, pool)
    np.testing.assert_allclose(summary["grade"].values, grades)
    assert summary.attrs["n_candidates"] == int((grades > 2).sum()) == 3
    assert summary.attrs["n_break"] == int((grades > 10).sum()) >= 1
    assert summary.attrs["max_grade"] == pytest.approx(grades.max())
    assert summary.attrs["n_selected"] == sel.sizes["config"] >= 1
    assert summary.attrs["n_swaps"] >= summary.attrs["n_selected"]
    assert list(summary["reason"].values)[0] == "below_threshold"
    chosen = sel["pool_index"].values
    assert sel["pool_index"].dtype == np.int64 and sel["selection_rank"].dtype == np.int32
    np.testing.assert_array_equal(sel["selection_rank"].values, np.arange(len(chosen)))
    np.testing.assert_allclose(sel["grade"].values, grades[chosen])
    assert np.all(sel["volume_gain"].values > 1.0)
    assert list(sel["reason"].values) == ["break" if g > 10 else "extrapolation" for g in grades[chosen]]
    assert summary["selected"].dtype == np.int8
    np.testing.assert_array_equal(summary["selected"].values, np.isin(np.arange(4), chosen).astype(int))
    # histogram with fixed edges, every configuration counted once
    np.testing.assert_array_equal(summary["grade_bin_lower"].values, GRADE_BIN_EDGES[:-1])
    np.testing.assert_array_equal(summary["grade_bin_upper"].values, GRADE_BIN_EDGES[1:])
    expected_counts, _ = np.histogram(grades, bins=GRADE_BIN_EDGES)
    np.testing.assert_array_equal(summary["grade_count"].values, expected_counts)
    assert summary["grade_count"].dtype == np.int64
    assert "max|b A^-1|" in summary["grade"].attrs["description"]
    assert set(REASONS) == {"below_threshold", "not_chosen", "extrapolation", "break", "invalid", "isolated_atom",
                            "degenerate_cell"}


def test_argument_checks(active):
    pool = configs([TRI, far(3.0)])
    select_candidates(pool, basis, active, threshold=1.0, break_threshold=1.5)  # 1 is allowed
    for bad in (0.999, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^threshold must be ≥ 1 \(γ ≤ 1 is interpolation\), got "):
            select_candidates(pool, basis, active, threshold=bad, break_threshold=1e9)
    with pytest.raises(ValueError, match=r"^break_threshold \(2.0\) must exceed threshold \(2.0\)$"):
        select_candidates(pool, basis, active, threshold=2.0, break_threshold=2.0)
    for bad in (1.5, -1, -2.0):
        with pytest.raises(ValueError, match=rf"^budget must be a non-negative integer, got {bad}$"):
            select_candidates(pool, basis, active, budget=bad)
    sel, _ = select_candidates(pool, basis, active, budget=1.0)
    assert sel.sizes["config"] == 1 and sel.attrs["budget"] == 1
    with pytest.raises(ValueError, match=r"^the pool of configurations is empty$"):
        select_candidates(pool.isel(config=[]), basis, active)
    one, summary = select_candidates(configs([far(3.0)]), basis, active)
    assert one.sizes["config"] == 1 and summary.attrs["n_pool"] == 1


def test_invalid_configurations_are_never_selected(active):
    pool = configs([TRI, far(3.0), np.array([[0, 0, 0], [0.2, 0, 0], [0, 9, 0], [0, 0, 9]]), far(4.0, 1.0)])
    sel, summary = select_candidates(pool, basis, active, threshold=1.5, break_threshold=100.0, budget=10)
    assert list(summary["reason"].values[[0, 2]]) == ["below_threshold", "invalid"]
    assert np.isinf(summary["grade"].values[2]) and np.isfinite(summary["grade"].values[[0, 1, 3]]).all()
    assert 2 not in sel["pool_index"].values and set(sel["pool_index"].values) <= {1, 3}
    assert summary.attrs["n_invalid"] == 1 and summary.attrs["n_candidates"] == 2 and summary.attrs["n_break"] == 0
    assert summary.attrs["max_grade"] == pytest.approx(summary["grade"].values[[0, 1, 3]].max())
    assert summary["grade_count"].sum() == 4 and summary["grade_count"].values[-1] == 1  # inf in the last bin
    result = run_select(SelectInputs(pool, basis, active, max_new=5), SelectionSettings(threshold=1.5,
                                                                                        break_threshold=100), 0)
    assert result.n_invalid == 1 and result.n_above_threshold == 2 and result.n_above_break == 0
    only_invalid = configs([np.array([[0, 0, 0], [0.2, 0, 0], [0, 9, 0], [0, 0, 9]])])
    none, s = select_candidates(only_invalid, basis, active)
    assert none.sizes["config"] == 0 and s.attrs["n_invalid"] == 1 and np.isnan(s.attrs["max_grade"])


def _duplicates():
    """Five identical far configurations (exact ties) among interpolating ones."""
    return configs([TRI, far(3.0), far(3.0), TRI * 1.05, far(3.0), far(3.0), far(3.0)])


def test_seed_breaks_exact_ties_reproducibly(active):
    pool = _duplicates()
    picks = {int(select_candidates(pool, basis, active, budget=1, seed=s)[0]["pool_index"].values[0])
             for s in range(12)}
    assert len(picks) > 1 and picks <= {1, 2, 4, 5, 6}
    for s in (0, 3):
        first = select_candidates(pool, basis, active, budget=1, seed=s)[0]["pool_index"].values
        for _ in range(4):
            np.testing.assert_array_equal(select_candidates(pool, basis, active, budget=1, seed=s)[0]
                                          ["pool_index"].values, first)
    default = select_candidates(pool, basis, active, budget=1)[0]["pool_index"].values
    np.testing.assert_array_equal(default, select_candidates(pool, basis, active, budget=1, seed=0)[0]
                                  ["pool_index"].values)
    seeds = {s: int(select_candidates(pool, basis, active, budget=1, seed=s)[0]["pool_index"].values[0])
             for s in range(12)}
    assert any(seeds[s] != seeds[0] for s in seeds)


def test_tol_is_passed_to_the_greedy_choice(active):
    pool = configs([TRI, far(3.0), far(4.0, 1.0)])
    picked, _ = select_candidates(pool, basis, active, budget=5)
    assert picked.sizes["config"] >= 1
    none, summary = select_candidates(pool, basis, active, budget=5, tol=1e6)
    assert none.sizes["config"] == 0 and summary.attrs["n_candidates"] == 2
    assert list(summary["reason"].values) == ["below_threshold", "not_chosen", "not_chosen"]


def test_config_mode_active_set():
    train = configs([TRI + 0.1 * k * np.eye(4, 3, k % 3) for k in range(6)])
    active = build_active_set(basis, train, mode="config")
    pool = configs([TRI, far(3.0), far(6.0, 1.0)])
    sel, summary = select_candidates(pool, basis, active, budget=2)
    np.testing.assert_allclose(summary["grade"].values, configuration_grades(basis, active, pool))
    assert summary.attrs["active_set_mode"] == "config" and sel.sizes["config"] >= 1


def test_run_select_seed_sequence_budget_and_summary(active):
    pool = _duplicates()
    settings = SelectionSettings(budget=1)
    for ss in (np.random.SeedSequence(11), np.random.SeedSequence(12), np.random.SeedSequence(13)):
        seed = int(ss.generate_state(1)[0])
        result = run_select(SelectInputs(pool, basis, active, max_new=3), settings, ss)
        plain, summary = select_candidates(pool, basis, active, budget=1, seed=seed)
        np.testing.assert_array_equal(result.selected["pool_index"].values, plain["pool_index"].values)
        assert result.summary.attrs["seed"] == seed
    by_seed = {s: int(run_select(SelectInputs(pool, basis, active, 3), settings, s).selected["pool_index"][0])
               for s in range(12)}
    assert len(set(by_seed.values())) > 1
    for s, pick in by_seed.items():
        assert pick == int(select_candidates(pool, basis, active, budget=1, seed=s)[0]["pool_index"][0])
    empty = run_select(SelectInputs(pool, basis, active, max_new=0), settings, 0)
    assert empty.selected.sizes["config"] == 0 and empty.summary.attrs["budget"] == 0
    negative = run_select(SelectInputs(pool, basis, active, max_new=-3), settings, 0)
    assert negative.selected.sizes["config"] == 0
    result = select_task.fn(SelectInputs(pool, basis, active, max_new=9), SelectionSettings(budget=2), 1)
    assert isinstance(result, SelectResult) and result.selected.sizes["config"] == 1  # exact duplicates
    assert result.summary.attrs["n_pool"] == 7 and result.summary.attrs["budget"] == 2
    assert (result.n_above_threshold, result.n_above_break, result.n_invalid) == (5, 0, 0)


def test_settings_model():
    s = SelectionSettings()
    assert (s.threshold, s.break_threshold, s.budget) == (2.0, 10.0, 8)
    SelectionSettings(threshold=1.0, break_threshold=1.01, budget=1)
    SelectionSettings(budget=100_000)
    for bad in ({"threshold": 0.99}, {"break_threshold": 0.5}, {"budget": 0}, {"budget": 100_001},
                {"threshold": float("nan")}, {"break_threshold": float("inf")}, {"colour": 1}):
        with pytest.raises(ValueError):
            SelectionSettings(**bad)
    with pytest.raises(ValueError, match=r"break_threshold \(3.0\) must exceed threshold \(4.0\)"):
        SelectionSettings(threshold=4.0, break_threshold=3.0)
    with pytest.raises(ValueError):
        s.budget = 3  # frozen


def test_thresholds_are_strict_at_exact_grades(active):
    pool = configs([TRI, far(3.0), far(5.0, 2.0), far(20.0)])
    grades = configuration_grades(basis, active, pool)
    g1, g2, g3 = (float(g) for g in grades[1:])
    assert 2.0 < g1 < g2 < g3
    sel, summary = select_candidates(pool, basis, active, threshold=g1, break_threshold=g2, budget=1)
    assert summary["reason"].values[1] == "below_threshold"  # γ == threshold is not a candidate
    assert summary.attrs["n_candidates"] == 2 and summary.attrs["n_break"] == 1
    assert list(sel["pool_index"].values) == [3] and list(sel["reason"].values) == ["break"]
    sel, summary = select_candidates(pool, basis, active, threshold=g1, break_threshold=g3, budget=1)
    assert summary.attrs["n_break"] == 0  # γ == break_threshold is not a break
    assert list(sel["pool_index"].values) == [3] and list(sel["reason"].values) == ["extrapolation"]


def test_dataset_dimensions_and_description(active):
    pool = configs([TRI, far(3.0), far(20.0)])
    sel, summary = select_candidates(pool, basis, active, budget=3)
    for name in ("grade", "volume_gain", "selection_rank", "pool_index", "reason"):
        assert sel[name].dims == ("config",), name
    for name in ("grade", "selected", "reason"):
        assert summary[name].dims == ("config",), name
    for name in ("grade_count", "grade_bin_lower", "grade_bin_upper"):
        assert summary[name].dims == ("grade_bin",), name
    assert set(summary.data_vars) == {"grade", "selected", "reason", "problem", "grade_count", "grade_bin_lower",
                                      "grade_bin_upper"}
    assert summary["grade"].attrs == {
        "description": "extrapolation grade max|b A^-1| w.r.t. the active set before selection"}
    assert set(sel.data_vars) >= {"grade", "volume_gain", "selection_rank", "pool_index", "reason"}
    assert sel["volume_gain"].shape == (sel.sizes["config"],)


def test_default_tol_selects_small_volume_gains(active):
    """A configuration with 1 + tol < γ < 2 grows the volume by less than 2: selected with the default tol 1e-3."""
    pool = configs([TRI, TRI * 1.5])
    grade = configuration_grades(basis, active, pool)[1]
    assert 1.01 < grade < 2.0
    sel, summary = select_candidates(pool, basis, active, threshold=1.0, break_threshold=10.0, budget=2)
    assert list(sel["pool_index"].values) == [1] and sel["volume_gain"].values[0] == pytest.approx(grade)
    same, _ = select_candidates(pool, basis, active, threshold=1.0, break_threshold=10.0, budget=2, tol=1e-3)
    np.testing.assert_array_equal(same["pool_index"].values, sel["pool_index"].values)
