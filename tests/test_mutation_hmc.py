"""HMC (hmc_core/hmc.py) details that mutation testing (``make mutation``, bench/mutation.py) found untested:
every settings check and default, the dual-averaging formula, masses, the momentum draw and refresh, jitter,
the unadjusted variant, warm-up bookkeeping, saved frames, pressure, early stops and the dataset layout.
Harmonic wells in reduced units keep it fast."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hmc_core.hmc import (
    DualAveraging,
    HMCConfig,
    HMCSampler,
    default_masses,
    expand_inverse_mass,
    run_chain,
    run_chains,
    samples_to_configurations,
)
from hmc_core.potentials import ForceField, HarmonicWells
from hmc_core.units import get_units


def wells(n=3, k=1.0):
    return HarmonicWells(np.zeros((n, 3)), k)


def sampler(n=3, masses=None, **cfg):
    kw = {"temperature": 1.0, "dt": 0.2, "n_steps": 5, "units": "lj", **cfg}
    return HMCSampler(ForceField(wells(n), [1] * n), HMCConfig(**kw), masses)


def test_config_defaults_and_every_check():
    c = HMCConfig(temperature=300.0, dt=1.0)
    assert (c.n_steps, c.integrator, c.units, c.jitter_steps, c.jitter_dt, c.persistence, c.n_warmup,
            c.adapt_step_size, c.target_accept, c.save_every, c.skin, c.metropolis) == (
        10, "verlet", "metal", 0.0, 0.0, 0.0, 0, True, 0.7, 1, 0.3, True)
    # boundaries that are allowed
    HMCConfig(temperature=1e-9, dt=1e-9, n_steps=1, jitter_steps=0.0, jitter_dt=0.0, persistence=0.0, n_warmup=0,
              target_accept=0.01, save_every=1, skin=0.0)
    HMCConfig(temperature=1.0, dt=1.0, jitter_steps=0.99, jitter_dt=0.99, persistence=0.99, target_accept=0.99)
    bad = [("temperature", 0.0, "must be > 0"), ("temperature", float("inf"), "must be > 0"),
           ("dt", 0.0, "must be > 0"), ("dt", float("nan"), "must be > 0"), ("n_steps", 0, "must be ≥ 1"),
           ("jitter_steps", 1.0, r"must be in \[0, 1\)"), ("jitter_steps", -0.1, r"must be in \[0, 1\)"),
           ("jitter_dt", 1.0, r"must be in \[0, 1\)"), ("jitter_dt", -0.1, r"must be in \[0, 1\)"),
           ("persistence", 1.0, r"must be in \[0, 1\)"), ("persistence", -0.5, r"must be in \[0, 1\)"),
           ("n_warmup", -1, "must be ≥ 0"), ("target_accept", 0.0, r"must be in \(0, 1\)"),
           ("target_accept", 1.0, r"must be in \(0, 1\)"), ("save_every", 0, "must be ≥ 1"),
           ("skin", -0.1, "must be ≥ 0"), ("skin", float("inf"), "must be ≥ 0")]
    for name, value, why in bad:
        kw = {"temperature": 1.0, "dt": 1.0, name: value}
        with pytest.raises(ValueError, match=rf"^HMCConfig\.{name} = {value!r} {why}$"):
            HMCConfig(**kw)
    assert c.kT == pytest.approx(300.0 * get_units("metal").kB)
    assert c.dt_internal == pytest.approx(get_units("metal").time_to_internal)


def test_dual_averaging_formula():
    d = DualAveraging(log_dt=math.log(0.1), mu=math.log(1.0))
    assert (d.h_bar, d.log_dt_bar, d.t, d.gamma, d.t0, d.kappa) == (0.0, 0.0, 0, 0.05, 10.0, 0.75)
    h_bar, log_dt_bar = 0.0, 0.0
    for t, a in enumerate([0.2, 0.9, 0.5, 1.0], start=1):
        got = d.update(a, 0.7)
        w = 1.0 / (t + 10.0)
        h_bar = (1 - w) * h_bar + w * (0.7 - a)
        log_dt = math.log(1.0) - math.sqrt(t) / 0.05 * h_bar
        eta = t ** -0.75
        log_dt_bar = eta * log_dt + (1 - eta) * log_dt_bar
        assert d.t == t
        assert got == pytest.approx(math.exp(log_dt), rel=1e-12)
        assert d.log_dt == pytest.approx(log_dt, rel=1e-12) and d.h_bar == pytest.approx(h_bar, rel=1e-12)
        assert d.log_dt_bar == pytest.approx(log_dt_bar, rel=1e-12)


def test_masses():
    inv = expand_inverse_mass([2.0, 4.0], 2)
    np.testing.assert_array_equal(inv, [[0.5] * 3, [0.25] * 3])
    assert inv.flags.c_contiguous and inv.dtype == np.float64
    per_dof = np.array([[1.0, 2.0, 4.0], [8.0, 1.0, 1.0]])
    np.testing.assert_array_equal(expand_inverse_mass(per_dof, 2), 1.0 / per_dof)
    with pytest.raises(ValueError, match=r"^masses must have shape \(2,\) or \(2, 3\), got \(3,\)$"):
        expand_inverse_mass([1.0, 1.0, 1.0], 2)
    for bad in ([1.0, 0.0], [1.0, -1.0], [1.0, np.nan], [1.0, np.inf]):
        with pytest.raises(ValueError, match=r"^masses must be positive and finite$"):
            expand_inverse_mass(bad, 2)
    np.testing.assert_array_equal(default_masses(np.array([1, 6, 18]), "lj"), [1.0, 1.0, 1.0])
    from ase.data import atomic_masses

    np.testing.assert_array_equal(default_masses(np.array([1, 6, 18]), "metal"), atomic_masses[[1, 6, 18]])
    s = HMCSampler(ForceField(wells(2), [1, 8]), HMCConfig(temperature=300.0, dt=0.5))
    np.testing.assert_allclose(s.mass[:, 0], atomic_masses[[1, 8]])
    np.testing.assert_allclose(s.inv_mass, 1.0 / s.mass)
    custom = sampler(2, masses=[2.0, 3.0])
    np.testing.assert_array_equal(custom.mass, [[2.0] * 3, [3.0] * 3])


def test_init_draws_momenta_and_sets_up_adaptation():
    s = sampler(3, masses=[1.0, 4.0, 9.0], temperature=2.0)
    x = np.arange(9.0).reshape(3, 3) * 0.1
    st = s.init(x, seed=5)
    p = np.random.default_rng(5).standard_normal((3, 3)) * np.sqrt(s.mass * 2.0)
    np.testing.assert_array_equal(st.momenta, p)
    np.testing.assert_array_equal(st.positions, x)
    assert st.positions is not x and st.positions.dtype == np.float64
    assert st.energy == pytest.approx(0.5 * (x ** 2).sum())
    np.testing.assert_allclose(st.forces, -x)
    assert st.dt == 0.2 and st.adaptation is None and st.n_trajectories == 0 and st.n_accepted == 0
    np.testing.assert_array_equal(sampler(3).init(x).momenta, sampler(3).init(x, seed=0).momenta)
    flat = sampler(3).init(x.ravel())
    assert flat.positions.shape == (3, 3)
    adapt = sampler(3, n_warmup=5).init(x).adaptation
    assert adapt.log_dt == pytest.approx(math.log(0.2)) and adapt.mu == pytest.approx(math.log(2.0))
    assert adapt.log_dt_bar == pytest.approx(math.log(0.2))
    assert sampler(3, n_warmup=5, adapt_step_size=False).init(x).adaptation is None
    with pytest.raises(ValueError, match=r"^starting positions contain NaN or inf$"):
        s.init(np.full((3, 3), np.nan))

    class Infinite(HarmonicWells):
        def compute(self, positions, cell, types, nlist):
            e, f, v = super().compute(positions, cell, types, nlist)
            return np.inf, f, v

    bad = HMCSampler(ForceField(Infinite(np.zeros((3, 3))), [1, 1, 1]), HMCConfig(temperature=1.0, dt=0.1,
                                                                                   units="lj"))
    with pytest.raises(ValueError, match=r"^the potential energy of the starting structure is not finite$"):
        bad.init(np.zeros((3, 3)))


def test_refresh_momenta_full_and_partial():
    s = sampler(3, masses=[1.0, 2.0, 3.0], temperature=1.5)
    st = s.init(np.zeros((3, 3)), seed=1)
    rng = np.random.default_rng(7)
    st.rng = np.random.default_rng(7)
    s.refresh_momenta(st)
    np.testing.assert_array_equal(st.momenta, rng.standard_normal((3, 3)) * np.sqrt(s.mass * 1.5))
    g = sampler(3, masses=[1.0, 2.0, 3.0], temperature=1.5, persistence=0.6)
    st = g.init(np.zeros((3, 3)), seed=1)
    old = st.momenta.copy()
    st.rng = np.random.default_rng(7)
    g.refresh_momenta(st)
    xi = np.random.default_rng(7).standard_normal((3, 3)) * np.sqrt(g.mass * 1.5)
    np.testing.assert_allclose(st.momenta, 0.6 * old + 0.8 * xi, rtol=1e-12)


def test_step_bookkeeping_jitter_and_rejection():
    s = sampler(3, n_steps=10, jitter_steps=0.5, jitter_dt=0.5)
    st = s.init(np.ones((3, 3)) * 0.3, seed=2)
    steps, dts = set(), []
    for _ in range(60):
        info = s.step(st)
        steps.add(info.n_steps)
        dts.append(info.dt)
        assert info.force_evaluations == info.n_steps
        assert info.kinetic > 0 and 0.0 <= info.accept_prob <= 1.0
        assert info.accept_prob == pytest.approx(math.exp(min(0.0, -info.delta_h)))
    assert steps == set(range(5, 16))  # round(10 · (1 ± 0.5)), both ends included
    assert min(dts) >= 0.1 and max(dts) <= 0.3 and len(set(dts)) > 30
    assert st.n_trajectories == 60 and 0 < st.n_accepted <= 60
    # no jitter: exactly n_steps and dt
    plain = sampler(3, n_steps=7)
    ps = plain.init(np.ones((3, 3)) * 0.3, seed=2)
    info = plain.step(ps)
    assert info.n_steps == 7 and info.dt == 0.2 and type(info.delta_h) is float and type(info.kinetic) is float
    # a rejected step restores the state and keeps the (refreshed) momenta without persistence
    r = sampler(3, dt=50.0, n_steps=3)  # an absurd dt: always rejected
    rs = r.init(np.ones((3, 3)) * 0.3, seed=3)
    x0, e0 = rs.positions.copy(), rs.energy
    rs.rng = np.random.default_rng(4)
    xi = np.random.default_rng(4).standard_normal((3, 3)) * np.sqrt(r.mass)
    info = r.step(rs)
    assert not info.accepted and rs.n_accepted == 0 and rs.n_trajectories == 1
    assert info.accept_prob == 0.0 and info.delta_h > 1e10
    np.testing.assert_array_equal(rs.positions, x0)
    np.testing.assert_array_equal(rs.momenta, xi)
    assert rs.energy == e0


def test_non_finite_trajectory_is_rejected_with_infinite_delta_h():
    class Cliff(HarmonicWells):
        def compute(self, positions, cell, types, nlist):
            e, f, v = super().compute(positions, cell, types, nlist)
            return (np.nan if np.abs(positions).max() > 2.0 else e), f, v

    s = HMCSampler(ForceField(Cliff(np.zeros((3, 3))), [1, 1, 1]), HMCConfig(temperature=1.0, dt=5.0, n_steps=2,
                                                                               units="lj"))
    st = s.init(np.full((3, 3), 1.9), seed=0)
    info = s.step(st)
    assert not info.accepted and info.accept_prob == 0.0 and info.delta_h == np.inf
    unadjusted = HMCSampler(ForceField(Cliff(np.zeros((3, 3))), [1, 1, 1]),
                            HMCConfig(temperature=1.0, dt=5.0, n_steps=2, units="lj", metropolis=False))
    assert not unadjusted.step(unadjusted.init(np.full((3, 3), 1.9), seed=0)).accepted


def test_rejection_negates_momenta_with_persistence():
    r = sampler(3, dt=50.0, n_steps=3, persistence=0.5)
    rs = r.init(np.ones((3, 3)) * 0.3, seed=3)
    old = rs.momenta.copy()
    rs.rng = np.random.default_rng(4)
    xi = np.random.default_rng(4).standard_normal((3, 3)) * np.sqrt(r.mass)
    refreshed = 0.5 * old + math.sqrt(0.75) * xi
    assert not r.step(rs).accepted
    np.testing.assert_allclose(rs.momenta, -refreshed, rtol=1e-12)


def test_unadjusted_keeps_all_but_diverged_trajectories():
    u = sampler(3, metropolis=False, dt=0.5, n_steps=3)
    st = u.init(np.ones((3, 3)), seed=0)
    infos = [u.step(st) for _ in range(30)]
    assert all(i.accepted for i in infos) and st.n_accepted == 30
    assert any(i.accept_prob < 1.0 for i in infos)  # Metropolis would have rejected some
    blown = sampler(3, metropolis=False, dt=50.0, n_steps=3)
    bs = blown.init(np.ones((3, 3)), seed=0)
    assert not blown.step(bs).accepted


def test_warmup_adapts_then_freezes_and_refreshes():
    s = sampler(3, dt=0.01, n_warmup=20, target_accept=0.6)
    st = s.init(np.ones((3, 3)) * 0.5, seed=1)
    s.warmup(st)
    assert st.n_trajectories == 20 and st.adaptation is None and st.dt > 0.05
    assert st.energy == pytest.approx(0.5 * (st.positions ** 2).sum())
    np.testing.assert_allclose(st.forces, -st.positions)
    fixed = sampler(3, dt=0.01, n_warmup=20, adapt_step_size=False)
    fs = fixed.init(np.ones((3, 3)) * 0.5, seed=1)
    fixed.warmup(fs)
    assert fs.dt == 0.01 and fs.n_trajectories == 20
    # a step without adapt=True leaves dt alone even while adaptation is set up
    a = sampler(3, dt=0.01, n_warmup=20)
    ast = a.init(np.ones((3, 3)) * 0.5, seed=1)
    a.step(ast)
    assert ast.dt == 0.01
    a.step(ast, adapt=True)
    assert ast.dt != 0.01
    # finish_warmup uses the averaged step exp(log_dt_bar)
    bar = ast.adaptation.log_dt_bar
    a.finish_warmup(ast)
    assert ast.dt == pytest.approx(math.exp(bar)) and ast.adaptation is None


def test_run_chain_frames_monitor_progress_and_pressure():
    s = sampler(3, save_every=3)
    with pytest.raises(ValueError, match=r"^n_samples must be ≥ 1, got 0$"):
        run_chain(s, np.zeros((3, 3)), 0)
    seen = []
    res = run_chain(s, np.ones((3, 3)) * 0.2, 10, seed=4, monitor=lambda x: float(np.abs(x).max()),
                    progress=seen.append)
    assert seen == list(range(10))
    assert res.frame_sample.tolist() == [0, 3, 6, 9] and res.frame_sample.dtype == np.int32
    assert res.frames.shape == (4, 3, 3) and res.monitor.shape == (4,)
    np.testing.assert_allclose(res.monitor, np.abs(res.frames).max(axis=(1, 2)))
    assert res.accepted.dtype == np.int8 and res.n_steps.dtype == np.int32 and res.n_steps.tolist() == [5] * 10
    np.testing.assert_array_equal(res.dt, 0.2)
    assert np.all(np.isnan(res.pressure))  # no periodic cell
    assert not res.stopped_early and res.final_dt == 0.2 and res.force_evaluations == 50
    last = run_chain(sampler(3, save_every=4), np.zeros((3, 3)), 6, seed=1)
    assert last.frame_sample.tolist() == [0, 4, 5]  # the last sample is always saved
    assert np.all(np.isnan(run_chain(sampler(3), np.zeros((3, 3)), 2).monitor))
    # metal units: dt is recorded in fs
    m = HMCSampler(ForceField(wells(2), [18, 18]), HMCConfig(temperature=50.0, dt=2.0, n_steps=3))
    assert np.all(run_chain(m, np.zeros((2, 3)), 3).dt == pytest.approx(2.0))
    # a periodic cell: the virial pressure (N kT + tr W / 3) / V
    box = np.eye(3) * 10.0
    per = HMCSampler(ForceField(wells(3), [1, 1, 1], box, (True, True, True)),
                     HMCConfig(temperature=1.0, dt=0.2, n_steps=5, units="lj"))
    r = run_chain(per, np.ones((3, 3)) * 0.2, 5, seed=0)
    assert np.all(np.isfinite(r.pressure))
    expected = (3 * 1.0 + np.trace(r.state.virial) / 3.0) / 1000.0
    assert r.pressure[-1] == pytest.approx(expected)


def test_run_chain_stops_above_threshold():
    s = sampler(3, dt=0.3)
    res = run_chain(s, np.ones((3, 3)) * 2.0, 50, seed=0, monitor=lambda x: 10.0, stop_above=5.0)
    assert res.stopped_early and res.frame_sample.tolist() == [0]
    assert np.isfinite(res.potential_energy[0]) and np.all(np.isnan(res.potential_energy[1:]))
    for name in ("kinetic_energy", "delta_h", "accept_prob", "dt"):
        assert np.all(np.isnan(getattr(res, name)[1:])), name
    at = run_chain(s, np.ones((3, 3)), 5, seed=0, monitor=lambda x: 5.0, stop_above=5.0)
    assert not at.stopped_early and len(at.frame_sample) == 5  # "above" is strict


def test_run_chains_checks_broadcasting_and_dataset():
    pot = wells(3)
    cfg = HMCConfig(temperature=1.0, dt=0.2, n_steps=4, units="lj", save_every=2)
    with pytest.raises(ValueError, match=r"^starts must be \(3, 3\) or \(n_chains, 3, 3\), got \(1, 2, 3\)$"):
        run_chains(pot, [1, 1, 1], np.zeros((2, 3)), cfg, 3)
    with pytest.raises(ValueError, match=r"^2 temperatures and 3 starts: give one of each per chain or a single one "
                                         r"to share$"):
        run_chains(pot, [1, 1, 1], np.zeros((3, 3, 3)), cfg, 3, temperatures=[1.0, 2.0])
    ds = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 5, seed=3)
    assert ds.sizes["chain"] == 1 and ds["temperature"].values.tolist() == [1.0]
    two = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 5, temperatures=[0.5, 2.0], seed=3)
    assert two["temperature"].values.tolist() == [0.5, 2.0] and two.sizes["chain"] == 2
    starts = np.stack([np.zeros((3, 3)), np.ones((3, 3))])
    both = run_chains(pot, [1, 1, 1], starts, cfg, 5, seed=3)
    assert both["temperature"].values.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(both["positions"].values[1, 0] != 0, True)
    threaded = run_chains(pot, [1, 1, 1], starts, cfg, 5, seed=3, n_workers=2)
    np.testing.assert_array_equal(threaded["potential_energy"].values, both["potential_energy"].values)
    other_seed = run_chains(pot, [1, 1, 1], starts, cfg, 5, seed=4)
    assert not np.array_equal(other_seed["potential_energy"].values, both["potential_energy"].values)
    # layout, units and provenance
    assert ds["positions"].dims == ("chain", "frame", "atom", "xyz") and ds.sizes["frame"] == 3
    assert ds["frame_sample"].values.tolist() == [[0, 2, 4]] and ds["frame_sample"].dtype == np.int32
    for name in ("potential_energy", "kinetic_energy", "delta_H", "accepted", "accept_prob", "n_steps", "dt",
                 "pressure"):
        assert ds[name].dims == ("chain", "sample") and ds.sizes["sample"] == 5, name
    assert ds["species"].dtype == np.int32 and ds["species"].dims == ("atom",)
    np.testing.assert_array_equal(ds["cell"].values, np.zeros((3, 3)))
    assert ds["pbc"].dtype == np.int8 and ds["pbc"].values.tolist() == [0, 0, 0]
    assert ds["stopped_early"].dtype == np.int8 and ds["stopped_early"].values.tolist() == [0]
    assert ds["acceptance_rate"].values[0] == pytest.approx(ds["accepted"].values[0].mean())
    assert ds["final_dt"].values.tolist() == [0.2]
    assert ds["force_evaluations"].values.tolist() == [20]
    assert list(ds["xyz"].values) == ["x", "y", "z"]
    lj = get_units("lj")
    units = {"potential_energy": lj.energy, "kinetic_energy": lj.energy, "delta_H": lj.energy,
             "positions": lj.length, "dt": lj.time, "temperature": lj.temperature, "final_dt": lj.time,
             "cell": lj.length}
    for name, unit in units.items():
        assert ds[name].attrs["units"] == unit, name
    assert ds["pressure"].attrs["units"] == f"{get_units('lj').energy}/{get_units('lj').length}³"
    assert ds.attrs["hmc_temperature"] == 1.0 and ds.attrs["hmc_n_steps"] == 4 and ds.attrs["hmc_units"] == "lj"
    assert ds.attrs["hmc_metropolis"] == 1 and type(ds.attrs["hmc_metropolis"]) is int
    assert ds.attrs["hmc_adapt_step_size"] == 1 and ds.attrs["hmc_save_every"] == 2
    assert ds.attrs["potential_name"] == "HarmonicWells" and ds.attrs["seed"] == 3
    assert ds.attrs["schema"] == "pesflow.hmc_samples/1"
    cell = np.eye(3) * 12.0
    periodic = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 2, cell=cell, pbc=(1, 1, 1))
    np.testing.assert_array_equal(periodic["cell"].values, cell)
    assert periodic["pbc"].values.tolist() == [1, 1, 1] and np.all(np.isfinite(periodic["pressure"].values))


def test_stopped_chains_pad_and_samples_to_configurations():
    pot = wells(3)
    cfg = HMCConfig(temperature=1.0, dt=0.2, n_steps=4, units="lj")
    ds = run_chains(pot, [1, 1, 1], np.stack([np.zeros((3, 3)), np.ones((3, 3)) * 3]), cfg, 4, seed=1,
                    monitor=lambda x: float(np.abs(x).max()), stop_above=2.5)
    assert ds["stopped_early"].values.tolist() == [0, 1]
    assert ds["frame_sample"].values[1].tolist() == [0, -1, -1, -1]
    assert np.all(np.isnan(ds["positions"].values[1, 1:])) and np.all(np.isnan(ds["monitor"].values[1, 1:]))
    conf = samples_to_configurations(ds)
    assert conf.sizes["config"] == 5 and conf.attrs["source"] == "hmc"
    assert conf["chain"].values.tolist() == [0, 0, 0, 0, 1] and conf["frame"].values.tolist() == [0, 1, 2, 3, 0]
    assert conf["chain"].dtype == np.int32 and conf["frame"].dtype == np.int32
    np.testing.assert_allclose(conf["monitor"].values, [*ds["monitor"].values[0], ds["monitor"].values[1, 0]])
    np.testing.assert_allclose(conf["positions"].values[4], ds["positions"].values[1, 0])
    assert conf["species"].values[0].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(conf["pbc"].values[0], [False, False, False])


def test_run_chains_passes_masses_temperatures_and_seed():
    pot = wells(3)
    cfg = HMCConfig(temperature=1.0, dt=0.2, n_steps=3, units="lj")
    default = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 4)
    np.testing.assert_array_equal(default["kinetic_energy"].values,
                                  run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 4, seed=0)["kinetic_energy"].values)
    assert not np.array_equal(default["kinetic_energy"].values,
                              run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 4, seed=1)["kinetic_energy"].values)
    heavy = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 4, masses=[4.0, 4.0, 4.0])
    assert not np.array_equal(heavy["potential_energy"].values, default["potential_energy"].values)
    temps = run_chains(pot, [1, 1, 1], np.zeros((3, 3)), cfg, 40, temperatures=[0.2, 5.0], seed=2)
    ke = temps["kinetic_energy"].values.mean(axis=1)  # drawn momenta: ⟨K⟩ = 3/2 N kT per chain
    assert ke[1] > 5 * ke[0]
    assert ke[0] == pytest.approx(1.5 * 3 * 0.2, rel=0.5) and ke[1] == pytest.approx(1.5 * 3 * 5.0, rel=0.5)


def test_dataset_frames_dims_and_periodic_configurations():
    pot = wells(3)
    cfg = HMCConfig(temperature=1.0, dt=0.2, n_steps=3, units="lj")
    cell = np.eye(3) * 12.0
    ds = run_chains(pot, [1, 1, 1], np.ones((3, 3)), cfg, 3, cell=cell, pbc=(1, 1, 1), monitor=lambda x: 0.5)
    assert np.all(np.isfinite(ds["positions"].values))
    assert ds["frame_sample"].dims == ("chain", "frame") and ds["monitor"].dims == ("chain", "frame")
    conf = samples_to_configurations(ds)
    for name in ("chain", "frame", "monitor"):
        assert conf[name].dims == ("config",), name
    np.testing.assert_array_equal(conf["cell"].values[0], cell)
    assert conf["pbc"].values[0].tolist() == [1, 1, 1]
    np.testing.assert_allclose(conf["positions"].values[0], ds["positions"].values[0, 0])
    none = ds.copy(deep=True)
    none["frame_sample"].values[:] = -1
    empty = samples_to_configurations(none)
    assert empty.sizes["config"] == 0 and empty["monitor"].shape == (0,) and empty["monitor"].dims == ("config",)


def test_random_stream_jitter_formulas_and_temperature():
    # no jitter: a step draws the momenta and one Metropolis uniform, nothing else
    plain = sampler(3, n_steps=4)
    st = plain.init(np.ones((3, 3)) * 0.3, seed=0)
    st.rng = np.random.default_rng(9)
    probe = np.random.default_rng(9)
    plain.step(st)
    probe.standard_normal((3, 3))
    probe.uniform()
    assert st.rng.uniform() == probe.uniform()
    # dt jitter: dt · (1 + jitter_dt · U(−1, 1)), drawn after the momenta
    jit = sampler(3, jitter_dt=0.5)
    js = jit.init(np.ones((3, 3)) * 0.3, seed=0)
    js.rng = np.random.default_rng(11)
    probe = np.random.default_rng(11)
    probe.standard_normal((3, 3))
    assert jit.step(js).dt == pytest.approx(0.2 * (1.0 + 0.5 * probe.uniform(-1.0, 1.0)), rel=1e-12)
    # step jitter reaches down to a single step
    short = sampler(3, n_steps=2, jitter_steps=0.6)
    ss = short.init(np.ones((3, 3)) * 0.3, seed=0)
    assert {short.step(ss).n_steps for _ in range(30)} == {1, 2, 3}
    # acceptance at kT = 2: exp(−ΔH / kT)
    hot = sampler(3, temperature=2.0)
    hs = hot.init(np.ones((3, 3)), seed=1)
    for _ in range(10):
        info = hot.step(hs)
        assert info.accept_prob == pytest.approx(math.exp(min(0.0, -info.delta_h / 2.0)))
    assert sampler(3, n_warmup=1).init(np.zeros((3, 3))).adaptation is not None


def test_run_chain_defaults_single_sample_and_recorded_values():
    a = run_chain(sampler(3), np.ones((3, 3)) * 0.2, 4)
    b = run_chain(sampler(3), np.ones((3, 3)) * 0.2, 4, seed=0)
    np.testing.assert_array_equal(a.kinetic_energy, b.kinetic_energy)
    assert not np.array_equal(a.kinetic_energy, run_chain(sampler(3), np.ones((3, 3)) * 0.2, 4, seed=1).kinetic_energy)
    one = run_chain(sampler(3), np.ones((3, 3)) * 0.2, 1)
    assert one.frame_sample.tolist() == [0]
    for name in ("potential_energy", "kinetic_energy", "delta_h", "accept_prob", "dt"):
        assert np.all(np.isfinite(getattr(a, name))), name


def test_pressure_and_virial_with_lennard_jones():
    from conftest import fcc_lattice

    from hmc_core.potentials import LennardJones

    pos, cell = fcc_lattice(2, 0.9)
    lj = LennardJones(cutoff_sigma=2.0, shift=True)
    ff = ForceField(lj, np.ones(len(pos), int), cell, (True, True, True))
    s = HMCSampler(ff, HMCConfig(temperature=2.0, dt=0.002, n_steps=3, units="lj"))
    st = s.init(pos, seed=0)
    np.testing.assert_array_equal(st.virial, ff.virial)
    assert np.abs(np.trace(st.virial)) > 1.0
    r = run_chain(s, pos, 3, seed=0)
    volume = abs(np.linalg.det(cell))
    expected = (len(pos) * 2.0 + np.trace(r.state.virial) / 3.0) / volume
    assert r.pressure[-1] == pytest.approx(expected, rel=1e-12)


def test_dataset_per_chain_dims():
    ds = run_chains(wells(3), [1, 1, 1], np.zeros((3, 3)), HMCConfig(temperature=1.0, dt=0.2, n_steps=2, units="lj"),
                    2, temperatures=[1.0, 2.0])
    assert ds["cell"].dims == ("cell_vector", "xyz") and ds["pbc"].dims == ("xyz",)
    for name in ("temperature", "acceptance_rate", "final_dt", "force_evaluations", "stopped_early"):
        assert ds[name].dims == ("chain",), name
    assert ds["temperature"].dtype == np.float64


def test_metal_units_integer_inputs_and_integer_monitor():
    pot = HarmonicWells(np.zeros((2, 3)), 1.0, units="metal")
    cfg = HMCConfig(temperature=50.0, dt=2.0, n_steps=2)
    ds = run_chains(pot, [18, 18], np.zeros((2, 3)), cfg, 2, cell=np.eye(3, dtype=int) * 12, monitor=lambda x: 1)
    assert ds["final_dt"].values.tolist() == [pytest.approx(2.0)]  # fs, not internal time
    assert ds["cell"].dtype == np.float64
    s = sampler(3)
    st = s.init(np.zeros((3, 3), dtype=int))
    assert st.positions.dtype == np.float64
    s.step(st)  # integrates in place: integer positions would not take the update
    res = run_chain(s, np.zeros((3, 3)), 2, monitor=lambda x: 1)
    assert res.monitor.dtype == np.float64
