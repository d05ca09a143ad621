"""Multiple-time-step (r-RESPA) integration with a split Lennard-Jones potential."""

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
from hmc_core.integrators import INTEGRATORS, kinetic_energy
from hmc_core.mts import split_forcefield, split_lennard_jones
from hmc_core.potentials import ForceField, LennardJones, PotentialError, check_potential
from hmc_core.potentials.harmonic import HarmonicWells


def _cluster(seed=3):
    rng = np.random.default_rng(seed)
    pos, _ = fcc_lattice(2, 1.0)
    pos += rng.normal(scale=0.03, size=pos.shape)
    return pos, rng.normal(size=pos.shape)


def test_split_parts_sum_to_the_full_potential_and_pass_the_conformance_check():
    pos, _ = _cluster()
    species = np.ones(len(pos), int)
    lj = LennardJones(cutoff_sigma=2.5, shift=True)
    inner, outer = split_lennard_jones(lj, 1.6, 0.4)
    e_full, f_full = ForceField(lj, species)(pos.copy())
    e_split, f_split = split_forcefield(inner, outer, species)(pos.copy())
    assert abs(e_full - e_split) < 1e-10
    np.testing.assert_allclose(f_split, f_full, atol=1e-10)
    for part in (inner, outer):
        check_potential(part, pos, species)


def _mts_error(dt, n_inner, total_time=0.3):
    pos, p = _cluster()
    inner, outer = split_lennard_jones(LennardJones(cutoff_sigma=20.0), 1.6, 0.4)
    ff = split_forcefield(inner, outer, np.ones(len(pos), int), n_inner=n_inner)
    inv_m = np.ones_like(pos)
    e, f = ff(pos)
    h0 = e + kinetic_energy(p, inv_m)
    e, f = INTEGRATORS["mts"](pos, p, inv_m, ff, dt, round(total_time / dt), e, f)
    return abs(e + kinetic_energy(p, inv_m) - h0), ff


def test_mts_is_second_order_and_inner_steps_reduce_the_error():
    errs = np.array([_mts_error(dt, 4)[0] for dt in (0.02, 0.01, 0.005)])
    slope = np.polyfit(np.log([0.02, 0.01, 0.005]), np.log(errs), 1)[0]
    assert 1.7 < slope < 2.4, (slope, errs)
    err1, _ = _mts_error(0.02, 1)
    err4, ff = _mts_error(0.02, 4)
    assert err4 < 0.2 * err1  # the stiff part dominates the error at n_inner = 1
    assert ff.n_inner_evaluations == 4 * ff.n_evaluations - 3  # 15 outer steps: 1 + 15 outer, 1 + 60 inner


def test_mts_reversible_with_a_force_gradient_inner_integrator():
    pos, p = _cluster(0)
    x0, p0 = pos.copy(), p.copy()
    inner, outer = split_lennard_jones(LennardJones(cutoff_sigma=20.0), 1.6, 0.4)
    ff = split_forcefield(inner, outer, np.ones(len(pos), int), n_inner=3, inner_integrator="force_gradient_hf")
    inv_m = np.ones_like(pos)
    e, f = ff(pos)
    e, f = INTEGRATORS["mts"](pos, p, inv_m, ff, 0.02, 10, e, f)
    p *= -1
    INTEGRATORS["mts"](pos, p, inv_m, ff, 0.02, 10, e, f)
    np.testing.assert_allclose(pos, x0, atol=1e-9)
    np.testing.assert_allclose(-p, p0, atol=1e-9)


def test_mts_hmc_samples_the_exact_harmonic_distribution():
    """Split k = 9 (inner) + 1 (outer): ⟨(x − c)²⟩ = kT / 10 per degree of freedom."""
    n = 20
    centers = 3.0 * np.column_stack([np.arange(n), np.zeros(n), np.zeros(n)])  # far apart: empty pair list
    ff = split_forcefield(HarmonicWells(centers, 9.0), HarmonicWells(centers, 1.0), np.ones(n, int), n_inner=5,
                          skin=2.0)
    cfg = HMCConfig(temperature=0.5, dt=0.5, n_steps=5, integrator="mts", units="lj", jitter_dt=0.2)
    result = run_chain(HMCSampler(ff, cfg), centers, 500, seed=1)
    u = result.potential_energy[100:]
    assert abs(u.mean() / (1.5 * n * 0.5) - 1) < 0.05  # ⟨U⟩ = 3N kT / 2; ±5 % ≫ the ~1 % sampling error
    assert 0.3 < result.accepted.mean() < 1.0


def test_bad_splits_are_clear_errors():
    lj = LennardJones(cutoff_sigma=2.5)
    with pytest.raises(PotentialError, match="beyond the outer cutoff"):
        split_lennard_jones(lj, 3.0, 0.3)
    with pytest.raises(PotentialError, match="width"):
        split_lennard_jones(lj, 1.5, 0.0)
    inner, outer = split_lennard_jones(lj, 1.5, 0.3)
    with pytest.raises(PotentialError, match="beyond the outer cutoff"):
        split_forcefield(outer, inner, np.ones(4, int))
    with pytest.raises(ValueError, match="n_inner"):
        split_forcefield(inner, outer, np.ones(4, int), n_inner=0)
    with pytest.raises(ValueError, match="split force field"):
        HMCSampler(ForceField(lj, np.ones(4, int)), HMCConfig(1.0, 0.01, integrator="mts", units="lj")).step(
            HMCSampler(ForceField(lj, np.ones(4, int)), HMCConfig(1.0, 0.01, units="lj")).init(
                fcc_lattice(1, 0.8)[0]))
