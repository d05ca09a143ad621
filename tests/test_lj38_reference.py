"""Reference energies of LJ₃₈ (Cambridge Cluster Database): the potential, the cluster builder of
``bench/lj38.py`` and its quencher reproduce the published global minimum."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from lj38 import E_GLOBAL, Quencher, confined_lj, truncated_octahedron  # noqa: E402

from hmc_core.potentials import ForceField  # noqa: E402


def test_truncated_octahedron_relaxes_to_the_published_global_minimum():
    energy, x = Quencher()(truncated_octahedron())
    assert abs(energy - E_GLOBAL) < 1e-5  # −173.928427 ε (Wales & Doye 1997)
    # the 2.25σ confining wall does not touch the minimum: same energy with the wall
    e_wall, _ = ForceField(confined_lj(), np.ones(38, int))(x.copy())
    assert abs(e_wall - energy) < 1e-12


def test_harmonic_data_of_the_global_minimum():
    """The funnel benchmark's helpers: O_h has 48 operations, the Hessian has exactly six zero modes,
    and the bond-order Q₄ tells the cubic fcc minimum from an icosahedral structure."""
    from lj38_funnels import bond_order_q4, harmonic_log_z, harmonic_minimum, point_group_order

    _, x = Quencher()(truncated_octahedron())
    m = harmonic_minimum(x, E_GLOBAL)  # raises unless six zero modes and positive curvature elsewhere
    assert m["point_group_order"] == 48
    assert bond_order_q4(x) > 0.15
    # ln Z rises by (3N-6)/2 ln 2 + E/T - E/(2T) when T doubles (harmonic)
    t = 0.02
    expected = 0.5 * (3 * 38 - 6) * np.log(2) + E_GLOBAL / t - E_GLOBAL / (2 * t)
    assert harmonic_log_z(m, 2 * t) - harmonic_log_z(m, t) == pytest.approx(expected, rel=1e-12)
    phi = (1 + 5**0.5) / 2  # a regular icosahedron (I_h, 120 operations) has Q₄ = 0
    v = np.array([[0, s1, s2 * phi] for s1 in (-1, 1) for s2 in (-1, 1)], float)
    ico = np.concatenate([np.zeros((1, 3)), v, v[:, [1, 2, 0]], v[:, [2, 0, 1]]]) * 1.1 / np.linalg.norm(v[0])
    assert point_group_order(ico) == 120
    assert bond_order_q4(ico, cutoff=1.3) < 0.01
