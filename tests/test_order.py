"""Order parameters against known values.

Reference q_l of perfect lattices (first shell; bcc with 8 + 6 neighbours): Steinhardt, Nelson &
Ronchetti, PRB 28, 784 (1983), Table I, and Lechner & Dellago, JCP 129, 114707 (2008), Table I:
q4 = 0.19094 (fcc), 0.09722 (hcp), 0.03637 (bcc), 0 (icosahedron); q6 = 0.57452 (fcc), 0.48476 (hcp),
0.51069 (bcc), 0.66332 (icosahedron). a-CNA signatures: Stukowski, MSMSE 20, 045021 (2012).
"""

import numpy as np
import pytest
from conftest import fcc_lattice
from scipy.special import sph_harm_y

from hmc_core.hmc import HMCConfig, run_chains
from hmc_core.order import (
    BCC,
    FCC,
    FIVEFOLD,
    HCP,
    ICO,
    OTHER,
    compute_order,
    qlm_kernel,
    shell_cutoff,
    structure_labels,
)
from hmc_core.potentials import LennardJones
from hmc_core.structures import icosahedron, lattice

REFERENCE = {"fcc": (0.19094, 0.57452, FCC), "hcp": (0.09722, 0.48476, HCP), "bcc": (0.03637, 0.51069, BCC)}


@pytest.mark.parametrize("structure", ["fcc", "hcp", "bcc"])
def test_perfect_lattices(structure):
    q4_ref, q6_ref, label = REFERENCE[structure]
    pos, cell = lattice(structure, 4, 1.0)
    rot = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]  # rotation invariance
    op = compute_order(pos @ rot, cell @ rot)
    assert op.q4 == pytest.approx(q4_ref, abs=2e-5)
    assert op.q6 == pytest.approx(q6_ref, abs=2e-5)
    assert op.q6_avg == pytest.approx(q6_ref, abs=2e-5)  # every atom is alike
    assert np.all(op.n_neighbors == (14 if structure == "bcc" else 12))
    assert np.all(op.structure == label)
    assert op.solid.all() and op.largest_cluster == len(pos)
    assert op.largest_unit_cluster == len(pos)


def test_icosahedron_centre():
    x = icosahedron(3, 1.1)
    op = compute_order(x, None, (False, False, False), cutoff=1.3, cna_cutoff=1.8)
    assert op.q6[0] == pytest.approx(0.66332, abs=2e-5)
    assert op.q4[0] == pytest.approx(0.0, abs=1e-9)
    assert op.structure[0] == ICO and op.n_neighbors[0] == 12


@pytest.mark.parametrize("shells, n_fivefold, n_hcp", [(3, 12, 0), (4, 24, 30)])
def test_mackay_icosahedra_are_one_ordered_unit_cluster(shells, n_fivefold, n_hcp):
    """Mackay icosahedra (55, 147 atoms): one centre with 12 × 555 signatures, every inner vertex on a five-fold
    axis (10 × 422 + 2 × 555), the inner edge atoms of the 147 on twin planes (hcp: 6 × 421 + 6 × 422). The
    units (labelled atom + shell) cover the whole cluster; the ten Wolde–Frenkel q6 bonds see at most one atom."""
    x = icosahedron(shells, 1.1)
    op = compute_order(x, None, (False, False, False), cutoff=1.4, cna_cutoff=1.9)
    assert np.sum(op.structure == ICO) == 1 and op.structure[0] == ICO
    assert np.sum(op.structure == FIVEFOLD) == n_fivefold and np.sum(op.structure == HCP) == n_hcp
    assert op.largest_unit_cluster == len(x) and np.all(op.unit_cluster == 0)
    assert op.largest_cluster <= 1


def test_qlm_matches_scipy_spherical_harmonics():
    """Parity with scipy: |q_lm| of one bond equals |Y_lm| (the phase convention cancels in q_l and d6)."""
    x = np.array([[0.0, 0.0, 0.0], [0.3, -0.5, 0.7]])
    from hmc_core.neighbors import NeighborList

    nl = NeighborList(2.0, 0.0, full=True)
    xw = nl.build(x, np.zeros((3, 3)), np.zeros(3, bool))
    d = xw[1] - xw[0]
    theta, phi = np.arccos(d[2] / np.linalg.norm(d)), np.arctan2(d[1], d[0])
    for l in (4, 6):
        re, im, count = qlm_kernel(xw, nl.offsets, nl.neighbors, nl.codes, nl.shifts, 4.0, l)
        ref = sph_harm_y(l, np.arange(l + 1), theta, phi)
        assert count[0] == 1
        np.testing.assert_allclose(np.hypot(re[0], im[0]), np.abs(ref), atol=1e-12)


def test_thermal_fcc_stays_fcc_and_liquid_is_disordered():
    pos, cell = fcc_lattice(4, 1.0)
    noisy = pos + np.random.default_rng(0).normal(0, 0.04, pos.shape)
    op = compute_order(noisy, cell)
    assert op.solid.mean() > 0.95 and np.mean(op.structure == FCC) > 0.9
    # A liquid snapshot: LJ at T* = 1.5, ρ* = 0.8 (well above melting), 60 HMC trajectories from fcc.
    pos, cell = fcc_lattice(4, 0.8)
    cfg = HMCConfig(temperature=1.5, dt=0.005, n_steps=20, units="lj", n_warmup=20)
    ds = run_chains(LennardJones(cutoff_sigma=2.5), np.ones(len(pos), int), pos, cfg, 60, cell=cell,
                    pbc=(1, 1, 1), seed=1)
    liquid = ds["positions"].values[0, -1]
    op = compute_order(liquid, cell)
    # Liquid values (ten Wolde et al. 1996; Lechner & Dellago 2008): q6 ≈ 0.3–0.4 (≈ 1/√N_b noise),
    # q̄6 ≈ 0.1–0.2, essentially no solid-like atoms and no crystalline a-CNA labels.
    assert 0.25 < op.q6.mean() < 0.45
    assert op.q6_avg.mean() < 0.25
    assert op.solid.mean() < 0.05 and op.largest_cluster < 10
    assert np.mean(op.structure == OTHER) > 0.9
    # ordered units in a hot liquid: at most one isolated 13-atom unit (one labelled atom + its shell)
    assert op.largest_unit_cluster <= 13


def test_structure_labels_and_bad_input():
    pos, cell = lattice("bcc", 3, 1.2)
    assert np.all(structure_labels(pos, cell) == BCC)
    assert shell_cutoff(0.96) == pytest.approx(1.37, abs=0.01)
    with pytest.raises(ValueError, match="shape"):
        compute_order(np.zeros((5, 2)), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        compute_order(np.full((5, 3), np.nan), np.eye(3))
    with pytest.raises(ValueError, match="cutoff"):
        compute_order(pos, cell, cutoff=-1.0)
    with pytest.raises(ValueError, match="give cutoff"):
        compute_order(pos, None, (False, False, False))
