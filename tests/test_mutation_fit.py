"""Fit stage (tasks/fit.py) details that mutation testing (``make mutation``, bench/mutation.py) found
untested: defaults of :func:`fit_potential`, refining a start potential, the report, the settings model and the
stage function's use of its settings and seed. Small argon LJ cells keep it quick."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from hmc_core.configurations import make_configurations
from hmc_core.mtp import read_mtp
from hmc_core.mtp.fit import FitSettings
from hmc_core.potentials import ForceField, LennardJones
from hmc_core.uncertainty import build_active_set
from tasks.fit import FitResult, MTPSettings, fit_potential, fit_task, run_fit, smallest_distance

LJ = LennardJones(species=[18], epsilon=0.0103, sigma=3.405, cutoff=5.0, shift=True, units="metal")


def lj_labels(n_configs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pos, spc, cells, energy, forces = [], [], [], [], []
    for _ in range(n_configs):
        a = bulk("Ar", "fcc", a=5.26 * (1 + rng.uniform(-0.03, 0.05)), cubic=True)
        a = a.repeat((2, 1, 1))
        a.positions += rng.normal(0, 0.12, a.positions.shape)
        ff = ForceField(LJ, a.numbers, a.cell[:], (True,) * 3, skin=0.0)
        e, f = ff(a.positions.copy())
        pos.append(a.positions)
        spc.append(a.numbers)
        cells.append(a.cell[:])
        energy.append(e)
        forces.append(f)
    ds = make_configurations(pos, spc, cells, [(1, 1, 1)] * n_configs, energy=energy, forces=forces)
    ds["status"] = ("config", np.array(["ok"] * n_configs, dtype=object))
    return ds


@pytest.fixture(scope="module")
def labels():
    ds = lj_labels(8)
    ds["status"].values[7] = "failed"
    return ds


def test_smallest_distance_over_selected_configurations():
    a = np.array([[0.0, 0.0, 0.0], [2.1, 0.0, 0.0], [0.0, 3.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0], [1.7, 0.0, 0.0], [0.0, 4.0, 0.0]])
    ds = make_configurations([a, b, a * 10], [[18] * 3] * 3)
    assert smallest_distance(ds, [0]) == pytest.approx(2.1)
    assert smallest_distance(ds, [0, 1]) == pytest.approx(1.7)
    assert smallest_distance(ds, np.array([1, 0])) == pytest.approx(1.7)
    assert smallest_distance(ds, [2]) == np.inf  # 21 Å apart: beyond the default 5 Å cutoff
    assert smallest_distance(ds, [2], cutoff=25.0) == pytest.approx(21.0)
    assert smallest_distance(ds, [0, 2], cutoff=1.0) == np.inf
    assert smallest_distance(ds, []) == np.inf
    periodic = make_configurations([np.array([[0.1, 0, 0], [3.9, 0, 0]])], [[18, 18]], [np.eye(3) * 4.0],
                                   [(1, 1, 1)])
    assert smallest_distance(periodic, [0]) == pytest.approx(0.2)  # through the periodic boundary


def test_fit_potential_defaults_and_report(labels, tmp_path):
    used = np.arange(7)
    mtp, report = fit_potential(labels, level=2, settings=FitSettings(max_iter=2), out=tmp_path / "p.mtp")
    expected_min = round(0.95 * min(smallest_distance(labels, used, 5.0), 5.0), 3)
    assert mtp.min_dist == expected_min == report["min_dist"]
    assert mtp.max_dist == 5.0 == report["max_dist"]
    assert mtp.radial_basis_size == 8 and mtp.species == (18,)
    assert report["n_configs_used"] == 7 and report["n_configs_dropped"] == 1
    assert report["n_atoms_used"] == 7 * 8
    assert report["level"] == 2 and report["n_basis"] == mtp.n_basis
    assert report["n_parameters"] == mtp.radial_coeffs.size + mtp.n_species + mtp.n_basis
    assert report["species"] == [18]
    assert report["full_fit"] is True and report["optimizer"] and report["fit_seconds"] > 0
    assert report["train_errors"]["all"]["n_configs"] == 7
    assert report["path"] == str(tmp_path / "p.mtp")
    back = read_mtp(tmp_path / "p.mtp", species=[18])
    np.testing.assert_allclose(back.moment_coeffs, mtp.moment_coeffs)
    assert set(report) == {"n_configs_used", "n_configs_dropped", "n_atoms_used", "level", "n_basis",
                           "n_parameters", "species", "min_dist", "max_dist", "full_fit", "optimizer",
                           "fit_seconds", "train_errors", "path"}


def test_fit_potential_level_default_and_seed(labels):
    mtp, report = fit_potential(labels, full=False)
    assert report["level"] == 10 and mtp.basis.level == 10 and "path" not in report
    assert report["full_fit"] is False and report["optimizer"] == {}
    a, _ = fit_potential(labels, level=2, full=False, seed=0)
    b, _ = fit_potential(labels, level=2, full=False, seed=1)
    c, _ = fit_potential(labels, level=2, full=False)
    assert not np.array_equal(a.radial_coeffs, b.radial_coeffs)
    assert np.array_equal(a.radial_coeffs, c.radial_coeffs)  # default seed 0


def test_fit_potential_explicit_arguments(labels):
    mtp, report = fit_potential(labels, level=2, species=[18, 36], min_dist=2.0, max_dist=4.5, radial_basis_size=5,
                                full=False)
    assert mtp.species == (18, 36) and report["species"] == [18, 36]
    assert (mtp.min_dist, mtp.max_dist, mtp.radial_basis_size) == (2.0, 4.5, 5)
    assert mtp.radial_coeffs.shape[-1] == 5
    expected = round(0.95 * min(smallest_distance(labels, np.arange(7), 4.5), 4.5), 3)
    assert fit_potential(labels, level=2, max_dist=4.5, full=False)[0].min_dist == expected
    no_opt, rep = fit_potential(labels, level=2, settings=FitSettings(max_iter=0))
    assert rep["full_fit"] is False and rep["optimizer"] == {}


def test_fit_potential_refines_a_start_potential(labels):
    start, _ = fit_potential(labels, level=2, min_dist=2.2, max_dist=4.8, radial_basis_size=6, full=False, seed=3)
    before = start.radial_coeffs.copy()
    refined, report = fit_potential(labels, level=4, min_dist=1.0, max_dist=5.0, start=start,
                                    settings=FitSettings(max_iter=2))
    assert refined is not start and np.array_equal(start.radial_coeffs, before)  # the start is not modified
    assert (refined.basis.level, refined.min_dist, refined.max_dist, refined.radial_basis_size) == (2, 2.2, 4.8, 6)
    assert report["level"] == 2 and report["full_fit"] is True
    other = labels.copy(deep=True)
    other["species"].values[0, 0] = 36
    with pytest.raises(ValueError, match=r"^the starting potential covers species \[18\] but the labels also contain "
                                         r"\[36\]; start a new potential \(start=None\) with all species$"):
        fit_potential(other, level=2, start=start)


def test_fit_potential_needs_usable_labels(labels):
    bad = labels.copy(deep=True)
    bad["status"].values[:] = "failed"
    with pytest.raises(ValueError, match=r"^no usable configuration \(finite energy and status 'ok'\) to fit$"):
        fit_potential(bad, level=2)


def test_settings_model_and_loss():
    s = MTPSettings()
    assert (s.level, s.cutoff, s.min_distance, s.radial_basis_size) == (8, 4.0, None, 8)
    assert (s.energy_weight, s.force_weight, s.regularization, s.full_fit, s.max_iter) == (1.0, 0.01, 1e-10, True,
                                                                                              200)
    loss = MTPSettings(energy_weight=2.0, force_weight=0.5, regularization=1e-6, max_iter=7).loss()
    assert loss == FitSettings(energy_weight=2.0, force_weight=0.5, l2=1e-6, max_iter=7)
    MTPSettings(level=2, cutoff=20.0, radial_basis_size=2, max_iter=0, energy_weight=0.0)
    MTPSettings(level=28, radial_basis_size=32, max_iter=100_000, force_weight=0.0)
    with pytest.raises(ValueError, match=r"MTP levels are even numbers 2…28 \(got 7\)"):
        MTPSettings(level=7)
    with pytest.raises(ValueError, match=r"min_distance \(4.0 Å\) must be smaller than cutoff \(4.0 Å\)"):
        MTPSettings(min_distance=4.0, cutoff=4.0)
    MTPSettings(min_distance=3.99, cutoff=4.0)
    with pytest.raises(ValueError, match="energy_weight and force_weight cannot both be 0"):
        MTPSettings(energy_weight=0.0, force_weight=0.0)
    for bad in ({"level": 0}, {"level": 30}, {"cutoff": 0.0}, {"cutoff": 20.5}, {"min_distance": 0.0},
                {"radial_basis_size": 1}, {"radial_basis_size": 33}, {"energy_weight": -1.0},
                {"force_weight": float("nan")}, {"regularization": -1e-3}, {"max_iter": -1}, {"max_iter": 100_001},
                {"extra": 1}):
        with pytest.raises(ValueError):
            MTPSettings(**bad)
    with pytest.raises(ValueError):
        s.level = 10  # frozen


def test_run_fit_uses_its_settings_and_seed(labels):
    settings = MTPSettings(level=2, cutoff=4.5, min_distance=2.1, radial_basis_size=5, energy_weight=1.0,
                           force_weight=0.1, regularization=1e-8, full_fit=True, max_iter=2)
    ss = np.random.SeedSequence(42)
    seed = int(ss.generate_state(1)[0])
    result = run_fit(labels, settings, ss)
    assert isinstance(result, FitResult)
    direct, report = fit_potential(labels, level=2, min_dist=2.1, max_dist=4.5, radial_basis_size=5,
                                   settings=settings.loss(), full=True, seed=seed)
    np.testing.assert_array_equal(result.potential.radial_coeffs, direct.radial_coeffs)
    np.testing.assert_array_equal(result.potential.moment_coeffs, direct.moment_coeffs)
    assert result.report["full_fit"] is True and result.report["n_configs_used"] == 7
    assert (result.potential.min_dist, result.potential.max_dist, result.potential.radial_basis_size) == (2.1, 4.5, 5)
    active = build_active_set(direct, labels.isel(config=np.arange(7)), mode="atom")
    assert result.active_set.mode == "atom"
    np.testing.assert_allclose(result.active_set.basis, active.basis)
    np.testing.assert_array_equal(result.active_set.config_id, active.config_id)
    linear = run_fit(labels, MTPSettings(level=2, cutoff=4.5, min_distance=2.1, full_fit=False), 5)
    assert linear.report["full_fit"] is False
    other = run_fit(labels, MTPSettings(level=2, cutoff=4.5, min_distance=2.1, full_fit=False), 6)
    assert not np.array_equal(linear.potential.radial_coeffs, other.potential.radial_coeffs)
    via_task = fit_task.fn(labels, MTPSettings(level=2, cutoff=4.5, min_distance=2.1, full_fit=False), 5)
    np.testing.assert_array_equal(via_task.potential.moment_coeffs, linear.potential.moment_coeffs)


def test_default_cutoff_and_quiet_full_fit(labels, capsys):
    pair = make_configurations([np.array([[0.0, 0.0, 0.0], [5.5, 0.0, 0.0]])], [[18, 18]])
    assert smallest_distance(pair, [0]) == np.inf  # 5.5 Å is beyond the default 5 Å cutoff
    assert smallest_distance(pair, [0], cutoff=6.0) == pytest.approx(5.5)
    capsys.readouterr()
    _, report = fit_potential(labels, level=2, settings=FitSettings(max_iter=1))
    assert report["full_fit"] is True and report["optimizer"]  # one iteration is a full fit
    assert capsys.readouterr().out == ""  # verbose defaults to False


def test_run_fit_limits_blas_threads_to_one(labels, monkeypatch):
    import threadpoolctl

    import tasks.fit as fit_module

    seen = []
    real = fit_module.fit_potential

    def spy(*args, **kwargs):
        seen.append({d["num_threads"] for d in threadpoolctl.threadpool_info()})
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "fit_potential", spy)
    with threadpoolctl.threadpool_limits(3):
        run_fit(labels, MTPSettings(level=2, cutoff=4.5, min_distance=2.1, full_fit=False), 0)
    assert seen == [{1}]


def test_fit_potential_passes_its_settings_and_verbosity(labels, capsys):
    linear_default, _ = fit_potential(labels, level=2, full=False)
    linear_ridge, _ = fit_potential(labels, level=2, full=False, settings=FitSettings(l2=10.0))
    assert not np.allclose(linear_default.moment_coeffs, linear_ridge.moment_coeffs)
    capsys.readouterr()
    _, report = fit_potential(labels, level=2, settings=FitSettings(max_iter=2), verbose=True)
    assert report["optimizer"]["iterations"] <= 2  # the given settings, not the default 200 iterations
    assert "full fit: evaluation" in capsys.readouterr().out
    assert 0 < report["fit_seconds"] < 600


def test_default_min_dist_from_the_data_beyond_five_angstrom():
    """min_dist = 0.95 × the smallest distance (rounded to 1 mÅ) searched within max_dist, not within 5 Å."""
    dimers = [np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]]) for d in (5.5, 5.7, 5.9)]
    ds = make_configurations(dimers, [[18, 18]] * 3, energy=[-0.01, -0.008, -0.005],
                             forces=[np.zeros((2, 3))] * 3)
    mtp, _ = fit_potential(ds, level=2, max_dist=6.0, full=False)
    assert mtp.min_dist == round(0.95 * 5.5, 3) == 5.225
    close = [np.array([[0.0, 0.0, 0.0], [d, 0.0, 0.0]]) for d in (2.1234, 2.5, 3.0)]
    ds2 = make_configurations(close, [[18, 18]] * 3, energy=[0.1, 0.0, -0.01], forces=[np.zeros((2, 3))] * 3)
    assert fit_potential(ds2, level=2, full=False)[0].min_dist == 2.017  # 0.95 × 2.1234 = 2.01723
