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


def check_potential(potential: Potential, positions, species, cell=None, pbc=(False, False, False),
                    delta: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-6) -> dict:
    """Conformance check every potential must pass: shapes, finiteness, forces = −∇E by central
    finite differences, virial = −∂E/∂ε by finite strain (periodic cells), forces sum to zero.

    Returns the largest deviations; raises AssertionError on a failure.
    """
    positions = np.array(positions, dtype=np.float64)
    ff = ForceField(potential, species, cell, pbc, skin=0.0)
    e0, f0 = ff.energy_forces(positions.copy())
    w0 = ff.virial.copy()
    assert np.isfinite(e0), "energy is not finite"
    assert f0.shape == positions.shape, f"forces have shape {f0.shape}, expected {positions.shape}"
    assert w0.shape == (3, 3), "virial must be 3×3"
    fd = np.zeros_like(positions)
    for i in range(len(positions)):
        for a in range(3):
            xp = positions.copy()
            xp[i, a] += delta
            xm = positions.copy()
            xm[i, a] -= delta
            fd[i, a] = -(ff.energy_forces(xp)[0] - ff.energy_forces(xm)[0]) / (2 * delta)
    force_err = float(np.abs(fd - f0).max())
    scale = max(1.0, float(np.abs(f0).max()))
    assert force_err <= atol + rtol * scale * 1e3, f"forces differ from −∇E by {force_err:g}"
    out = {"energy": e0, "force_error": force_err, "net_force": float(np.abs(f0.sum(0)).max())}
    if np.all(pbc):
        fd_w = np.zeros((3, 3))
        cell0 = np.array(cell, dtype=np.float64)
        for a in range(3):
            for b in range(3):
                es = []
                for sgn in (1, -1):
                    eps = np.eye(3)
                    eps[a, b] += sgn * delta
                    ffs = ForceField(potential, species, cell0 @ eps, pbc, skin=0.0)
                    es.append(ffs.energy_forces(positions @ eps)[0])
                fd_w[a, b] = -(es[0] - es[1]) / (2 * delta)
        fd_w = 0.5 * (fd_w + fd_w.T)
        virial_err = float(np.abs(fd_w - 0.5 * (w0 + w0.T)).max())
        assert virial_err <= atol + rtol * max(1.0, float(np.abs(w0).max())) * 1e3, (
            f"virial differs from −∂E/∂ε by {virial_err:g}")
        out["virial_error"] = virial_err
    return out
