"""MTP fitting: analytic radial gradient vs finite differences, linear and full fits of Lennard-Jones data
(a known analytic target), and the fit stage (plain function and Prefect task)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from hmc_core.configurations import make_configurations
from hmc_core.mtp import MTP
from hmc_core.mtp.fit import FitSettings, TrainingData, error_report, fit_full, fit_linear, loss_and_radial_gradient
from hmc_core.mtp.levels import generate_basis
from hmc_core.potentials import ForceField, LennardJones
from tasks.fit import MTPSettings, fit_potential, fit_task

# Argon-like Lennard-Jones (ε = 0.0103 eV, σ = 3.405 Å), shifted at 5 Å = the MTP cutoff.
LJ = LennardJones(species=[18], epsilon=0.0103, sigma=3.405, cutoff=5.0, shift=True, units="metal")


def lj_data(n_configs: int, seed: int):
    """Rattled, strained 32-atom fcc argon cells labelled with LJ energy, forces and stress."""
    rng = np.random.default_rng(seed)
    pos, spc, cells, energy, forces, stress = [], [], [], [], [], []
    for _ in range(n_configs):
        a = bulk("Ar", "fcc", a=5.26 * (1 + rng.uniform(-0.03, 0.05)), cubic=True).repeat(2)
        a.positions += rng.normal(0, 0.12, a.positions.shape)
        ff = ForceField(LJ, a.numbers, a.cell[:], (True,) * 3, skin=0.0)
        e, f = ff(a.positions.copy())
        s = -0.5 * (ff.virial + ff.virial.T) / a.get_volume()
        pos.append(a.positions)
        spc.append(a.numbers)
        cells.append(a.cell[:])
        energy.append(e)
        forces.append(f)
        stress.append(s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]])
    return make_configurations(pos, spc, cells, [(1, 1, 1)] * n_configs, energy=energy, forces=forces,
                               stress=stress)


@pytest.fixture(scope="module")
def lj_sets():
    return lj_data(14, 0), lj_data(6, 1)


def test_radial_gradient_matches_finite_differences():
    """Two species, periodic and open, energy + force + stress terms: analytic ∂L/∂c vs central differences."""
    rng = np.random.default_rng(3)
    pos, spc, cells, pbcs, e, f, s = [], [], [], [], [], [], []
    for k in range(3):
        a = bulk("Mo", "bcc", a=3.2, cubic=True).repeat(2)
        a.rattle(0.15, seed=k)
        z = np.where(np.arange(len(a)) % 3 == k % 3, 3, 42)
        pos.append(a.positions if k < 2 else a.positions[:7] + 10.0)
        spc.append(z if k < 2 else z[:7])
        cells.append(a.cell[:] if k < 2 else np.zeros((3, 3)))
        pbcs.append((k < 2,) * 3)
        n = len(spc[-1])
        e.append(rng.normal() * 3)
        f.append(rng.normal(size=(n, 3)))
        s.append(rng.normal(size=6) * 0.01 if k < 2 else None)
    ds = make_configurations(pos, spc, cells, pbcs, energy=e, forces=f, stress=s)
    mtp = MTP.untrained(generate_basis(8), [42, 3], min_dist=1.5, max_dist=4.5, radial_basis_size=6, seed=1)
    settings = FitSettings(energy_weight=1.0, force_weight=0.3, stress_weight=0.5, l2=1e-3)
    data = TrainingData(mtp, ds)
    loss, grad, scale = loss_and_radial_gradient(mtp, data, settings)
    h = 1e-6
    for index in [(0, 0, 0, 0), (0, 1, 1, 3), (1, 0, 0, 5), (1, 1, 1, 2), (0, 1, 0, 1)]:
        vals = []
        for sign in (1, -1):
            m = mtp.copy()
            m.radial_coeffs[index] += sign * h
            vals.append(loss_and_radial_gradient(m, data, settings, scale)[0])
        fd = (vals[0] - vals[1]) / (2 * h)
        assert abs(fd - grad[index]) <= 1e-5 * max(1.0, abs(fd)), (index, fd, grad[index])


def test_linear_fit_of_lennard_jones(lj_sets):
    """Level 10, radial coefficients random: test-set RMSE < 0.3 meV/atom and < 0.01 eV/Å
    (LJ forces have a spread of 0.06 eV/Å here; measured 0.11 meV/atom and 0.0064 eV/Å)."""
    train, test = lj_sets
    mtp = MTP.untrained(generate_basis(10), [18], min_dist=2.5, max_dist=5.0, seed=0)
    fitted = fit_linear(mtp, train, FitSettings(energy_weight=1.0, force_weight=0.01))
    rep = error_report(fitted, test)["all"]
    assert rep["energy_mev_per_atom"]["rmse"] < 0.3
    assert rep["forces_ev_per_A"]["rmse"] < 0.01
    assert rep["stress_gpa"]["rmse"] < 0.03


def test_full_fit_improves_lennard_jones(lj_sets):
    """Level 6: optimising the radial functions cuts the loss ≥ 10× and the test force RMSE below 0.006 eV/Å
    (the linear fit alone gives ≈ 0.013 eV/Å); the result is deterministic, threads or not."""
    train, test = lj_sets
    mtp = MTP.untrained(generate_basis(6), [18], min_dist=2.5, max_dist=5.0, seed=0)
    settings = FitSettings(max_iter=25)
    data = TrainingData(mtp, train)
    fitted, info = fit_full(fit_linear(mtp, data, settings), data, settings)
    assert info["loss_final"] < 0.1 * info["loss_initial"]
    assert error_report(fitted, test)["all"]["forces_ev_per_A"]["rmse"] < 0.006
    threaded = FitSettings(max_iter=25, n_threads=2)
    again, _ = fit_full(fit_linear(mtp, data, threaded), data, threaded)
    assert np.array_equal(again.radial_coeffs, fitted.radial_coeffs)


def test_fit_stage_filters_failed_labels(lj_sets, tmp_path):
    train, _ = lj_sets
    labels = train.copy(deep=True)
    labels["status"] = ("config", np.array(["ok"] * 12 + ["failed", "ok"]))
    labels["energy"].values[13] = np.nan
    mtp, report = fit_potential(labels, level=6, full=False, out=tmp_path / "p.mtp")
    assert report["n_configs_used"] == 12 and report["n_configs_dropped"] == 2
    assert report["train_errors"]["all"]["n_configs"] == 12
    assert mtp.species == (18,) and 2.0 < mtp.min_dist < 3.5
    assert (tmp_path / "p.mtp").exists()
    settings = MTPSettings(level=6, full_fit=False, cutoff=5.0, min_distance=mtp.min_dist, regularization=1e-12)
    via_task = fit_task.fn(labels, settings, 0)
    assert np.array_equal(via_task.potential.moment_coeffs, mtp.moment_coeffs)
    assert via_task.report["n_configs_used"] == 12
    assert via_task.active_set.mode == "atom" and via_task.active_set.inverse.shape[0] == mtp.n_basis + mtp.n_species
    with pytest.raises(ValueError, match="no usable configuration"):
        bad = labels.copy(deep=True)
        bad["status"].values[:] = "failed"
        fit_potential(bad, level=6)


def test_ridge_solvers_agree():
    from hmc_core.mtp.fit import solve_ridge

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 30)) * np.logspace(0, 4, 30)  # badly scaled columns
    b = rng.normal(size=400)
    ref, _ = solve_ridge(a, b, 1e-6, solver="lstsq")
    for solver in ("cholesky", "qr"):
        theta, _ = solve_ridge(a, b, 1e-6, solver=solver)
        np.testing.assert_allclose(theta, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_ridge(a, b, 1e-6, solver="svd")
