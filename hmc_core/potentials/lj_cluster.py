"""Lennard-Jones clusters (one species, open boundaries) with whole HMC trajectories in one Numba call.

For a cluster of tens of atoms a force evaluation is a few microseconds of arithmetic (N(N−1)/2 pairs),
so the Python around it (neighbour-list checks, array bookkeeping, the integrator loop) costs ~10× more
than the evaluation itself. This potential

* sums every pair directly (untruncated LJ, u = 4ε[(σ/r)¹² − (σ/r)⁶]; no neighbour list), and
* offers a *fused* velocity-Verlet trajectory (:meth:`LennardJonesCluster.fused_integrator`): all
  ``n_steps`` of kick–drift–force–kick run inside one compiled kernel. :class:`~hmc_core.hmc.HMCSampler`
  uses it automatically for ``integrator="verlet"``; the arithmetic is the same as
  :func:`hmc_core.integrators.velocity_verlet`, so trajectories agree to rounding.

An optional soft spherical wall about the centre of mass (radius R, stiffness k; energy
½k Σ max(0, |x_i − x_com| − R)², as :class:`~hmc_core.potentials.confinement.ConfiningSphere`) keeps the
cluster from evaporating (R = 2.25σ for LJ₃₈, Neirotti, Calvo, Freeman & Doll 2000).

Units: reduced (``units="lj"``, ε = σ = 1) or eV/Å (``units="metal"``, ε in eV, σ in Å); the virial is
returned as zeros (an open cluster has no pressure).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError
from hmc_core.potentials.confinement import confining_sphere_energy_forces
from hmc_core.potentials.lennard_jones import FAST_FINITE, lj_pair


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_FINITE)
def cluster_energy_forces(x, c12, c6, radius, stiffness):
    """All-pairs LJ energy and forces (N, 3), plus the wall about the centre of mass when radius > 0."""
    n = x.shape[0]
    f = np.zeros((n, 3))
    energy = 0.0
    for i in range(n - 1):
        xi0, xi1, xi2 = x[i, 0], x[i, 1], x[i, 2]
        fi0 = 0.0
        fi1 = 0.0
        fi2 = 0.0
        for j in range(i + 1, n):
            dx = x[j, 0] - xi0
            dy = x[j, 1] - xi1
            dz = x[j, 2] - xi2
            u, fr = lj_pair(dx * dx + dy * dy + dz * dz, c12, c6)
            energy += u
            fi0 -= fr * dx
            fi1 -= fr * dy
            fi2 -= fr * dz
            f[j, 0] += fr * dx
            f[j, 1] += fr * dy
            f[j, 2] += fr * dz
        f[i, 0] += fi0
        f[i, 1] += fi1
        f[i, 2] += fi2
    if radius > 0.0:
        e_wall, f_wall = confining_sphere_energy_forces(x, np.zeros(3), True, radius, stiffness)
        energy += e_wall
        for i in range(n):
            for a in range(3):
                f[i, a] += f_wall[i, a]
    return energy, f


@njit(cache=True, nogil=True, error_model="numpy")
def cluster_verlet_trajectory(x, p, inv_mass, forces, dt, n_steps, c12, c6, radius, stiffness):
    """``n_steps`` velocity-Verlet steps in place on x, p (N, 3); returns (energy, forces, evaluations).
    Stops early (after that step) when the energy is not finite, like the Python integrator."""
    n = x.shape[0]
    energy = np.nan
    f = forces.copy()
    half = 0.5 * dt
    done = 0
    for _ in range(n_steps):
        for i in range(n):
            for a in range(3):
                p[i, a] += half * f[i, a]
                x[i, a] += dt * inv_mass[i, a] * p[i, a]
        energy, f = cluster_energy_forces(x, c12, c6, radius, stiffness)
        done += 1
        for i in range(n):
            for a in range(3):
                p[i, a] += half * f[i, a]
        if not math.isfinite(energy):
            break
    return energy, f, done


class LennardJonesCluster(Potential):
    """Single-species LJ cluster, all pairs, optional confining wall (``radius`` None: no wall)."""

    full_neighbor_list = False
    uses_neighbor_list = False

    def __init__(self, epsilon: float = 1.0, sigma: float = 1.0, radius: float | None = None,
                 stiffness: float = 200.0, units: str = "lj"):
        for name, value in (("epsilon", epsilon), ("sigma", sigma), ("stiffness", stiffness)):
            if not (np.isfinite(value) and value > 0):
                raise PotentialError(f"LennardJonesCluster: {name} must be a positive number, got {value}")
        if radius is not None and not (np.isfinite(radius) and radius > 0):
            raise PotentialError(f"LennardJonesCluster: confining radius must be > 0 or None, got {radius}")
        self.epsilon, self.sigma, self.units = float(epsilon), float(sigma), units
        self.radius = None if radius is None else float(radius)
        self.stiffness = float(stiffness)
        self.c12 = 4.0 * self.epsilon * self.sigma**12
        self.c6 = 4.0 * self.epsilon * self.sigma**6
        self.cutoff = 1e-3  # no neighbour list is built or used

    @property
    def _wall(self) -> tuple[float, float]:
        return (0.0 if self.radius is None else self.radius), self.stiffness

    def compute(self, positions, cell, types, nlist: NeighborList):
        energy, forces = cluster_energy_forces(positions, self.c12, self.c6, *self._wall)
        return energy, forces, np.zeros((3, 3))

    def fused_integrator(self, name: str):
        """A whole-trajectory kernel with the integrator signature, or None if ``name`` has none."""
        if name != "verlet":
            return None
        c12, c6 = self.c12, self.c6
        radius, stiffness = self._wall

        def fused_velocity_verlet(x, p, inv_mass, force_fn, dt, n_steps, energy, forces):
            energy, forces, done = cluster_verlet_trajectory(x, p, inv_mass, forces, dt, n_steps, c12, c6,
                                                             radius, stiffness)
            force_fn.record_evaluations(done, energy)
            return energy, forces

        return fused_velocity_verlet

    def minimize(self, positions, max_iter: int = 5000, gtol: float = 1e-6) -> tuple[float, np.ndarray, int]:
        """Local minimum (wall included) from ``positions`` (N, 3): (energy, positions, force evaluations)."""
        return minimize_cluster(self, positions, max_iter, gtol)

    def describe(self) -> dict:
        return {"name": "LennardJonesCluster", "units": self.units, "epsilon": self.epsilon, "sigma": self.sigma,
                "radius": -1.0 if self.radius is None else self.radius, "stiffness": self.stiffness}


@njit(cache=True, nogil=True, error_model="numpy")
def cluster_minimize(x0, c12, c6, radius, stiffness, max_iter, gtol, memory):
    """Local minimisation by L-BFGS (two-loop recursion, Nocedal & Wright 2006, Alg. 7.4) with a
    backtracking Armijo line search; stops when max |F| < gtol or when a step no longer lowers the energy
    (rounding floor). Returns (energy, x (N, 3), evaluations, iterations)."""
    n = x0.shape[0]
    dim = 3 * n
    x = x0.copy().reshape(dim)
    e, f = cluster_energy_forces(x.reshape(n, 3), c12, c6, radius, stiffness)
    g = -f.reshape(dim).copy()
    s_hist = np.zeros((memory, dim))
    y_hist = np.zeros((memory, dim))
    rho = np.zeros(memory)
    alpha = np.zeros(memory)
    n_eval = 1
    k_stored = 0
    head = 0
    it = 0
    while it < max_iter:
        if np.max(np.abs(g)) < gtol or not math.isfinite(e):
            break
        # two-loop recursion: d = −H g
        q = g.copy()
        for m in range(k_stored):
            idx = (head - 1 - m) % memory
            alpha[idx] = rho[idx] * np.dot(s_hist[idx], q)
            q -= alpha[idx] * y_hist[idx]
        if k_stored > 0:
            last = (head - 1) % memory
            q *= np.dot(s_hist[last], y_hist[last]) / np.dot(y_hist[last], y_hist[last])
        else:
            q *= min(1.0, 0.1 / max(np.max(np.abs(g)), 1e-300))  # first step: at most 0.1 length units
        for m in range(k_stored - 1, -1, -1):
            idx = (head - 1 - m) % memory
            beta = rho[idx] * np.dot(y_hist[idx], q)
            q += (alpha[idx] - beta) * s_hist[idx]
        d = -q
        slope = np.dot(g, d)
        if slope >= 0.0:  # not a descent direction: restart from steepest descent
            k_stored = 0
            d = -g * min(1.0, 0.1 / max(np.max(np.abs(g)), 1e-300))
            slope = np.dot(g, d)
        step_max = np.max(np.abs(d))
        t = 1.0 if step_max <= 0.5 else 0.5 / step_max  # never move an atom by more than 0.5 per step
        accepted = False
        for _ in range(40):
            x_new = x + t * d
            e_new, f_new = cluster_energy_forces(x_new.reshape(n, 3), c12, c6, radius, stiffness)
            n_eval += 1
            if math.isfinite(e_new) and e_new <= e + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        g_new = -f_new.reshape(dim).copy()
        s = x_new - x
        y = g_new - g
        sy = np.dot(s, y)
        if sy > 1e-12:
            s_hist[head] = s
            y_hist[head] = y
            rho[head] = 1.0 / sy
            head = (head + 1) % memory
            k_stored = min(k_stored + 1, memory)
        stalled = e - e_new <= 1e-15 * max(1.0, abs(e))  # at the rounding floor: no further progress possible
        x, e, g = x_new, e_new, g_new
        it += 1
        if stalled:
            break
    return e, x.reshape(n, 3), n_eval, it


def minimize_cluster(potential: LennardJonesCluster, positions, max_iter: int = 5000, gtol: float = 1e-6,
                     memory: int = 10) -> tuple[float, np.ndarray, int]:
    """Local minimum of ``potential`` from ``positions`` (N, 3): (energy, positions, force evaluations)."""
    radius, stiffness = potential._wall
    e, x, n_eval, _ = cluster_minimize(np.ascontiguousarray(positions, dtype=np.float64), potential.c12, potential.c6,
                                       radius, stiffness, int(max_iter), float(gtol), int(memory))
    return float(e), x, int(n_eval)
