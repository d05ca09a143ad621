"""Time-reversible, volume-preserving integrators for Hamiltonian dynamics.

Each integrator advances ``(x, p)`` by ``n_steps`` steps of size ``dt`` (internal time units) with
``x' = M⁻¹ p`` and ``p' = F(x)``; ``inv_mass`` is (N, 3), the diagonal of M⁻¹ per degree of
freedom (per-atom masses repeated, or a preconditioning mass matrix). ``force_fn(x) -> (E, F)``.
All take the force at the start and return the final energy and force, so consecutive calls
evaluate each force once.

* ``verlet``: velocity Verlet (leapfrog, kick–drift–kick), 1 force evaluation per step, ΔH = O(dt²).
* ``omelyan``: Omelyan–Mryglod–Folk second-order minimum-norm scheme (2002), λ ≈ 0.1932,
  kick(λ) drift(½) kick(1−2λ) drift(½) kick(λ); 2 evaluations per step, error constant ~10× smaller.
* ``force_gradient``: the fourth-order force-gradient scheme of Omelyan, Mryglod & Folk (2003) in the
  form used for HMC by Kennedy, Clark & Silva (2009): kick(⅙) drift(½) kick*(⅔) drift(½) kick(⅙), where
  kick* uses the force of the modified potential Ũ = U − (dt²/48)·∇U·M⁻¹∇U, i.e.
  F̃ = F − (dt²/24)·H·M⁻¹F (H the Hessian; the weight ⅔ × 1/48 is the 1/72 of Kennedy et al.).
  ΔH = O(dt⁴). H·v comes from ``force_fn.hessian_vector(x, v)`` if the force callable has one, else
  from a central difference of forces along v (relative error ~1e-8): 4 force evaluations per step.
* ``force_gradient_hf``: the Hessian-free approximation of Yin & Mawhinney (2011):
  F̃ ≈ F(x + (dt²/24)·M⁻¹F(x)), one extra force at a shifted position; still O(dt⁴); 3 per step.
* ``mts``: multiple time steps (Sexton–Weingarten / r-RESPA) for a split force callable
  (:class:`hmc_core.mts.SplitForceField`, which also sets the inner integrator and the number of inner
  steps): half-kick with the slow (outer) force, ``n_inner`` steps of any registered integrator on the
  fast (inner) force, half-kick with the outer force. Counts 1 outer evaluation per outer step.

Integrators are registered in :data:`INTEGRATORS` by name; later modules add more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

ForceFn = Callable[[np.ndarray], tuple[float, np.ndarray]]
OMELYAN_LAMBDA = 0.1931833275037836


@njit(cache=True, nogil=True, error_model="numpy")
def kick(p, forces, h):
    """p += h·F (in place)."""
    n = p.shape[0]
    for i in range(n):
        for a in range(3):
            p[i, a] += h * forces[i, a]


@njit(cache=True, nogil=True, error_model="numpy")
def drift(x, p, inv_mass, h):
    """x += h·M⁻¹p (in place)."""
    n = x.shape[0]
    for i in range(n):
        for a in range(3):
            x[i, a] += h * inv_mass[i, a] * p[i, a]


@njit(cache=True, nogil=True, error_model="numpy")
def kinetic_energy(p, inv_mass):
    """½ pᵀM⁻¹p."""
    k = 0.0
    for i in range(p.shape[0]):
        for a in range(3):
            k += p[i, a] * p[i, a] * inv_mass[i, a]
    return 0.5 * k


def velocity_verlet(x, p, inv_mass, force_fn: ForceFn, dt: float, n_steps: int, energy: float, forces):
    """Velocity Verlet; updates x and p in place, returns (energy, forces) at the end."""
    for _ in range(n_steps):
        kick(p, forces, 0.5 * dt)
        drift(x, p, inv_mass, dt)
        energy, forces = force_fn(x)
        kick(p, forces, 0.5 * dt)
        if not np.isfinite(energy):
            break
    return energy, forces


def omelyan(x, p, inv_mass, force_fn: ForceFn, dt: float, n_steps: int, energy: float, forces,
            lam: float = OMELYAN_LAMBDA):
    """Omelyan 2MN scheme; updates x and p in place, returns (energy, forces) at the end."""
    for _ in range(n_steps):
        kick(p, forces, lam * dt)
        drift(x, p, inv_mass, 0.5 * dt)
        energy, forces = force_fn(x)
        kick(p, forces, (1.0 - 2.0 * lam) * dt)
        drift(x, p, inv_mass, 0.5 * dt)
        energy, forces = force_fn(x)
        kick(p, forces, lam * dt)
        if not np.isfinite(energy):
            break
    return energy, forces


FG_SHIFT = 1.0 / 24.0  # F̃ = F − (dt²/24) H M⁻¹F  (Ũ = U − dt²/48 |∇U|²_{M⁻¹}, weight ⅔ of the step)
HVP_STEP = 1e-4  # length of the central-difference displacement for H·v (largest component)


def hessian_vector(force_fn: ForceFn, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H·v (energy/length² × v) at x: ``force_fn.hessian_vector`` if present, else the central difference
    (F(x − δv) − F(x + δv)) / 2δ with |δv|_max = ``HVP_STEP``; 2 force evaluations."""
    analytic = getattr(force_fn, "hessian_vector", None)
    if analytic is not None:
        return analytic(x, v)
    vmax = float(np.abs(v).max())
    if vmax == 0.0 or not np.isfinite(vmax):
        return np.zeros_like(v)
    delta = HVP_STEP / vmax
    _, f_plus = force_fn(x + delta * v)
    _, f_minus = force_fn(x - delta * v)
    return (f_minus - f_plus) / (2.0 * delta)


def _force_gradient_steps(x, p, inv_mass, force_fn: ForceFn, dt, n_steps, energy, forces, hessian_free: bool):
    for _ in range(n_steps):
        kick(p, forces, dt / 6.0)
        drift(x, p, inv_mass, 0.5 * dt)
        energy, forces = force_fn(x)
        shift = FG_SHIFT * dt * dt
        if hessian_free:
            _, modified = force_fn(x + shift * inv_mass * forces)
        else:
            modified = forces - shift * hessian_vector(force_fn, x, inv_mass * forces)
        kick(p, modified, 2.0 * dt / 3.0)
        drift(x, p, inv_mass, 0.5 * dt)
        energy, forces = force_fn(x)
        kick(p, forces, dt / 6.0)
        if not np.isfinite(energy):
            break
    return energy, forces


def force_gradient(x, p, inv_mass, force_fn: ForceFn, dt: float, n_steps: int, energy: float, forces):
    """Fourth-order force-gradient integrator (exact H·M⁻¹F); updates x, p in place, returns (E, F)."""
    return _force_gradient_steps(x, p, inv_mass, force_fn, dt, n_steps, energy, forces, hessian_free=False)


def force_gradient_hessian_free(x, p, inv_mass, force_fn: ForceFn, dt: float, n_steps: int, energy: float,
                                forces):
    """Fourth-order force-gradient integrator, Hessian-free (Yin–Mawhinney); in place, returns (E, F)."""
    return _force_gradient_steps(x, p, inv_mass, force_fn, dt, n_steps, energy, forces, hessian_free=True)


def multiple_time_step(x, p, inv_mass, force_fn, dt: float, n_steps: int, energy: float, forces):
    """r-RESPA: outer half-kick, ``force_fn.n_inner`` inner steps, outer half-kick (per outer step dt).

    ``force_fn`` must be a split force callable (:class:`hmc_core.mts.SplitForceField`) with
    ``outer_energy_forces``, ``inner_energy_forces``, ``n_inner``, ``inner_integrator``; returns the
    total energy and forces at the end.
    """
    if not hasattr(force_fn, "outer_energy_forces"):
        raise ValueError("integrator 'mts' needs a split force field (hmc_core.mts.split_forcefield)")
    inner = get_integrator(force_fn.inner_integrator)
    n_inner = force_fn.n_inner
    e_out, f_out = force_fn.outer_energy_forces(x)
    e_in, f_in = force_fn.inner_energy_forces(x)
    for _ in range(n_steps):
        kick(p, f_out, 0.5 * dt)
        e_in, f_in = inner(x, p, inv_mass, force_fn.inner_energy_forces, dt / n_inner, n_inner, e_in, f_in)
        e_out, f_out = force_fn.outer_energy_forces(x)
        kick(p, f_out, 0.5 * dt)
        if not np.isfinite(e_in + e_out):
            break
    return force_fn.combine(x, e_in, f_in, e_out, f_out)


INTEGRATORS: dict[str, Callable] = {
    "verlet": velocity_verlet,
    "omelyan": omelyan,
    "force_gradient": force_gradient,
    "force_gradient_hf": force_gradient_hessian_free,
    "mts": multiple_time_step,
}
FORCE_EVALUATIONS_PER_STEP: dict[str, int] = {
    "verlet": 1, "omelyan": 2, "force_gradient": 4, "force_gradient_hf": 3, "mts": 1,
}


def get_integrator(name: str) -> Callable:
    try:
        return INTEGRATORS[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}") from None
