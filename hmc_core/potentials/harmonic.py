"""Independent harmonic wells: U = ½ Σ_i k_i |x_i − c_i|² (a test system with exact answers).

Under HMC at temperature T: ⟨(x − c)²⟩ per degree of freedom = k_B T / k and ⟨U⟩ = 3N k_B T / 2.
"""

from __future__ import annotations

import numpy as np

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError


class HarmonicWells(Potential):
    """``centers`` (N, 3) length; ``stiffness`` k, a scalar or (N,) or (N, 3) (energy/length²)."""

    cutoff = 1e-3  # no pair interactions; the neighbour list stays empty
    full_neighbor_list = False

    def __init__(self, centers, stiffness=1.0, units: str = "lj"):
        self.centers = np.array(centers, dtype=np.float64).reshape(-1, 3)
        k = np.broadcast_to(np.asarray(stiffness, dtype=np.float64).reshape(
            (-1, 1) if np.ndim(stiffness) == 1 else np.shape(stiffness)), self.centers.shape)
        if np.any(k <= 0):
            raise PotentialError("harmonic stiffness must be > 0")
        self.k = np.ascontiguousarray(k)
        self.units = units

    def check_species(self, species):
        if len(species) != len(self.centers):
            raise PotentialError(f"{len(species)} atoms but {len(self.centers)} harmonic centres")

    def compute(self, positions, cell, types, nlist: NeighborList):
        d = positions - self.centers
        return 0.5 * float(np.sum(self.k * d * d)), -self.k * d, np.zeros((3, 3))
