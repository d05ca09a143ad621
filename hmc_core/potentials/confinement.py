"""A soft spherical wall that keeps a cluster together (free clusters evaporate at finite T).

U = ½ k Σ_i max(0, |x_i − x_c| − R)², with x_c the centre of mass (equal weights) or a fixed point.
Cluster simulations (e.g. LJ₃₈, Neirotti, Calvo, Freeman & Doll 2000, J. Chem. Phys. 112, 10340)
use a confining radius R ≈ 2.25 σ about the centre of mass so that evaporation is suppressed.
Units: R in length, k in energy/length².
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError


@njit(cache=True, nogil=True, error_model="numpy")
def confining_sphere_energy_forces(x, center, use_com, radius, stiffness):
    """Energy and forces (N, 3) of the wall; with ``use_com`` the centre is the mean position and the
    reaction −Σ F_i is spread equally over all atoms (so the forces sum to zero)."""
    n = x.shape[0]
    c = np.zeros(3)
    if use_com:
        for i in range(n):
            for a in range(3):
                c[a] += x[i, a] / n
    else:
        c[:] = center
    f = np.zeros((n, 3))
    total = np.zeros(3)
    energy = 0.0
    for i in range(n):
        d0, d1, d2 = x[i, 0] - c[0], x[i, 1] - c[1], x[i, 2] - c[2]
        r = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        if r > radius:
            excess = r - radius
            energy += 0.5 * stiffness * excess * excess
            g = stiffness * excess / r
            f[i, 0] -= g * d0
            f[i, 1] -= g * d1
            f[i, 2] -= g * d2
            total[0] += g * d0
            total[1] += g * d1
            total[2] += g * d2
    if use_com:
        for i in range(n):
            for a in range(3):
                f[i, a] += total[a] / n
    return energy, f


class ConfiningSphere(Potential):
    """Soft wall of ``radius`` and ``stiffness`` about the centre of mass (``center=None``) or a point."""

    cutoff = 1e-3  # no pair terms
    full_neighbor_list = False
    uses_neighbor_list = False  # a wall about the centre of mass: open systems only

    def __init__(self, radius: float, stiffness: float = 100.0, center=None, units: str = "lj"):
        if not (np.isfinite(radius) and radius > 0):
            raise PotentialError(f"confining radius must be > 0, got {radius}")
        if not (np.isfinite(stiffness) and stiffness > 0):
            raise PotentialError(f"confining stiffness must be > 0, got {stiffness}")
        self.radius, self.stiffness, self.units = float(radius), float(stiffness), units
        self.center = None if center is None else np.asarray(center, dtype=np.float64).reshape(3)

    def compute(self, positions, cell, types, nlist: NeighborList):
        use_com = self.center is None
        center = np.zeros(3) if use_com else self.center
        energy, forces = confining_sphere_energy_forces(positions, center, use_com, self.radius, self.stiffness)
        return energy, forces, np.zeros((3, 3))

    def describe(self) -> dict:
        return {"name": "ConfiningSphere", "radius": self.radius, "stiffness": self.stiffness,
                "center": "com" if self.center is None else str(self.center.tolist())}
