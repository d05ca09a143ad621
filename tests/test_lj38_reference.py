"""Reference energies of LJ₃₈ (Cambridge Cluster Database): the potential, the cluster builder of
``bench/lj38.py`` and its quencher reproduce the published global minimum."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from lj38 import E_GLOBAL, Quencher, confined_lj, truncated_octahedron  # noqa: E402

from hmc_core.potentials import ForceField  # noqa: E402


def test_truncated_octahedron_relaxes_to_the_published_global_minimum():
    energy, x = Quencher()(truncated_octahedron())
    assert abs(energy - E_GLOBAL) < 1e-5  # −173.928427 ε (Wales & Doye 1997)
    # the 2.25σ confining wall does not touch the minimum: same energy with the wall
    e_wall, _ = ForceField(confined_lj(), np.ones(38, int))(x.copy())
    assert abs(e_wall - energy) < 1e-12
