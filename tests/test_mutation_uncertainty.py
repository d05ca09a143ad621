"""hmc_core.uncertainty details that mutation testing (``make mutation``, bench/mutation.py) found untested:
argument checks and their messages, defaults, bookkeeping of the active set (ids, swaps, copies, storage),
the Bayesian model's formulas, the committee's bootstrap and the grade monitor. Small random matrices; fast."""

from __future__ import annotations

import numpy as np
import pytest

from hmc_core.configurations import make_configurations
from hmc_core.uncertainty import (
    ActiveSet,
    BayesianLinearModel,
    Committee,
    basis_function,
    build_active_set,
    configuration_grades,
    configuration_rows,
    grade_monitor,
    update_active_set,
)
from hmc_core.uncertainty.maxvol import MODES, PLACEHOLDER, _as_rows, _group_index, _ids


def rows(n, m, seed=0):
    return np.random.default_rng(seed).standard_normal((n, m))


# --------------------------------------------------------------------------------------------- maxvol


def test_as_rows_checks_and_messages():
    r = _as_rows([1.0, 2.0, 3.0])
    assert r.shape == (1, 3) and r.dtype == np.float64 and r.flags.c_contiguous
    assert _as_rows(np.ones((2, 3), np.float32), 3).dtype == np.float64
    with pytest.raises(ValueError, match=r"^rows must be a 2-D array \(n_rows, n_basis\), got shape \(1, 2, 3\)$"):
        _as_rows(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"^probe must be a 2-D array"):
        _as_rows(np.ones((1, 2, 3)), what="probe")
    with pytest.raises(ValueError, match=r"^rows have 3 basis functions but the active set has 4; use the same "
                                         r"potential \(level, species\) that built the active set$"):
        _as_rows(np.ones((2, 3)), 4)
    with pytest.raises(ValueError, match=r"^rows contain NaN or inf \(a configuration outside the potential's "
                                         r"domain\?\)$"):
        _as_rows([[1.0, np.inf]])
    with pytest.raises(ValueError, match="NaN or inf"):
        _as_rows([[np.nan, 1.0]], 2)


def test_active_set_checks_and_empty():
    assert MODES == ("atom", "config") and PLACEHOLDER == -1
    eye = np.eye(2)
    ids = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match=r"^active-set mode must be one of \('atom', 'config'\), got 'graph'$"):
        ActiveSet("graph", eye, eye, ids, ids)
    with pytest.raises(ValueError, match=r"^active-set basis and inverse must be square \(m, m\), got \(2, 2\) and "
                                         r"\(2, 3\)$"):
        ActiveSet("atom", eye, np.ones((2, 3)), ids, ids)
    with pytest.raises(ValueError, match="must be square"):
        ActiveSet("atom", np.ones((2, 3)), np.ones((2, 3)), ids, ids)
    with pytest.raises(ValueError, match=r"^config_id and atom_index must have one entry per active row$"):
        ActiveSet("atom", eye, eye, np.zeros(3, np.int64), ids)
    with pytest.raises(ValueError, match="one entry per active row"):
        ActiveSet("atom", eye, eye, ids, np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"^n_basis must be ≥ 1, got 0$"):
        ActiveSet.empty(0)
    one = ActiveSet.empty(1)
    assert one.n_basis == 1 and one.mode == "atom"
    e = ActiveSet.empty(3, scale=[2.0, np.nan, -1.0])
    np.testing.assert_allclose(np.diag(e.basis), [2e-5, 1e-5, 1e-5])
    np.testing.assert_allclose(np.diag(e.inverse), [0.5e5, 1e5, 1e5])
    np.testing.assert_array_equal(e.basis, np.diag(np.diag(e.basis)))
    assert e.config_id.tolist() == [-1] * 3 and e.atom_index.tolist() == [-1] * 3
    assert e.config_id.dtype == np.int64 and e.atom_index.dtype == np.int64
    assert e.attrs == {"placeholder_eps": 1e-5} and e.n_swaps == 0 and e.n_placeholders == 3
    f = ActiveSet.empty(2, mode="config", eps=0.5)
    np.testing.assert_allclose(f.basis, 0.5 * np.eye(2))
    assert f.mode == "config" and f.attrs == {"placeholder_eps": 0.5}
    g = ActiveSet.empty(2, scale=np.array([[3.0], [0.0]]))
    np.testing.assert_allclose(np.diag(g.basis), [3e-5, 1e-5])


def test_from_basis_scales_placeholders_and_records_ids():
    r = rows(12, 3, seed=1) * np.array([1.0, 10.0, 100.0])
    a = ActiveSet.from_basis(r, np.arange(100, 112), np.arange(12) % 4)
    assert a.n_placeholders == 0 and a.n_swaps >= 3 and a.residual() < 1e-8
    assert set(a.config_id.tolist()) <= set(range(100, 112))
    for slot in range(3):  # each active row is the training row of its recorded id
        np.testing.assert_allclose(a.basis[slot], r[a.config_id[slot] - 100])
        assert a.atom_index[slot] == (a.config_id[slot] - 100) % 4
    assert a.mode == "atom" and a.attrs == {"placeholder_eps": 1e-5}
    # one row: one swap, the other slots stay placeholders scaled by that row's |entries|
    single = ActiveSet.from_basis([[2.0, 0.0, 0.0]], [7], mode="config", eps=1e-3)
    assert single.n_swaps == 1 and single.n_placeholders == 2 and single.mode == "config"
    assert single.config_id.tolist().count(7) == 1 and single.atom_index.tolist() == [-1] * 3
    limited = ActiveSet.from_basis(r, np.arange(12), max_swaps=1)
    assert limited.n_swaps == 1 and limited.n_placeholders == 2
    # tol: a huge tolerance accepts no swap at all
    assert ActiveSet.from_basis(r, np.arange(12), tol=1e12).n_swaps == 0
    # default tol 1e-3: rows that grow the volume by 1.01 are still swapped in
    base = ActiveSet.from_basis(np.eye(2), [0, 1], mode="config", tol=1e-9)
    assert base.update([[1.01, 0.0]], [5]) == 1 and 5 in base.config_id


def test_grades_config_grades_and_residual():
    a = ActiveSet.from_basis(np.eye(3), np.arange(3), mode="config", tol=1e-9)
    assert a.n_placeholders == 0 and a.residual() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(a.grades([[0.5, -3.0, 1.0], [0.1, 0.2, 0.3]]), [3.0, 0.3])
    np.testing.assert_allclose(a.grades([2.0, 0.0, 0.0]), [2.0])
    g = a.config_grades([[1.0, 0, 0], [0, 4.0, 0], [0, 0, 2.0]], [1, 1, 0], 3)
    assert g[0] == 2.0 and g[1] == 4.0 and g.shape == (3,)
    with pytest.raises(ValueError, match="basis functions"):
        a.grades(np.ones((1, 2)))
    a.inverse[0, 0] += 1e-3
    assert a.residual() == pytest.approx(1e-3)


def test_update_bookkeeping():
    a = ActiveSet.empty(2, mode="atom", eps=1e-3)
    n = a.update([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], [10, 11, 12], [3, 4, 5])
    assert n == 2 and a.n_swaps == 2 and a.n_placeholders == 0
    assert sorted(a.config_id.tolist()) == [10, 11] and sorted(a.atom_index.tolist()) == [3, 4]
    assert dict(zip(a.config_id.tolist(), a.atom_index.tolist(), strict=True)) == {10: 3, 11: 4}
    assert a.update([[3.0, 0.0]], 20) == 1 and a.n_swaps == 3  # a scalar config_id, no atom index
    assert 20 in a.config_id.tolist() and a.atom_index[a.config_id.tolist().index(20)] == -1
    assert a.update([[0.1, 0.1]], [21]) == 0 and a.n_swaps == 3
    b = ActiveSet.empty(2, eps=1e-3)
    assert b.update([[1.0, 0.0], [0.0, 1.0]], [1, 2], max_swaps=1) == 1 and b.n_placeholders == 1
    assert b.update([[1.0, 0.0], [0.0, 1.0]], [1, 2], max_swaps=0) == 0
    # largest |c| first: the 5 goes in, after which the 1 no longer grows the volume
    c = ActiveSet.empty(1, eps=1e-3)
    assert c.update([[1.0], [5.0]], [1, 2], [7, 8]) == 1
    assert c.config_id.tolist() == [2] and c.atom_index.tolist() == [8]
    assert c.update([[6.0]], [3], [9]) == 1 and c.config_id.tolist() == [3] and c.atom_index.tolist() == [9]


def test_ids_and_group_index_checks():
    cid, aid = _ids(4, None, 3)
    assert cid.tolist() == [4, 4, 4] and aid.tolist() == [-1, -1, -1] and cid.dtype == aid.dtype == np.int64
    cid, aid = _ids([[1, 2]], [[0, 5]], 2)
    assert cid.tolist() == [1, 2] and aid.tolist() == [0, 5]
    assert _ids([9], None, 1)[0].tolist() == [9]
    with pytest.raises(ValueError, match=r"^config_id needs one entry per row \(3\), got \(2,\)$"):
        _ids([1, 2], None, 3)
    with pytest.raises(ValueError, match=r"^atom_index needs one entry per row \(2\), got \(3,\)$"):
        _ids([1, 2], [0, 1, 2], 2)
    assert _group_index([[0, 2]], 2, 3).tolist() == [0, 2]
    assert _group_index(np.array([], np.int64), 0, 0).shape == (0,)
    with pytest.raises(ValueError, match=r"^row_config needs one entry per row \(3\), got \(2,\)$"):
        _group_index([0, 1], 3, 2)
    with pytest.raises(ValueError, match=r"^row_config entries must lie in 0\.\.1$"):
        _group_index([0, 2], 2, 2)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.2"):
        _group_index([-1, 0], 2, 3)
    _group_index([0, 2], 2, 3)  # the last configuration is allowed


def test_select_bookkeeping_and_checks():
    a = ActiveSet.empty(2, mode="config", eps=1e-3)
    before = a.basis.copy()
    r = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.1]])
    with pytest.raises(ValueError, match=r"^budget must be ≥ 0, got -1$"):
        a.select(r, [0, 1, 2], 3, -1)
    sel = a.select(r, [0, 1, 2], 3, 1)
    assert sel.chosen.tolist() == [2] and sel.gain.shape == (1,) and sel.gain[0] > 1
    np.testing.assert_array_equal(a.basis, before)  # self not modified
    assert a.n_swaps == 0 and a.n_placeholders == 2
    assert sel.active_set is not a and sel.active_set.n_swaps == sel.n_swaps >= 1
    assert 2 in sel.active_set.config_id.tolist() and set(sel.active_set.atom_index.tolist()) == {-1}
    none = a.select(r, [0, 1, 2], 3, 0)
    assert none.chosen.shape == (0,) and none.gain.shape == (0,) and none.n_swaps == 0
    masked = a.select(r, [0, 1, 2], 3, 3, candidates=[True, True, False])
    assert 2 not in masked.chosen.tolist() and sorted(masked.chosen.tolist()) == [0, 1]
    np.testing.assert_array_equal(masked.active_set.config_id[masked.active_set.config_id >= 0].tolist().count(2), 0)
    assert a.select(r, [0, 1, 2], 3, 3, tol=1e9).chosen.shape == (0,)
    # default tol 1e-3: a volume growth of 1.01 is a pick
    b = ActiveSet.from_basis(np.eye(2), [0, 1], mode="config", tol=1e-9)
    assert b.select([[1.01, 0.0]], [0], 1, 1).chosen.tolist() == [0]
    b.n_swaps = 5
    assert b.select([[1.01, 0.0]], [0], 1, 1).active_set.n_swaps == 6


def test_copy_is_deep_and_dataset_round_trip(tmp_path):
    a = ActiveSet.from_basis(rows(8, 3, seed=2), np.arange(8), np.arange(8))
    a.attrs["potential"] = "p.mtp"
    c = a.copy()
    assert c is not a and c.mode == a.mode and c.n_swaps == a.n_swaps and c.attrs == a.attrs
    for name in ("basis", "inverse", "config_id", "atom_index"):
        np.testing.assert_array_equal(getattr(c, name), getattr(a, name))
        getattr(c, name)[0] += 1
        assert not np.array_equal(getattr(c, name), getattr(a, name)), name
    c.attrs["x"] = 1
    assert "x" not in a.attrs
    ds = a.to_dataset()
    assert ds["active_basis"].dims == ("active_row", "basis_function")
    assert ds["active_inverse"].dims == ("active_row", "basis_function")
    assert ds["active_config_id"].dims == ("active_row",) and ds["active_atom_index"].dims == ("active_row",)
    assert ds.attrs == {"placeholder_eps": 1e-5, "potential": "p.mtp", "schema": "pesflow.active_set/1",
                        "mode": "atom", "n_swaps": a.n_swaps}
    assert ds["active_inverse"].attrs == {"description": "inverse of active_basis, transposed index order (m, m)"}
    ds.to_netcdf(tmp_path / "a.nc")
    import xarray as xr

    with xr.open_dataset(tmp_path / "a.nc") as stored:
        back = ActiveSet.from_dataset(stored.load())
    assert back.mode == "atom" and back.n_swaps == a.n_swaps and type(back.n_swaps) is int
    assert back.attrs == {"placeholder_eps": 1e-5, "potential": "p.mtp"}
    for name in ("basis", "inverse", "config_id", "atom_index"):
        np.testing.assert_array_equal(getattr(back, name), getattr(a, name))
    assert back.basis.dtype == np.float64 and back.config_id.dtype == np.int64 and back.atom_index.dtype == np.int64
    bad = ds.copy()
    bad.attrs["schema"] = "other/1"
    with pytest.raises(ValueError, match=r"^not an active-set dataset \(schema 'other/1', expected "
                                         r"'pesflow.active_set/1'\)$"):
        ActiveSet.from_dataset(bad)
    del bad.attrs["schema"]
    with pytest.raises(ValueError, match=r"schema None"):
        ActiveSet.from_dataset(bad)


# ---------------------------------------------------------------------------------------------- bayes


def _bayes_data(n=30, m=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, m)) * np.array([1.0, 5.0, 0.2])[:m]
    y = x @ np.arange(1.0, m + 1) + 0.01 * rng.standard_normal(n)
    return x, y


def test_bayes_fit_formulas_with_fixed_hyperparameters():
    x, y = _bayes_data()
    model = BayesianLinearModel.fit(x, y, weight_precision=2.0, noise_precision=50.0)
    scale = np.sqrt((x * x).mean(axis=0))
    xs = x / scale
    cov = np.linalg.inv(2.0 * np.eye(3) + 50.0 * xs.T @ xs)
    np.testing.assert_allclose(model.scale, scale)
    np.testing.assert_allclose(model.covariance, cov, rtol=1e-10)
    np.testing.assert_array_equal(model.covariance, model.covariance.T)
    np.testing.assert_allclose(model.coef, 50.0 * cov @ xs.T @ y / scale, rtol=1e-10)
    assert (model.noise_precision, model.weight_precision, model.n_basis) == (50.0, 2.0, 3)
    assert type(model.noise_precision) is float and type(model.weight_precision) is float
    probe = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(model.predict(probe), probe @ model.coef)
    eps = np.sqrt(np.einsum("ij,jk,ik->i", probe / scale, cov, probe / scale))
    np.testing.assert_allclose(model.epistemic_std(probe), eps, rtol=1e-10)
    np.testing.assert_allclose(model.predictive_std(probe), np.sqrt(eps ** 2 + 1 / 50.0), rtol=1e-10)
    np.testing.assert_allclose(model.predict(probe[0]), model.predict(probe[:1]))


def test_bayes_fit_evidence_and_partial_hyperparameters():
    from sklearn.linear_model import BayesianRidge

    x, y = _bayes_data(seed=1)
    scale = np.sqrt((x * x).mean(axis=0))
    br = BayesianRidge(fit_intercept=False, max_iter=500, tol=1e-6).fit(x / scale, y)
    auto = BayesianLinearModel.fit(x, y)
    assert auto.noise_precision == pytest.approx(br.alpha_) and auto.weight_precision == pytest.approx(br.lambda_)
    only_w = BayesianLinearModel.fit(x, y, weight_precision=3.0)
    assert only_w.weight_precision == 3.0 and only_w.noise_precision == pytest.approx(br.alpha_)
    only_a = BayesianLinearModel.fit(x, y, noise_precision=7.0)
    assert only_a.noise_precision == 7.0 and only_a.weight_precision == pytest.approx(br.lambda_)
    # a zero column gets scale 1 (no division by zero)
    xz = np.column_stack([x[:, :2], np.zeros(len(x))])
    z = BayesianLinearModel.fit(xz, y, 1.0, 1.0)
    assert z.scale[2] == 1.0 and np.all(np.isfinite(z.coef))


def test_bayes_checks():
    x, y = _bayes_data()
    with pytest.raises(ValueError, match=r"^targets must be 30 finite numbers, got shape \(29,\)$"):
        BayesianLinearModel.fit(x, y[:-1])
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="targets must be 30 finite numbers"):
        BayesianLinearModel.fit(x, bad)
    with pytest.raises(ValueError, match=r"^need at least two labelled rows to fit a Bayesian linear model$"):
        BayesianLinearModel.fit(x[:1], y[:1], 1.0, 1.0)
    BayesianLinearModel.fit(x[:2], y[:2], 1.0, 1.0)
    with pytest.raises(ValueError, match=r"^rows contain NaN or inf$"):
        BayesianLinearModel.fit(np.where(np.eye(30, 3) > 0, np.inf, x), y)
    model = BayesianLinearModel.fit(x, y, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"^rows must have shape \(n, 3\), got \(1, 2\)$"):
        model.predict([1.0, 2.0])
    with pytest.raises(ValueError, match=r"rows must have shape \(n, n_basis\), got \(1, 1, 3\)"):
        BayesianLinearModel.fit(np.ones((1, 1, 3)), [1.0])


def test_bayes_conditioning_and_greedy_selection():
    x, y = _bayes_data(seed=2)
    model = BayesianLinearModel.fit(x, y, 1.0, 10.0)
    new = np.array([[5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    cond = model.conditioned_on(new)
    cov = model.covariance.copy()
    for v in new / model.scale:
        s = cov @ v
        cov = cov - np.outer(s, s) / (1 / 10.0 + v @ s)
    np.testing.assert_allclose(cond.covariance, cov, rtol=1e-10)
    np.testing.assert_array_equal(cond.coef, model.coef)
    assert (cond.noise_precision, cond.weight_precision) == (10.0, 1.0)
    np.testing.assert_array_equal(cond.scale, model.scale)
    assert np.all(cond.epistemic_std(new) < model.epistemic_std(new))
    assert not np.array_equal(model.covariance, cov)  # the model itself is unchanged
    pool = np.array([[8.0, 0, 0], [8.0, 0, 0], [0, 0, 2.0], [0, 1.0, 0]])
    chosen, stds = model.greedy_select(pool, 3)
    assert chosen.dtype == np.int64 and len(chosen) == 3 and len(set(chosen.tolist())) == 3
    # sequential reference: largest epistemic std, then condition on it
    ref, m = [], model
    left = list(range(4))
    for _ in range(3):
        s = m.epistemic_std(pool)
        i = max(left, key=lambda k: s[k])
        ref.append((i, s[i]))
        left.remove(i)
        m = m.conditioned_on(pool[i])
    assert chosen.tolist() == [i for i, _ in ref]
    np.testing.assert_allclose(stds, [s for _, s in ref], rtol=1e-8)
    per_atom, s2 = model.greedy_select(pool, 1, n_atoms=[100, 100, 1, 1])
    e = model.epistemic_std(pool) / np.array([100, 100, 1, 1])
    assert per_atom.tolist() == [int(np.argmax(e))] and s2[0] == pytest.approx(e.max())
    masked, _ = model.greedy_select(pool, 5, candidates=[False, True, False, True])
    assert sorted(masked.tolist()) == [1, 3]
    assert model.greedy_select(pool, 0)[0].shape == (0,)


# ------------------------------------------------------------------------------------------ committee


def test_committee_checks_bootstrap_and_std():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 3))
    b = a @ [1.0, 2.0, 3.0] + 0.1 * rng.standard_normal(40)
    g = np.repeat(np.arange(10), 4)
    c = Committee.fit(a, b, g)
    assert c.coefficients.shape == (8, 3)
    np.testing.assert_array_equal(Committee.fit(a, b, g, seed=0).coefficients, c.coefficients)
    assert not np.array_equal(Committee.fit(a, b, g, seed=1).coefficients, c.coefficients)
    assert Committee.fit(a, b, g, n_members=2).coefficients.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^a committee needs at least 2 members, got 1$"):
        Committee.fit(a, b, g, n_members=1)
    with pytest.raises(ValueError, match=r"^design \(n, m\), targets \(n,\) and groups \(n,\) must agree, got "
                                         r"\(40, 3\), \(39,\), \(40,\)$"):
        Committee.fit(a, b[:-1], g)
    with pytest.raises(ValueError, match="must agree"):
        Committee.fit(a, b, g[:-1])
    with pytest.raises(ValueError, match="must agree"):
        Committee.fit(a[:, 0], b, g)
    # reference bootstrap: whole groups drawn with replacement, ridge on their rows
    from hmc_core.mtp.fit import solve_ridge

    draws = np.random.default_rng(5)
    ref = []
    for _ in range(3):
        k = draws.integers(0, 10, 10)
        r = np.concatenate([np.nonzero(g == j)[0] for j in k])
        ref.append(solve_ridge(a[r], b[r], 1e-12)[0])
    np.testing.assert_allclose(Committee.fit(a, b, g, n_members=3, seed=5).coefficients, ref)
    np.testing.assert_allclose(Committee.fit(a, b, g, n_members=3, l2=10.0, seed=5).coefficients[0],
                               solve_ridge(a[np.concatenate([np.nonzero(g == j)[0] for j in
                                                             np.random.default_rng(5).integers(0, 10, 10)])],
                                           b[np.concatenate([np.nonzero(g == j)[0] for j in
                                                             np.random.default_rng(5).integers(0, 10, 10)])],
                                           10.0)[0])
    probe = np.array([[1.0, 0, 0], [0, 0, 5.0]])
    p = c.predictions(probe)
    np.testing.assert_allclose(p, c.coefficients @ probe.T)
    np.testing.assert_allclose(c.predictions(probe[0]), p[:, :1])
    np.testing.assert_allclose(c.std(probe), p.std(axis=0, ddof=1))
    with pytest.raises(ValueError, match=r"^rows have 2 columns, the committee was fitted with 3$"):
        c.predictions(np.ones((1, 2)))


# ---------------------------------------------------------------------------------------------- grade


def _basis(positions, cell, pbc, species):
    pos = np.asarray(positions, float)
    return np.column_stack([np.ones(len(pos)), pos, np.asarray(species, float)])


def _configs(pos_list, species=6):
    return make_configurations([np.asarray(p, float) for p in pos_list], [np.full(len(p), species) for p in pos_list])


TRI = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])


def test_basis_function_and_rows():
    assert basis_function(_basis) is _basis

    class FakeMTP:
        site_basis = None

        def __call__(self, *args):
            raise AssertionError("an MTP is not called directly")

    fake = FakeMTP()  # callable, but an MTP-like model (it has site_basis): its rows come from per_atom_basis
    assert basis_function(fake) is not fake
    ds = _configs([TRI, TRI * 2])
    r, rc, ra = configuration_rows(_basis, ds)
    assert r.shape == (10, 5) and rc.tolist() == [0] * 5 + [1] * 5 and ra.tolist() == [0, 1, 2, 3, 4] * 2
    assert rc.dtype == np.int64 and ra.dtype == np.int64 and r.flags.c_contiguous
    rcfg, rcc, rac = configuration_rows(_basis, ds, "config")
    np.testing.assert_allclose(rcfg, [_basis(TRI, 0, 0, [6] * 5).sum(0), _basis(TRI * 2, 0, 0, [6] * 5).sum(0)])
    assert rcc.tolist() == [0, 1] and rac.tolist() == [-1, -1]
    with pytest.raises(ValueError, match=r"^mode must be 'atom' or 'config', got 'graph'$"):
        configuration_rows(_basis, ds, "graph")
    with pytest.raises(ValueError, match=r"^the basis model returned shape \(4, 5\) for config 0 with 5 atoms; "
                                         r"expected \(n_atoms, n_basis\)$"):
        configuration_rows(lambda p, c, b, s: _basis(p, c, b, s)[:4], ds)
    with pytest.raises(ValueError, match=r"returned shape \(5,\)"):
        configuration_rows(lambda p, c, b, s: np.ones(len(p)), ds)
    with pytest.raises(ValueError, match=r"^the configurations dataset is empty$"):
        configuration_rows(_basis, ds.isel(config=[]))


def test_build_update_and_grade_configurations():
    train = _configs([TRI, TRI * 1.5 + 0.2, TRI[::-1] * 0.7])
    active = build_active_set(_basis, train, config_ids=[10, 20, 30])
    assert set(active.config_id.tolist()) <= {10, 20, 30, -1} and active.mode == "atom"
    assert set(active.atom_index[active.config_id >= 0].tolist()) <= set(range(5))
    default = build_active_set(_basis, train)
    assert set(default.config_id.tolist()) <= {0, 1, 2, -1}
    cfg = build_active_set(_basis, _configs([TRI * (1 + 0.1 * k) + 0.05 * k ** 2 for k in range(8)]), mode="config")
    assert cfg.mode == "config" and set(cfg.atom_index.tolist()) == {-1}
    strict = build_active_set(_basis, train, tol=1e9)
    assert strict.n_swaps == 0
    far = _configs([TRI * 4.0, TRI])
    g = configuration_grades(_basis, active, far)
    r, rc, _ = configuration_rows(_basis, far)
    np.testing.assert_allclose(g, active.config_grades(r, rc, 2))
    assert g[0] > 2 and g.shape == (2,)
    updated = active.copy()
    n = update_active_set(updated, _basis, far.isel(config=[0]), config_ids=[99])
    assert n > 0 and 99 in updated.config_id.tolist() and updated.n_swaps == active.n_swaps + n
    assert configuration_grades(_basis, updated, far)[0] <= 1 + 1e-3
    assert update_active_set(active.copy(), _basis, far.isel(config=[0]), [99], tol=1e9) == 0
    with pytest.raises(ValueError, match=r"^config_ids needs one id per configuration \(2\), got \(1,\)$"):
        update_active_set(active.copy(), _basis, far, [1])
    cfg_updated = cfg.copy()
    update_active_set(cfg_updated, _basis, _configs([TRI * 5.0]), [7])
    assert 7 in cfg_updated.config_id.tolist() and set(cfg_updated.atom_index.tolist()) == {-1}


def test_grade_monitor_arguments_and_modes():
    seen = {}

    def spy(positions, cell, pbc, species):
        seen.update(positions=positions, cell=cell, pbc=pbc, species=species)
        return _basis(positions, cell, pbc, species)

    train = _configs([TRI, TRI * 1.5 + 0.2, TRI[::-1] * 0.7])
    active = build_active_set(_basis, train)
    mon = grade_monitor(spy, active, [6] * 5)
    value = mon(TRI * 4.0)
    assert type(value) is float
    assert value == pytest.approx(configuration_grades(_basis, active, _configs([TRI * 4.0]))[0])
    assert seen["species"].dtype == np.int32 and seen["species"].tolist() == [6] * 5
    np.testing.assert_array_equal(seen["cell"], np.zeros((3, 3)))
    assert seen["pbc"].dtype == bool and seen["pbc"].tolist() == [False] * 3
    assert seen["positions"].dtype == np.float64
    grade_monitor(spy, active, [[6, 6, 6, 6, 6]], cell=np.eye(3).ravel() * 9, pbc=(1, 0, 1))(TRI)
    np.testing.assert_array_equal(seen["cell"], np.eye(3) * 9)
    assert seen["pbc"].tolist() == [True, False, True] and seen["cell"].dtype == np.float64
    # non-finite rows: γ = inf
    assert grade_monitor(lambda p, c, b, s: np.full((len(p), 5), np.nan), active, [6] * 5)(TRI) == np.inf
    # config mode: the sum of the atoms' rows
    cfg = build_active_set(_basis, _configs([TRI * (1 + 0.1 * k) + 0.05 * k ** 2 for k in range(8)]), mode="config")
    got = grade_monitor(_basis, cfg, [6] * 5)(TRI * 3.0)
    assert got == pytest.approx(configuration_grades(_basis, cfg, _configs([TRI * 3.0]))[0])
    assert got == pytest.approx(cfg.grades(_basis(TRI * 3.0, 0, 0, [6] * 5).sum(axis=0))[0])


# ------------------------------------------------------------------------------------- second round


def test_basis_function_of_an_mtp_uses_cell_pbc_and_species_columns(shared_data):
    from hmc_core.mtp import per_atom_basis, read_mtp

    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[18])
    rows_of = basis_function(mtp)
    pos = np.array([[0.0, 0.0, 0.0], [3.7, 0.0, 0.0], [0.0, 3.7, 0.0], [1.9, 1.9, 3.5]])
    cell, pbc, species = np.eye(3) * 7.5, np.array([True, True, True]), np.full(4, 18)
    got = rows_of(pos, cell, pbc, species)
    np.testing.assert_array_equal(got, per_atom_basis(mtp, pos, cell, pbc, species, include_species=True))
    assert not np.allclose(got, per_atom_basis(mtp, pos, np.zeros((3, 3)), np.zeros(3, bool), species,
                                               include_species=True))  # the cell matters here
    assert got.shape[1] == per_atom_basis(mtp, pos, cell, pbc, species).shape[1] + 1  # the species column


def test_build_and_update_in_config_mode_use_summed_rows():
    train = _configs([TRI * (1 + 0.1 * k) + 0.05 * k ** 2 for k in range(8)])
    cfg = build_active_set(_basis, train, mode="config")
    summed, _, _ = configuration_rows(_basis, train, "config")
    for slot in np.flatnonzero(cfg.config_id >= 0):
        np.testing.assert_allclose(cfg.basis[slot], summed[cfg.config_id[slot]])
    moved = TRI + np.array([3.0, -2.0, 0.5])  # a direction the training sums do not span
    update_active_set(cfg, _basis, _configs([moved]), [42])
    slot = cfg.config_id.tolist().index(42)
    np.testing.assert_allclose(cfg.basis[slot], _basis(moved, 0, 0, [6] * 5).sum(axis=0))
    # atom mode: swapped-in rows keep their atom index
    atoms = build_active_set(_basis, _configs([TRI, TRI * 1.5 + 0.2]))
    update_active_set(atoms, _basis, _configs([TRI * 6.0]), [50])
    got = [a for c, a in zip(atoms.config_id.tolist(), atoms.atom_index.tolist(), strict=True) if c == 50]
    assert got and all(0 <= a < 5 for a in got)
    for slot in np.flatnonzero(atoms.config_id == 50):
        np.testing.assert_allclose(atoms.basis[slot], _basis(TRI * 6.0, 0, 0, [6] * 5)[atoms.atom_index[slot]])


def test_more_argument_forms_and_defaults():
    assert _ids(4, None, 2)[0].tolist() == [4, 4]
    e = ActiveSet.empty(2, scale=[0.5, 2.0])
    np.testing.assert_allclose(np.diag(e.basis), [0.5e-5, 2e-5])
    empty_rows = ActiveSet.from_basis(np.zeros((0, 3)), [])
    assert empty_rows.n_placeholders == 3 and empty_rows.n_swaps == 0
    np.testing.assert_allclose(np.diag(empty_rows.basis), [1e-5] * 3)
    single = ActiveSet.from_basis([[2.0, 0.5, 0.25]], [7], mode="config", eps=1e-3)
    placeholders = np.flatnonzero(single.config_id < 0)
    np.testing.assert_allclose(np.abs(single.basis[placeholders, placeholders]),
                               1e-3 * np.array([2.0, 0.5, 0.25])[placeholders])
    grown = ActiveSet.from_basis([[1.0, 0.0], [0.0, 1.0], [1.01, 0.0]], [0, 1, 2], mode="config")
    assert 2 in grown.config_id.tolist()  # default tol 1e-3: a growth by 1.01 is a swap
    a = ActiveSet.from_basis(np.eye(3), np.arange(3), mode="config")
    for call in (lambda: a.select(np.ones((1, 2)), [0], 1, 1), lambda: a.update(np.ones((1, 2)), [0])):
        with pytest.raises(ValueError, match="basis functions but the active set has 3"):
            call()
    two_d = a.select([[5.0, 0, 0], [0, 5.0, 0]], [0, 1], 2, 2, candidates=[[False, True]])
    assert two_d.chosen.tolist() == [1]
    x, y = _bayes_data()
    model = BayesianLinearModel.fit(x, y, 1.0, 1.0)
    for call in (model.epistemic_std, model.conditioned_on, lambda r: model.greedy_select(r, 1)):
        with pytest.raises(ValueError, match=r"rows must have shape \(n, 3\)"):
            call(np.ones((1, 2)))
    ints = BayesianLinearModel.fit(np.array([[1, 2, 3], [2, 1, 0], [0, 1, 1], [3, 0, 2]]), [1, 2, 3, 4], 1.0, 1.0)
    assert ints.coef.dtype == np.float64 and ints.covariance.dtype == np.float64


def test_column_vectors_are_flattened():
    x, y = _bayes_data()
    np.testing.assert_allclose(BayesianLinearModel.fit(x, y[:, None], 1.0, 1.0).coef,
                               BayesianLinearModel.fit(x, y, 1.0, 1.0).coef)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 2))
    b = a @ [1.0, -1.0]
    g = np.repeat(np.arange(4), 3)
    np.testing.assert_array_equal(Committee.fit(a, b[:, None], g[:, None], n_members=2).coefficients,
                                  Committee.fit(a, b, g, n_members=2).coefficients)
    active = build_active_set(_basis, _configs([TRI, TRI * 1.5 + 0.2]))
    assert update_active_set(active, _basis, _configs([TRI * 6.0, TRI * 7.0]), [[60], [61]]) > 0
    assert set(active.config_id.tolist()) & {60, 61}
