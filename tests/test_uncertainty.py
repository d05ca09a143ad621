"""MaxVol active set, extrapolation grade and Bayesian variance (hmc_core.uncertainty).

References are computed in the tests themselves by brute force (determinants of every candidate
matrix with numpy) — the definition of D-optimality — not taken from another code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hmc_core.configurations import make_configurations
from hmc_core.uncertainty import ActiveSet, BayesianLinearModel, build_active_set, configuration_grades, grade_monitor


def random_rows(n, m, seed=0):
    return np.random.default_rng(seed).standard_normal((n, m))


def test_grade_at_most_one_for_members_and_span():
    rows = random_rows(60, 6)
    active = ActiveSet.from_basis(rows, np.arange(60), mode="config", tol=1e-9)
    assert active.n_placeholders == 0
    assert active.residual() < 1e-8
    # every active row has grade 1 (it is a unit vector in its own coordinates), every training row ≤ 1
    assert np.allclose(active.grades(active.basis), 1.0, atol=1e-9)
    assert active.grades(rows).max() <= 1.0 + 1e-9
    # convex combinations of active rows lie inside the parallelotope: γ ≤ 1
    w = np.random.default_rng(1).dirichlet(np.ones(6), size=20)
    assert active.grades(w @ active.basis).max() <= 1.0 + 1e-9
    # a row that extends the volume: twice an active row plus a little of another
    outside = 2.0 * active.basis[0] + 0.1 * active.basis[1]
    assert active.grades(outside)[0] == pytest.approx(2.0, rel=1e-9)


def test_grade_invariant_to_change_of_basis():
    rows = random_rows(50, 5, seed=2)
    probe = random_rows(10, 5, seed=3) * 3
    m = np.random.default_rng(4).standard_normal((5, 5)) + 3 * np.eye(5)
    g1 = ActiveSet.from_basis(rows, np.arange(50), mode="config", tol=1e-9).grades(probe)
    g2 = ActiveSet.from_basis(rows @ m, np.arange(50), mode="config", tol=1e-9).grades(probe @ m)
    assert np.allclose(g1, g2, rtol=1e-7)


def test_update_equals_bruteforce_determinant_search():
    """One new row: MaxVol swaps it into the slot that maximises |det| (checked over all slots), and
    the rank-1 updated inverse equals numpy's inverse."""
    rows = random_rows(30, 4, seed=5)
    active = ActiveSet.from_basis(rows, np.arange(30), mode="config", tol=1e-12)
    new = 1.7 * active.basis[2] - 0.9 * active.basis[0] + 0.3 * active.basis[3]
    dets = []
    for j in range(4):
        trial = active.basis.copy()
        trial[j] = new
        dets.append(abs(np.linalg.det(trial)))
    before = abs(np.linalg.det(active.basis))
    assert active.update(new, config_id=99, tol=1e-12) == 1
    assert active.config_id[int(np.argmax(dets))] == 99
    assert abs(np.linalg.det(active.basis)) == pytest.approx(max(dets), rel=1e-10)
    assert max(dets) / before == pytest.approx(1.7, rel=1e-10)  # volume grows by the grade
    assert np.allclose(active.inverse, np.linalg.inv(active.basis), atol=1e-10)


def test_maxvol_is_locally_optimal_and_finds_bruteforce_optimum_on_small_example():
    rows = random_rows(12, 3, seed=6)
    active = ActiveSet.from_basis(rows, np.arange(12), mode="config", tol=1e-12)
    vol = abs(np.linalg.det(active.basis))
    # no single swap of any row into any slot increases the volume (local optimality, by determinants)
    for i, j in itertools.product(range(12), range(3)):
        trial = active.basis.copy()
        trial[j] = rows[i]
        assert abs(np.linalg.det(trial)) <= vol * (1 + 1e-9)
    # on this example the local optimum is the global one (all 220 subsets checked)
    best = max(abs(np.linalg.det(rows[list(s)])) for s in itertools.combinations(range(12), 3))
    assert vol == pytest.approx(best, rel=1e-10)
    assert sorted(active.config_id) == sorted(set(active.config_id))


def test_placeholders_flag_unspanned_directions():
    rows = random_rows(20, 5, seed=7)
    rows[:, 4] = 0.0  # the data never uses basis function 4
    active = ActiveSet.from_basis(rows, np.arange(20), mode="config")
    assert active.n_placeholders == 1
    probe = rows[0].copy()
    probe[4] = 0.1
    assert active.grades(probe)[0] > 1e3
    assert active.grades(rows).max() <= 1.0 + 1e-3


def test_config_grades_max_over_atoms_and_errors():
    rows = random_rows(40, 4, seed=8)
    active = ActiveSet.from_basis(rows, np.repeat(np.arange(10), 4), np.tile(np.arange(4), 10), mode="atom")
    probe = np.vstack([rows[:3], 3 * active.basis[1]])
    g = active.config_grades(probe, [0, 0, 1, 1], 2)
    assert g[0] <= 1 + 1e-3 and g[1] == pytest.approx(3.0, rel=1e-9)
    with pytest.raises(ValueError, match="basis functions"):
        active.grades(np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        active.grades(np.full((1, 4), np.nan))


def test_select_respects_budget_and_skips_near_duplicates():
    rows = random_rows(30, 6, seed=9)
    active = ActiveSet.from_basis(rows[:10], np.arange(10), mode="config")
    far = 5.0 * random_rows(1, 6, seed=10)
    pool = np.vstack([far, far * (1 + 1e-6), far * (1 - 1e-6), rows[10:]])  # 3 near-duplicates first
    sel = active.select(pool, np.arange(len(pool)), len(pool), budget=4)
    assert len(sel.chosen) <= 4 and len(set(sel.chosen)) == len(sel.chosen)
    assert len(set(sel.chosen) & {0, 1, 2}) == 1  # only one of the near-duplicates
    assert np.all(sel.gain > 1) and np.all(np.diff(sel.gain) <= 1e-12 + 0)  # the volume gain only shrinks
    assert np.array_equal(active.basis, ActiveSet.from_basis(rows[:10], np.arange(10), mode="config").basis)
    assert sel.active_set.grades(pool[sel.chosen]).max() <= 1 + 1e-9


def test_active_set_dataset_round_trip(tmp_path):
    from hmc_core.configurations import read_netcdf, write_netcdf

    rows = random_rows(30, 5, seed=11)
    active = ActiveSet.from_basis(rows, np.arange(30) + 100, mode="config")
    path = write_netcdf(active.to_dataset(), tmp_path / "active.nc")
    back = ActiveSet.from_dataset(read_netcdf(path))
    assert back.mode == "config" and back.n_swaps == active.n_swaps
    assert np.array_equal(back.inverse, active.inverse) and np.array_equal(back.config_id, active.config_id)
    with pytest.raises(ValueError, match="not an active-set"):
        ActiveSet.from_dataset(read_netcdf(path).assign_attrs(schema="x"))


def pair_basis(positions, cell, pbc, species):
    """A real (if simple) linear model for open clusters: per atom, Gaussians of its pair distances
    plus a constant column (site energy = row · coefficients)."""
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    centres = np.linspace(0.8, 3.0, 6)
    g = np.exp(-((d[..., None] - centres) ** 2) / 0.1)
    g[np.arange(len(d)), np.arange(len(d))] = 0.0
    return np.hstack([np.ones((len(d), 1)), g.sum(axis=1)])


def cluster_configs(n, scale, seed):
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [0, 0, 1.1], [1.1, 1.1, 0]], float)
    pos = [base + scale * rng.standard_normal(base.shape) for _ in range(n)]
    return make_configurations(pos, [np.full(5, 18)] * n)


def test_grades_and_monitor_through_a_basis_model():
    train = cluster_configs(40, 0.05, seed=0)
    active = build_active_set(pair_basis, train, mode="atom")
    assert configuration_grades(pair_basis, active, train).max() <= 1 + 1e-3
    far = cluster_configs(5, 0.4, seed=1)
    g_far = configuration_grades(pair_basis, active, far)
    assert g_far.max() > 2
    mon = grade_monitor(pair_basis, active, np.full(5, 18))
    assert mon(far["positions"].values[int(np.argmax(g_far))]) == pytest.approx(g_far.max(), rel=1e-12)


def test_bayesian_variance_grows_away_from_data():
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (80, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(80)
    model = BayesianLinearModel.fit(x, y)
    assert np.allclose(model.coef, [1.0, -2.0, 0.5], atol=0.02)
    near = model.epistemic_std(rng.uniform(-0.5, 0.5, (20, 3)))
    far = model.epistemic_std(rng.uniform(-0.5, 0.5, (20, 3)) + 10.0)
    assert far.min() > 5 * near.max()
    assert np.all(model.predictive_std(x) > model.epistemic_std(x))
    assert model.noise_precision == pytest.approx(1e4, rel=0.5)  # noise std 0.01 recovered by the evidence
    # conditioning on one label at a row combines the two variances like independent measurements
    probe = np.array([[5.0, 5.0, 5.0]])
    before, after = model.epistemic_std(probe)[0], model.conditioned_on(probe).epistemic_std(probe)[0]
    assert after ** -2 == pytest.approx(before ** -2 + model.noise_precision, rel=1e-8)


def test_bayesian_greedy_select_avoids_duplicates():
    rng = np.random.default_rng(13)
    x = rng.uniform(-1, 1, (50, 4))
    model = BayesianLinearModel.fit(x, x.sum(axis=1) + 0.01 * rng.standard_normal(50))
    far = np.full(4, 6.0)
    pool = np.vstack([far, far, far + 1e-6, rng.uniform(-1, 1, (10, 4)), -far * np.array([1, -1, 1, -1])])
    chosen, std = model.greedy_select(pool, 3)
    assert len(set(chosen[:2]) & {0, 1, 2}) == 1 and 13 in chosen[:2]
    assert np.all(np.diff(std) <= 1e-12)


def test_committee_spread_grows_away_from_data_and_is_seeded():
    from hmc_core.uncertainty import Committee

    rng = np.random.default_rng(14)
    x = rng.uniform(-1, 1, (60, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.05 * rng.standard_normal(60)
    groups = np.repeat(np.arange(20), 3)  # three rows per "configuration", resampled together
    c1 = Committee.fit(x, y, groups, n_members=16, seed=1)
    c2 = Committee.fit(x, y, groups, n_members=16, seed=1)
    assert np.array_equal(c1.coefficients, c2.coefficients)
    near = c1.std(rng.uniform(-0.5, 0.5, (20, 3)))
    far = c1.std(rng.uniform(-0.5, 0.5, (20, 3)) + 10.0)
    assert far.min() > 5 * near.max()
    with pytest.raises(ValueError, match="at least 2"):
        Committee.fit(x, y, groups, n_members=1)
