"""Harmonic bond-stretch and angle-bend terms: a cheap, stiff inner part for multiple-time-step HMC.

U = Σ_bonds ½ k_b (r − r₀)² + Σ_angles ½ k_θ (θ − θ₀)², with r = |x_i − x_j| and θ the angle i–j–k at
the apex j. Both are invariant under rotation and under torsion about any bond, so for a flexible
molecule the term stays valid in every conformer (a Cartesian Hessian quadratic form would not).

:func:`bonded_topology` finds bonds from covalent radii (ASE's table, 1.2 × the sum) and all angles
between two bonds sharing an atom; :func:`fit_harmonic_bonded` takes r₀ and θ₀ at a (relaxed)
structure and the force constants from a non-negative least-squares fit of Σ_q k_q b_q b_qᵀ
(b_q = ∂q/∂x, Wilson's B row) to the (mass-weighted) Cartesian Hessian of the reference potential,
from central differences of forces (6N force evaluations). The fitted term need not be exact: in an
MTS split (inner = this, outer = reference − this) any inner part keeps HMC exact; a good one only
makes the outer force smooth.

Units: length Å, energy eV, angles rad, k_b eV/Å², k_θ eV/rad² (or reduced units alike).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError


def bond_lengths(x: np.ndarray, bonds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bond lengths (B,) and unit vectors (B, 3) from atom j to atom i for bonds (B, 2) = (i, j)."""
    d = x[bonds[:, 0]] - x[bonds[:, 1]]
    r = np.linalg.norm(d, axis=1)
    return r, d / r[:, None]


def angle_values(x: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles θ (A,) in rad for angles (A, 3) = (i, j apex, k), and ∂θ/∂x_i, ∂θ/∂x_k (A, 3) each.

    ∂θ/∂x_j = −(∂θ/∂x_i + ∂θ/∂x_k). Singular at θ = 0 or π (not met by sp/sp²/sp³ bend angles < 179°).
    """
    u = x[angles[:, 0]] - x[angles[:, 1]]
    v = x[angles[:, 2]] - x[angles[:, 1]]
    ru, rv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    c = np.clip(np.einsum("ij,ij->i", u, v) / (ru * rv), -1.0, 1.0)
    theta = np.arccos(c)
    s = np.maximum(np.sqrt(1.0 - c * c), 1e-12)
    gi = -(v / (ru * rv)[:, None] - (c / ru**2)[:, None] * u) / s[:, None]
    gk = -(u / (ru * rv)[:, None] - (c / rv**2)[:, None] * v) / s[:, None]
    return theta, gi, gk


class HarmonicBonded(Potential):
    """Harmonic bonds (i, j, r₀, k_b) and angles (i, j, k, θ₀, k_θ) over fixed atom indices.

    ``bonds`` (B, 2) int, ``r0``/``kb`` (B,); ``angles`` (A, 3) int with the apex in the middle,
    ``theta0``/``ktheta`` (A,). No neighbour list is used (the topology is fixed).
    """

    cutoff = 1e-3
    full_neighbor_list = False
    uses_neighbor_list = False  # fixed topology; bond vectors are not minimum images, so open systems only

    def __init__(self, bonds, r0, kb, angles=None, theta0=None, ktheta=None, units: str = "metal"):
        self.bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        self.r0, self.kb = np.asarray(r0, float).ravel(), np.asarray(kb, float).ravel()
        self.angles = np.zeros((0, 3), np.int64) if angles is None else np.asarray(angles, np.int64).reshape(-1, 3)
        self.theta0 = np.zeros(0) if theta0 is None else np.asarray(theta0, float).ravel()
        self.ktheta = np.zeros(0) if ktheta is None else np.asarray(ktheta, float).ravel()
        if len(self.r0) != len(self.bonds) or len(self.kb) != len(self.bonds):
            raise PotentialError(f"{len(self.bonds)} bonds but {len(self.r0)} r0 and {len(self.kb)} kb values")
        if len(self.theta0) != len(self.angles) or len(self.ktheta) != len(self.angles):
            raise PotentialError(f"{len(self.angles)} angles but {len(self.theta0)} theta0 and "
                                 f"{len(self.ktheta)} ktheta values")
        if np.any(self.bonds[:, 0] == self.bonds[:, 1]):
            raise PotentialError("a bond joins an atom to itself")
        self.units = units

    def check_species(self, species):
        top = max(int(self.bonds.max(initial=-1)), int(self.angles.max(initial=-1)))
        if top >= len(species) or min(int(self.bonds.min(initial=0)), int(self.angles.min(initial=0))) < 0:
            raise PotentialError(f"bond/angle indices reach atom {top} but the system has {len(species)} atoms")

    def compute(self, positions, cell, types, nlist: NeighborList):
        x = positions
        f = np.zeros_like(x)
        energy = 0.0
        if len(self.bonds):
            r, e = bond_lengths(x, self.bonds)
            dr = r - self.r0
            energy += 0.5 * float(np.sum(self.kb * dr * dr))
            fb = -(self.kb * dr)[:, None] * e  # force on atom i; atom j gets the opposite
            np.add.at(f, self.bonds[:, 0], fb)
            np.add.at(f, self.bonds[:, 1], -fb)
        if len(self.angles):
            theta, gi, gk = angle_values(x, self.angles)
            dth = theta - self.theta0
            energy += 0.5 * float(np.sum(self.ktheta * dth * dth))
            w = -(self.ktheta * dth)[:, None]
            np.add.at(f, self.angles[:, 0], w * gi)
            np.add.at(f, self.angles[:, 2], w * gk)
            np.add.at(f, self.angles[:, 1], -w * (gi + gk))
        virial = x.T @ f  # Σ_i x_i ⊗ F_i: translation invariant since Σ F_i = 0
        return energy, f, 0.5 * (virial + virial.T)

    def describe(self) -> dict:
        return {"name": "HarmonicBonded", "cutoff": self.cutoff, "n_bonds": len(self.bonds),
                "n_angles": len(self.angles), "units": self.units}


def bonded_topology(numbers, positions, scale: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Bonds (B, 2) where r < scale × (sum of covalent radii), and angles (A, 3) (apex in the middle)."""
    from ase.data import covalent_radii

    numbers = np.asarray(numbers, int)
    x = np.asarray(positions, float)
    rad = covalent_radii[numbers]
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    i, j = np.nonzero(np.triu(d < scale * (rad[:, None] + rad[None]), k=1))
    bonds = np.stack([i, j], axis=1)
    neighbours = [[] for _ in numbers]
    for a, b in bonds:
        neighbours[a].append(b)
        neighbours[b].append(a)
    angles = [(nb[p], apex, nb[q]) for apex, nb in enumerate(neighbours)
              for p in range(len(nb)) for q in range(p + 1, len(nb))]
    return bonds, np.array(angles, np.int64).reshape(-1, 3)


def cartesian_hessian(force_fn: Callable[[np.ndarray], tuple[float, np.ndarray]], positions,
                      delta: float = 5e-3) -> np.ndarray:
    """Symmetrised Cartesian Hessian (3N, 3N) from central differences of forces (6N force evaluations)."""
    x0 = np.array(positions, dtype=np.float64)
    n = x0.size
    h = np.zeros((n, n))
    for a in range(n):
        v = np.zeros(n)
        v[a] = delta
        _, fp = force_fn(x0 + v.reshape(x0.shape))
        _, fm = force_fn(x0 - v.reshape(x0.shape))
        h[:, a] = (np.asarray(fm) - np.asarray(fp)).ravel() / (2.0 * delta)
    return 0.5 * (h + h.T)


def fit_harmonic_bonded(force_fn: Callable[[np.ndarray], tuple[float, np.ndarray]], positions, numbers,
                        masses=None, delta: float = 5e-3, units: str = "metal") -> tuple[HarmonicBonded, int]:
    """Harmonic bonds and angles fitted to ``force_fn`` at ``positions`` (a minimum); returns (potential, calls).

    r₀, θ₀ are taken at ``positions``. At that point the Hessian of the harmonic term is Σ_q k_q b_q b_qᵀ
    (b_q = ∂q/∂x), so the force constants are the non-negative least-squares fit (``scipy.optimize.nnls``)
    of that sum to the Cartesian Hessian of ``force_fn`` (central differences). With ``masses`` (N,) both
    are mass-weighted, M^-½ H M^-½, so the fit is best for the fastest (hydrogen) vibrations, which is what
    an MTS inner part must capture. Fitting each k_q alone (bᵀHb/|b|⁴) instead over-counts the couplings of
    redundant coordinates (for butane the angle constants came out 4× too stiff, and the outer part
    xTB − inner had imaginary frequencies of 2,300 cm⁻¹). ``calls``: force evaluations spent (6N).
    """
    from scipy.optimize import nnls

    x0 = np.array(positions, dtype=np.float64)
    bonds, angles = bonded_topology(numbers, x0)
    if len(bonds) == 0:
        raise ValueError("no bonds found (atoms farther apart than 1.2 × the sum of covalent radii)")
    if delta <= 0:
        raise ValueError(f"finite-difference step must be > 0, got {delta}")
    hess = cartesian_hessian(force_fn, x0, delta)
    rows = []
    r0, e = bond_lengths(x0, bonds)
    for q, (i, j) in enumerate(bonds):
        b = np.zeros_like(x0)
        b[i], b[j] = e[q], -e[q]
        rows.append(b.ravel())
    theta0 = np.zeros(0)
    if len(angles):
        theta0, gi, gk = angle_values(x0, angles)
        for q, (i, j, k) in enumerate(angles):
            b = np.zeros_like(x0)
            b[i], b[k], b[j] = gi[q], gk[q], -(gi[q] + gk[q])
            rows.append(b.ravel())
    bmat = np.array(rows)
    w = np.ones(x0.size) if masses is None else np.repeat(1.0 / np.sqrt(np.asarray(masses, float)), 3)
    bw = bmat * w[None, :]
    design = np.einsum("qa,qb->abq", bw, bw).reshape(x0.size**2, len(rows))
    k, _ = nnls(design, (w[:, None] * hess * w[None, :]).ravel())
    if not np.any(k > 0):
        raise ValueError("no positive force constant fits the Hessian: the structure is not at a minimum; "
                         "relax it first")
    return HarmonicBonded(bonds, r0, k[:len(bonds)], angles, theta0, k[len(bonds):], units), 2 * x0.size
