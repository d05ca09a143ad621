"""The potential interface every energy model implements, and its conformance check.

A :class:`Potential` computes, for one configuration and a neighbour list built with its
``cutoff`` (and ``full_neighbor_list`` flag), the energy (eV or ε), the forces (N, 3) and the
virial tensor (3, 3), ``W = -Σ_pairs d ⊗ ∂U/∂d`` (summed over pair displacements d = x_j − x_i;
for many-body potentials the equivalent per-neighbour sum). The configurational stress in ASE's
sign convention is ``-W / V`` and the virial pressure ``(N k_B T + tr W / 3) / V``.

:class:`ForceField` binds a potential to one system (species, cell, pbc) with its own neighbour
list and is what integrators and samplers call: ``energy_forces(x)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from hmc_core.neighbors import NeighborList


class PotentialError(ValueError):
    """The potential cannot evaluate this system (unknown species, atoms too close, …)."""


class Potential(ABC):
    """Energy model: subclasses set ``cutoff`` (length units) and implement :meth:`compute`."""

    cutoff: float
    full_neighbor_list: bool = False
    uses_neighbor_list: bool = True  # False: compute() ignores ``nlist`` (e.g. all-pairs cluster kernels)
    units: str = "metal"

    def check_species(self, species: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Raise :class:`PotentialError` if some species is not covered by the potential."""

    def prepare(self, species: np.ndarray) -> np.ndarray:
        """Map species (N,) to the internal type indices (N,) int32 passed to :meth:`compute`.

        Called once per system (not per step); raises :class:`PotentialError` for unknown species.
        """
        self.check_species(species)
        return np.ascontiguousarray(species, dtype=np.int32)

    @abstractmethod
    def compute(
        self, positions: np.ndarray, cell: np.ndarray, types: np.ndarray, nlist: NeighborList
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Energy, forces (N, 3) and virial (3, 3) for positions (N, 3); ``types`` from :meth:`prepare`."""

    def describe(self) -> dict:
        """Parameters as a flat dict of JSON-able values (stored as provenance)."""
        return {"name": type(self).__name__, "cutoff": self.cutoff}


class ForceField:
    """A potential bound to one system, with its own Verlet neighbour list.

    ``species`` (N,) atomic numbers (or type labels for reduced-unit potentials), ``cell`` (3, 3)
    rows are lattice vectors, ``pbc`` three booleans, ``skin`` in length units.
    Counts ``n_evaluations`` (force calls) and exposes the last virial and energy.
    """

    def __init__(self, potential: Potential, species, cell=None, pbc=(False, False, False), skin: float = 0.3):
        self.potential = potential
        self.species = np.ascontiguousarray(species, dtype=np.int32)
        self.cell = np.zeros((3, 3)) if cell is None else np.array(cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.asarray(pbc, dtype=bool).reshape(3)
        self.types = potential.prepare(self.species)
        self.nlist = NeighborList(potential.cutoff, skin, full=potential.full_neighbor_list)
        self._uses_nlist = potential.uses_neighbor_list
        if not self._uses_nlist and self.pbc.any():
            raise PotentialError(f"{type(potential).__name__} works on an open cluster or molecule only (it uses "
                                 "no neighbour list and ignores the cell); use it with pbc=(False, False, False), "
                                 "or a neighbour-list potential (e.g. LennardJones) for periodic systems")
        self.n_evaluations = 0
        self.virial = np.zeros((3, 3))
        self.energy = np.nan

    @property
    def n_atoms(self) -> int:
        return len(self.species)

    @property
    def volume(self) -> float:
        """Cell volume (length³); NaN unless all three directions are periodic."""
        return float(abs(np.linalg.det(self.cell))) if self.pbc.all() else float("nan")

    def set_cell(self, cell: np.ndarray) -> None:
        """Change the cell (e.g. a volume move); the neighbour list is rebuilt on the next call."""
        self.cell = np.array(cell, dtype=np.float64).reshape(3, 3)

    def energy_forces(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy and forces (N, 3) at ``positions``; periodic positions may be wrapped in place."""
        if positions.shape != (self.n_atoms, 3):
            raise ValueError(f"positions have shape {positions.shape}, expected ({self.n_atoms}, 3)")
        if not np.all(np.isfinite(positions)):
            return float("nan"), np.zeros_like(positions)
        if self._uses_nlist:
            self.nlist.update(positions, self.cell, self.pbc)
        energy, forces, virial = self.potential.compute(positions, self.cell, self.types, self.nlist)
        self.n_evaluations += 1
        self.energy, self.virial = float(energy), virial
        return float(energy), forces

    def __call__(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        return self.energy_forces(positions)

    def fused_integrator(self, name: str):
        """The potential's whole-trajectory kernel for integrator ``name`` (same signature as the registered
        integrators), or None: small systems whose force call is cheaper than the Python around it."""
        fused = getattr(self.potential, "fused_integrator", None)
        return None if fused is None or self.pbc.any() else fused(name)

    def record_evaluations(self, n: int, energy: float, virial=None) -> None:
        """Book-keeping for evaluations done inside a fused kernel."""
        self.n_evaluations += int(n)
        self.energy = float(energy)
        self.virial = np.zeros((3, 3)) if virial is None else virial


def _richardson(f, h: float) -> float:
    """df/dt at 0 by central differences at steps h and h/2 combined (Richardson): truncation error O(h⁴)."""
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(h / 2) - f(-h / 2)) / h
    return (4 * d2 - d1) / 3


def check_potential(potential: Potential, positions, species, cell=None, pbc=(False, False, False),
                    delta: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-6) -> dict:
    """Conformance check every potential must pass: finite energy, forces (N, 3) and virial (3, 3);
    forces = −∇E and (periodic cells) virial = −∂E/∂ε, both by finite differences; forces sum to zero
    (reported, not enforced: external fields may break it).

    Derivatives are central differences at steps ``delta`` and ``delta``/2 (length units, or strain)
    combined by Richardson extrapolation: truncation error O(δ⁴) (negligible at the default δ = 1e-5 for
    smooth potentials), round-off ~ε_mach |E| / δ (~1e-9 relative for |E| ~ 100). A small δ also keeps pairs
    from crossing a force discontinuity (a cutoff where only the energy is shifted) between the differenced
    points. A component passes when it deviates by at most
    ``atol + rtol·max(1, max|F|) + 100 ε_mach max(1, |E|) / δ`` (eV/Å, or ε/σ): at the defaults a force
    that is wrong by more than ~1e-5 relative (e.g. scaled by 1.0005) fails.

    positions (N, 3), cell (3, 3) in length units; species (N,). Returns the largest deviations
    (``force_error``, ``virial_error`` for periodic cells, ``net_force``) and ``energy``. Raises
    :class:`PotentialError` naming what failed, the largest deviation, the atom and component where it is.
    """
    positions = np.array(positions, dtype=np.float64)
    name = type(potential).__name__
    ff = ForceField(potential, species, cell, pbc, skin=0.0)
    e0, f0 = ff.energy_forces(positions.copy())
    w0 = np.asarray(ff.virial, dtype=np.float64).copy()
    f0 = np.asarray(f0, dtype=np.float64)
    if not np.isfinite(e0):
        raise PotentialError(f"{name}: the energy is {e0} for a configuration of {len(positions)} atoms")
    if f0.shape != positions.shape:
        raise PotentialError(f"{name}: forces have shape {f0.shape}, expected {positions.shape}")
    if w0.shape != (3, 3):
        raise PotentialError(f"{name}: the virial has shape {w0.shape}, expected (3, 3)")
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(w0))):
        raise PotentialError(f"{name}: forces or virial contain NaN or inf")
    roundoff = 100 * np.finfo(float).eps * max(1.0, abs(e0)) / delta

    def energy_along(i, a):
        def e(h):
            x = positions.copy()
            x[i, a] += h
            return ff.energy_forces(x)[0]
        return e

    fd = np.array([[-_richardson(energy_along(i, a), delta) for a in range(3)] for i in range(len(positions))])
    dev = np.abs(fd - f0).reshape(len(positions), 3)
    force_err = float(dev.max())
    force_tol = atol + rtol * max(1.0, float(np.abs(f0).max())) + roundoff
    if force_err > force_tol:
        i, a = np.unravel_index(int(np.argmax(dev)), dev.shape)
        raise PotentialError(
            f"{name}: forces are not −∇E: largest deviation {force_err:.3g} (tolerance {force_tol:.3g}) at atom {i}, "
            f"component {'xyz'[a]}: force {f0[i, a]:.10g}, −dE/dx by finite differences {fd[i, a]:.10g} "
            f"(ratio {f0[i, a] / fd[i, a] if fd[i, a] else float('nan'):.6g}); check the force expression or units")
    out = {"energy": e0, "force_error": force_err, "net_force": float(np.abs(f0.sum(0)).max())}
    if np.all(pbc):
        cell0 = np.array(cell, dtype=np.float64)

        def energy_strained(a, b):
            def e(h):
                eps = np.eye(3)
                eps[a, b] += h
                return ForceField(potential, species, cell0 @ eps, pbc, skin=0.0).energy_forces(positions @ eps)[0]
            return e

        fd_w = np.array([[-_richardson(energy_strained(a, b), delta) for b in range(3)] for a in range(3)])
        fd_w = 0.5 * (fd_w + fd_w.T)
        dev_w = np.abs(fd_w - 0.5 * (w0 + w0.T))
        virial_err = float(dev_w.max())
        virial_tol = atol + rtol * max(1.0, float(np.abs(w0).max())) + roundoff
        if virial_err > virial_tol:
            a, b = np.unravel_index(int(np.argmax(dev_w)), (3, 3))
            raise PotentialError(
                f"{name}: the virial is not −∂E/∂ε: largest deviation {virial_err:.3g} (tolerance {virial_tol:.3g}) "
                f"in component {'xyz'[a]}{'xyz'[b]}: virial {w0[a, b]:.10g}, by finite strain {fd_w[a, b]:.10g}; "
                "check the virial sum (W = −Σ d ⊗ ∂U/∂d) and any volume-dependent (tail) terms")
        out["virial_error"] = virial_err
    return out
