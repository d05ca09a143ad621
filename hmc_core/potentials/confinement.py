"""A soft spherical wall that keeps a cluster together (free clusters evaporate at finite T).

U = ½ k Σ_i max(0, |x_i − x_c| − R)², with x_c the centre of mass (equal weights) or a fixed point.
Cluster simulations (e.g. LJ₃₈, Neirotti, Calvo, Freeman & Doll 2000, J. Chem. Phys. 112, 10340)
use a confining radius R ≈ 2.25 σ about the centre of mass so that evaporation is suppressed.
Units: R in length, k in energy/length².
"""

from __future__ import annotations

import numpy as np

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError


class ConfiningSphere(Potential):
    """Soft wall of ``radius`` and ``stiffness`` about the centre of mass (``center=None``) or a point."""

    cutoff = 1e-3  # no pair terms
    full_neighbor_list = False

    def __init__(self, radius: float, stiffness: float = 100.0, center=None, units: str = "lj"):
        if not (np.isfinite(radius) and radius > 0):
            raise PotentialError(f"confining radius must be > 0, got {radius}")
        if not (np.isfinite(stiffness) and stiffness > 0):
            raise PotentialError(f"confining stiffness must be > 0, got {stiffness}")
        self.radius, self.stiffness, self.units = float(radius), float(stiffness), units
        self.center = None if center is None else np.asarray(center, dtype=np.float64).reshape(3)

    def compute(self, positions, cell, types, nlist: NeighborList):
        c = positions.mean(axis=0) if self.center is None else self.center
        d = positions - c
        r = np.sqrt(np.einsum("ij,ij->i", d, d))
        excess = np.maximum(r - self.radius, 0.0)
        energy = 0.5 * self.stiffness * float(np.sum(excess**2))
        # −∂U/∂x_i along the radial direction; with a centre of mass the reaction is spread over all atoms.
        g = np.where(excess > 0, self.stiffness * excess / np.where(r > 0, r, 1.0), 0.0)[:, None] * d
        forces = -g
        if self.center is None:
            forces += g.sum(axis=0) / len(positions)
        return energy, forces, np.zeros((3, 3))

    def describe(self) -> dict:
        return {"name": "ConfiningSphere", "radius": self.radius, "stiffness": self.stiffness,
                "center": "com" if self.center is None else str(self.center.tolist())}
