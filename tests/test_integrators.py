"""Integrators: time reversibility and the order of the energy error."""

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.integrators import INTEGRATORS, kinetic_energy
from hmc_core.potentials import ForceField, LennardJones


def _system(seed=0):
    rng = np.random.default_rng(seed)
    pos, cell = fcc_lattice(3, 0.8)
    pos += rng.normal(scale=0.03, size=pos.shape)
    ff = ForceField(LennardJones(cutoff_sigma=2.5, shift=True), np.ones(len(pos), int), cell, (1, 1, 1))
    p = rng.normal(scale=np.sqrt(1.0), size=pos.shape)
    return ff, pos, p, np.ones_like(pos)


@pytest.mark.parametrize("name", ["verlet", "omelyan"])
def test_reversible(name):
    ff, x, p, inv_m = _system()
    x0, p0 = x.copy(), p.copy()
    integrate = INTEGRATORS[name]
    e, f = ff(x)
    e, f = integrate(x, p, inv_m, ff, 0.004, 50, e, f)
    p *= -1
    e, f = integrate(x, p, inv_m, ff, 0.004, 50, e, f)
    # positions may be wrapped by the neighbour list: compare modulo the box
    box = np.diag(ff.cell)
    dx = (x - x0 + 0.5 * box) % box - 0.5 * box
    assert np.abs(dx).max() < 1e-10
    np.testing.assert_allclose(-p, p0, atol=1e-10)


def _energy_error(name, dt, total_time=0.2):
    ff, x, p, inv_m = _system(3)
    e, f = ff(x)
    h0 = e + kinetic_energy(p, inv_m)
    e, f = INTEGRATORS[name](x, p, inv_m, ff, dt, round(total_time / dt), e, f)
    return abs(e + kinetic_energy(p, inv_m) - h0)


def test_delta_h_scales_as_dt_squared_and_omelyan_is_smaller():
    dts = np.array([0.01, 0.005, 0.0025])
    for name in ("verlet", "omelyan"):
        errs = np.array([_energy_error(name, dt) for dt in dts])
        slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
        assert 1.6 < slope < 2.5, (name, slope, errs)
    assert _energy_error("omelyan", 0.005) < 0.5 * _energy_error("verlet", 0.005)
