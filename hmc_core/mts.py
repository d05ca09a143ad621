"""Multiple time steps (Sexton & Weingarten 1992; r-RESPA, Tuckerman, Berne & Martyna 1992).

The potential is split U = U_inner + U_outer into a stiff, cheap part integrated with the small step
dt / n_inner and a smooth, expensive part integrated with the outer step dt. One outer step is
kick(½ dt, F_outer) · [n_inner steps of any registered integrator on F_inner] · kick(½ dt, F_outer),
which is time reversible and volume preserving, so HMC with ``integrator="mts"`` stays exact.

* :func:`split_forcefield` binds any two potentials (inner, outer) to one system.
* :func:`split_lennard_jones` splits a Lennard-Jones potential at a switching radius with a C²
  switch S(r) (1 below ``r_inner − width``, 0 above ``r_inner``):
  u_inner = (u − u_shift)·S, u_outer = (u − u_shift)·(1 − S); their sum is the original potential.
  A fitted potential can be split the same way with :class:`~hmc_core.potentials.combined.SumPotential`:
  inner = a pair repulsion, outer = SumPotential([fitted, repulsion], weights=[1, −1]).

Cost accounting: ``n_evaluations`` counts outer (expensive) evaluations, ``n_inner_evaluations`` the
inner ones; a full evaluation counts once in each.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hmc_core.integrators import get_integrator
from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import ForceField, Potential, PotentialError
from hmc_core.potentials.combined import SumPotential
from hmc_core.potentials.lennard_jones import LennardJones, lj_pair
from hmc_core.potentials.pair_kernels import add_pair_force, pair_displacement, symmetrize_upper


@njit(cache=True, nogil=True, error_model="numpy")
def switch(r, r_on, r_off):
    """C² switch S(r) = 1 − 10t³ + 15t⁴ − 6t⁵, t = (r − r_on)/(r_off − r_on) clipped to [0, 1]; returns (S, dS/dr)."""
    if r <= r_on:
        return 1.0, 0.0
    if r >= r_off:
        return 0.0, 0.0
    w = r_off - r_on
    t = (r - r_on) / w
    t2 = t * t
    return 1.0 - t2 * t * (10.0 - 15.0 * t + 6.0 * t2), -30.0 * t2 * (1.0 - 2.0 * t + t2) / w


@njit(cache=True, nogil=True, error_model="numpy")
def switched_lj_energy_forces(x, types, offsets, nbr, codes, shifts, c12, c6, rc2, eshift, r_on, r_off, outer):
    """Energy, forces (N, 3), virial (3, 3) of the inner (outer=False: (u−u_c)·S) or outer ((u−u_c)·(1−S)) part."""
    n = x.shape[0]
    f = np.zeros((n, 3))
    w = np.zeros((3, 3))
    energy = 0.0
    for i in range(n):
        ti = types[i]
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            tj = types[j]
            dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 >= rc2[ti, tj] or (not outer and r2 >= r_off * r_off):
                continue
            u, fr = lj_pair(r2, c12[ti, tj], c6[ti, tj])
            u -= eshift[ti, tj]
            r = np.sqrt(r2)
            sw, dsw = switch(r, r_on, r_off)
            if outer:
                sw, dsw = 1.0 - sw, -dsw
            energy += u * sw
            add_pair_force(f, w, i, j, dx, dy, dz, fr * sw - u * dsw / r)  # −d(u·S)/dr / r
    symmetrize_upper(w)
    return energy, f, w


class SwitchedLennardJones(Potential):
    """The inner (``outer=False``) or outer part of a Lennard-Jones potential split at [r_on, r_off]."""

    full_neighbor_list = False

    def __init__(self, lj: LennardJones, r_on: float, r_off: float, outer: bool):
        if lj.tail:
            raise PotentialError("split a Lennard-Jones potential without tail correction (add it to the outer part)")
        self.lj, self.r_on, self.r_off, self.outer = lj, float(r_on), float(r_off), bool(outer)
        self.units = lj.units
        self.cutoff = lj.cutoff if outer else self.r_off

    def prepare(self, species):
        return self.lj.prepare(species)

    def compute(self, positions, cell, types, nlist: NeighborList):
        lj = self.lj
        return switched_lj_energy_forces(positions, types, nlist.offsets, nlist.neighbors, nlist.codes,
                                         nlist.shifts, lj.c12, lj.c6, lj.rc2, lj.eshift, self.r_on, self.r_off,
                                         self.outer)

    def describe(self) -> dict:
        return {**self.lj.describe(), "name": "SwitchedLennardJones", "part": "outer" if self.outer else "inner",
                "r_on": self.r_on, "r_off": self.r_off}


def split_lennard_jones(lj: LennardJones, r_inner: float, width: float = 0.3) -> tuple[Potential, Potential]:
    """(inner, outer) parts of ``lj`` switched off over [r_inner − width, r_inner] (length units)."""
    if not (np.isfinite(width) and width > 0):
        raise PotentialError(f"switching width must be > 0, got {width}")
    if not (np.isfinite(r_inner) and r_inner - width > 0):
        raise PotentialError(f"inner radius {r_inner} must exceed the switching width {width}")
    if r_inner > float(lj.rc.min()):
        raise PotentialError(f"inner cutoff {r_inner} lies beyond the outer cutoff {float(lj.rc.min())}; "
                             "choose r_inner below the Lennard-Jones cutoff")
    return (SwitchedLennardJones(lj, r_inner - width, r_inner, outer=False),
            SwitchedLennardJones(lj, r_inner - width, r_inner, outer=True))


class SplitForceField(ForceField):
    """A force field U = U_inner + U_outer whose parts can be evaluated separately (for ``integrator="mts"``).

    ``n_inner``: inner steps per outer step (≥ 1); ``inner_integrator``: any registered integrator name
    except "mts". Calling it (``energy_forces``) gives the total, like a plain :class:`ForceField`.
    """

    def __init__(self, inner: Potential, outer: Potential, species, cell=None, pbc=(False, False, False),
                 skin: float = 0.3, n_inner: int = 4, inner_integrator: str = "verlet"):
        if int(n_inner) != n_inner or n_inner < 1:
            raise ValueError(f"n_inner must be an integer ≥ 1, got {n_inner}")
        get_integrator(inner_integrator)
        if inner_integrator == "mts":
            raise ValueError("the inner integrator of a multiple-time-step split cannot be 'mts' itself")
        super().__init__(SumPotential([inner, outer]), species, cell, pbc, skin)
        self.inner, self.outer = inner, outer
        self.inner_types, self.outer_types = inner.prepare(self.species), outer.prepare(self.species)
        self.n_inner, self.inner_integrator = int(n_inner), inner_integrator
        self.n_inner_evaluations = 0
        self._virial_inner = np.zeros((3, 3))
        self._virial_outer = np.zeros((3, 3))
        self._cache: list[tuple] = []  # (x, e_in, f_in, w_in, e_out, f_out, w_out) of the last two full points

    def set_cell(self, cell: np.ndarray) -> None:
        super().set_cell(cell)
        self._cache = []

    def _lookup(self, positions):
        for entry in self._cache:
            if np.array_equal(entry[0], positions):
                return entry
        return None

    def _remember(self, positions, e_in, f_in, e_out, f_out):
        self._cache = [(positions.copy(), e_in, f_in, self._virial_inner.copy(), e_out, f_out,
                        self._virial_outer.copy())] + self._cache[:1]

    def inner_energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Inner-part energy and forces (N, 3) at ``positions``."""
        hit = self._lookup(positions)
        if hit is not None:
            self._virial_inner = hit[3]
            return hit[1], hit[2]
        if not np.all(np.isfinite(positions)):
            return float("nan"), np.zeros_like(positions)
        self.nlist.update(positions, self.cell, self.pbc)
        e, f, w = self.inner.compute(positions, self.cell, self.inner_types, self.nlist)
        self.n_inner_evaluations += 1
        self._virial_inner = w
        return float(e), f

    def outer_energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Outer-part energy and forces (N, 3) at ``positions``."""
        hit = self._lookup(positions)
        if hit is not None:
            self._virial_outer = hit[6]
            return hit[4], hit[5]
        if not np.all(np.isfinite(positions)):
            return float("nan"), np.zeros_like(positions)
        self.nlist.update(positions, self.cell, self.pbc)
        e, f, w = self.outer.compute(positions, self.cell, self.outer_types, self.nlist)
        self.n_evaluations += 1
        self._virial_outer = w
        return float(e), f

    def combine(self, positions, e_in, f_in, e_out, f_out) -> tuple[float, np.ndarray]:
        """Total energy and forces from the parts last evaluated at ``positions`` (remembered for reuse)."""
        self.energy = float(e_in + e_out)
        self.virial = self._virial_inner + self._virial_outer
        self._remember(positions, e_in, f_in, e_out, f_out)
        return self.energy, f_in + f_out

    def energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Total energy and forces (one inner and one outer evaluation)."""
        if positions.shape != (self.n_atoms, 3):
            raise ValueError(f"positions have shape {positions.shape}, expected ({self.n_atoms}, 3)")
        e_in, f_in = self.inner_energy_forces(positions)
        e_out, f_out = self.outer_energy_forces(positions)
        return self.combine(positions, e_in, f_in, e_out, f_out)


def split_forcefield(inner: Potential, outer: Potential, species, cell=None, pbc=(False, False, False),
                     skin: float = 0.3, n_inner: int = 4, inner_integrator: str = "verlet") -> SplitForceField:
    """Bind an (inner, outer) split to one system; use with ``HMCConfig(integrator="mts")``."""
    if inner.cutoff > outer.cutoff:
        raise PotentialError(f"inner cutoff {inner.cutoff} lies beyond the outer cutoff {outer.cutoff}; the "
                             "inner part should be the short-ranged, stiff one")
    return SplitForceField(inner, outer, species, cell, pbc, skin, n_inner, inner_integrator)
