"""Starting structures for phase studies: perfect lattices, Mackay icosahedra, crystal seeds (perfect or
carved from a thermalised crystal), random point defects, seed insertion into a liquid and the elongated
two-phase (solid | liquid) box; periodic-geometry helpers (minimum image, box height).

Lattices and icosahedra are built with ASE (:func:`ase.build.bulk`, :func:`ase.cluster.Icosahedron`); the
element passed to ASE is a placeholder, only the geometry is used. Positions and cells in any length unit
(Å or σ), densities in 1/length³; cells (3, 3) with lattice vectors as rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase.build import bulk
from ase.cluster import Icosahedron
from scipy.spatial import cKDTree

SEED_STRUCTURES = ("fcc", "hcp", "bcc", "ico")
LATTICES = {"fcc": 4, "hcp": 4, "bcc": 2}  # atoms per (orthogonal) unit cell
MIN_GAP = 0.7  # host atoms closer than this × the host spacing to a seed atom are always removed
_GOLDEN = 0.5 * (1.0 + math.sqrt(5.0))


def lattice(structure: str, n_cells: int | Sequence[int], density: float) -> tuple[np.ndarray, np.ndarray]:
    """Perfect crystal: positions (N, 3) and cell (3, 3) at number density ``density`` (1/length³).

    fcc and bcc: cubic cells (4 and 2 atoms per cell); hcp: orthohexagonal cells a × √3 a × c (4 atoms,
    ideal c/a = √(8/3)). ``n_cells``: one count or three (nx, ny, nz). Built with :func:`ase.build.bulk`
    and ``Atoms.repeat`` (atoms ordered cell by cell, x slowest).
    """
    reps = np.broadcast_to(np.asarray(n_cells, int), (3,))
    if np.any(reps < 1):
        raise ValueError(f"n_cells must be ≥ 1, got {n_cells}")
    if not density > 0:
        raise ValueError(f"density must be > 0, got {density}")
    if structure not in LATTICES:
        raise ValueError(f"unknown lattice {structure!r}; choose fcc, hcp or bcc")
    if structure == "hcp":
        c_over_a = math.sqrt(8.0 / 3.0)
        a = (4.0 / (density * math.sqrt(3.0) * c_over_a)) ** (1.0 / 3.0)
        unit = bulk("Ar", "hcp", a=a, c=c_over_a * a, orthorhombic=True)
    else:
        a = (LATTICES[structure] / density) ** (1.0 / 3.0)
        unit = bulk("Ar", structure, a=a, cubic=True)
    atoms = unit.repeat(tuple(int(r) for r in reps))
    return atoms.positions.copy(), np.array(atoms.cell[:], float)


def icosahedron(n_shells: int, nn_distance: float) -> np.ndarray:
    """Mackay icosahedron with ``n_shells`` shells (1, 13, 55, 147, … atoms), centred at 0: positions (n, 3).

    ``nn_distance`` is the distance between neighbouring atoms within a shell (the icosahedron's edge
    length per shell); the radial spacing between shells is √(φ²+1)/2 ≈ 0.951 of it. Built with
    :func:`ase.cluster.Icosahedron`, whose radial spacing is latticeconstant/√2.
    """
    if n_shells < 1:
        raise ValueError(f"an icosahedron needs ≥ 1 shell, got {n_shells}")
    if not nn_distance > 0:
        raise ValueError(f"nn_distance must be > 0, got {nn_distance}")
    latticeconstant = nn_distance * math.sqrt((1.0 + _GOLDEN**2) / 2.0)
    return Icosahedron("Ar", int(n_shells), latticeconstant=latticeconstant).positions.copy()


def mackay_size(n_shells: int) -> int:
    """Atoms in a Mackay icosahedron of ``n_shells`` shells: (10 k³ − 15 k² + 11 k − 3) / 3."""
    return (10 * n_shells**3 - 15 * n_shells**2 + 11 * n_shells - 3) // 3


def crystal_seed(structure: str, n_atoms: int, density: float) -> np.ndarray:
    """The ``n_atoms`` sites nearest a central site, centred at 0 (positions (n, 3), length units).

    ``density`` is the crystal's number density (1/length³; it sets the nearest-neighbour distance;
    icosahedral seeds take the fcc nearest-neighbour distance (√2/ρ)^(1/3) at that density as their
    intra-shell spacing and are cut from the smallest Mackay icosahedron with ≥ ``n_atoms`` atoms).
    """
    if structure not in SEED_STRUCTURES:
        raise ValueError(f"unknown seed structure {structure!r}; choose one of {', '.join(SEED_STRUCTURES)}")
    if n_atoms < 1:
        raise ValueError(f"the seed needs ≥ 1 atom, got {n_atoms}")
    if structure == "ico":
        shells = 1
        while mackay_size(shells) < n_atoms:
            shells += 1
        pts = icosahedron(shells, (math.sqrt(2.0) / density) ** (1.0 / 3.0))
    else:
        reps = int(math.ceil((2 * n_atoms) ** (1.0 / 3.0) / 1.2)) + 2
        pos, cell = lattice(structure, reps, density)
        centre_site = pos[np.argmin(np.linalg.norm(pos - np.diag(cell) / 2, axis=1))]
        pts = pos - centre_site
    order = np.argsort(np.linalg.norm(pts, axis=1), kind="stable")
    return pts[order[:n_atoms]]


def thermal_seed(crystal_positions, crystal_cell, n_atoms: int) -> np.ndarray:
    """The ``n_atoms`` atoms of a thermalised periodic crystal nearest (minimum image) to its atom closest to
    the cell centre, centred at that atom: a seed with the crystal's thermal displacements, so that holding
    it fixed does not present the liquid a perfect (T = 0) lattice whose surface atoms all count as solid."""
    x = np.asarray(crystal_positions, float)
    cell = np.asarray(crystal_cell, float)
    if not 1 <= n_atoms <= len(x):
        raise ValueError(f"a thermal seed of {n_atoms} atoms needs a crystal with at least that many; it has {len(x)}")
    inv = np.linalg.inv(cell)
    centre = cell.sum(axis=0) / 2
    c = int(np.argmin(np.linalg.norm(minimum_image(x - centre, cell, inv), axis=1)))
    rel = minimum_image(x - x[c], cell, inv)
    order = np.argsort(np.linalg.norm(rel, axis=1), kind="stable")[:n_atoms]
    radius = float(np.linalg.norm(rel[order], axis=1).max())
    if 2 * radius >= min_box_height(cell):
        raise ValueError(f"the crystal ({len(x)} atoms) is too small to carve a seed of {n_atoms} atoms from it")
    return rel[order]


def add_defects(positions, cell, vacancy_fraction: float = 0.0, interstitial_fraction: float = 0.0,
                seed: int | np.random.Generator = 0) -> np.ndarray:
    """Remove a fraction of atoms at random (vacancies) and add a fraction at the emptiest of 64 random
    trial points each (interstitials). Returns the new positions (N', 3)."""
    for name, f in (("vacancy_fraction", vacancy_fraction), ("interstitial_fraction", interstitial_fraction)):
        if not 0 <= f < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {f}")
    rng = np.random.default_rng(seed)
    x = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    n = len(x)
    n_vac = int(round(vacancy_fraction * n))
    n_int = int(round(interstitial_fraction * n))
    keep = np.sort(rng.permutation(n)[n_vac:])
    x = x[keep]
    inv = np.linalg.inv(cell)
    for _ in range(n_int):
        trial = rng.uniform(size=(64, 3)) @ cell
        dist = np.linalg.norm(minimum_image(trial[:, None, :] - x[None, :, :], cell, inv), axis=2).min(axis=1)
        x = np.vstack([x, trial[np.argmax(dist)]])
    return x


def insert_seed(positions, cell, seed_positions, gap: float | None = None,
                seed_density: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put a seed (centred at 0) at the centre of a periodic box and remove host atoms around it.

    With ``gap`` given: every host atom closer than ``gap`` to a seed atom is removed. By default (``gap``
    None) the removal is density-matched: the k host atoms nearest the seed go, k = n_seed · ρ_host/ρ_seed
    (``seed_density``, default √2/d_nn³ from the seed's nearest-neighbour distance, the fcc value), and
    at least every atom closer than :data:`MIN_GAP` (0.7) × the host spacing (V/N)^(1/3). A fixed gap of
    0.85 × the spacing (the former default) removed 301 liquid atoms for a 250-atom seed at T* = 0.55
    where 229 fill its volume: a low-density shell around the seed (ρ 0.913 against the liquid's 0.937
    after insertion); the 0.7 floor removes 257 and leaves contacts ≥ 0.72σ. The remaining close contacts
    are relaxed by holding the seed while the host moves (``run_seeded(n_hold=…)``).

    Returns (positions (N', 3), is_seed (N',) bool), seed atoms first. Raises ValueError when the seed
    does not fit.
    """
    x = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    seed = np.asarray(seed_positions, float)
    volume = abs(np.linalg.det(cell))
    spacing = (volume / len(x)) ** (1.0 / 3.0)
    min_gap = MIN_GAP * spacing if gap is None else gap
    radius = float(np.linalg.norm(seed, axis=1).max()) + min_gap
    if 2 * radius >= min_box_height(cell) - min_gap:
        raise ValueError(f"a seed of {len(seed)} atoms needs a box wider than {2 * radius + min_gap:.3g} (its "
                         f"diameter plus a liquid shell) but the box is {min_box_height(cell):.3g} across; use a "
                         "smaller seed or more atoms")
    centre = cell.sum(axis=0) / 2
    inv = np.linalg.inv(cell)
    placed = seed + centre
    dist = np.empty(len(x))
    for k in range(0, len(x), 512):  # minimum-image distance to the nearest seed atom, in blocks
        d = minimum_image(x[k:k + 512, None, :] - placed[None, :, :], cell, inv)
        dist[k:k + 512] = np.linalg.norm(d, axis=2).min(axis=1)
    if gap is not None:
        keep = dist >= gap
    else:
        if seed_density is None:
            d_nn = float(np.median(cKDTree(seed).query(seed, k=2)[0][:, 1])) if len(seed) > 1 else spacing
            seed_density = math.sqrt(2.0) / d_nn**3
        n_remove = int(round(len(seed) * len(x) / volume / seed_density))
        keep = np.ones(len(x), bool)
        keep[np.argsort(dist, kind="stable")[:n_remove]] = False
        keep &= dist >= min_gap
    new = np.vstack([placed, x[keep]])
    is_seed = np.zeros(len(new), bool)
    is_seed[: len(seed)] = True
    return new, is_seed


def two_phase_box(n_cells: Sequence[int], solid_density: float, liquid_density: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elongated fcc box for a solid–liquid coexistence run: positions (N, 3), cell (3, 3), is_crystal (N,).

    ``n_cells`` = (nx, ny, nz) cubic fcc cells at ``solid_density``; the lower nz/2 cells (z < L_z/2 of the
    crystal) are the crystal, whose (100) faces are normal to z. The upper half is meant to be melted;
    with ``liquid_density`` it is stretched along z by solid_density / liquid_density (lateral spacing
    unchanged) so that, once melted, it has about the liquid's density and the box starts near the target
    pressure. nz must be even and ≥ 2.
    """
    reps = np.asarray(n_cells, int)
    if reps.shape != (3,) or np.any(reps < 1):
        raise ValueError(f"n_cells must be three positive integers (nx, ny, nz), got {n_cells}")
    if reps[2] < 2 or reps[2] % 2:
        raise ValueError(f"n_cells[2] = {reps[2]} must be even (half crystal, half liquid along z)")
    pos, cell = lattice("fcc", reps, solid_density)
    half = cell[2, 2] / 2
    a = cell[2, 2] / reps[2]
    is_crystal = pos[:, 2] < half - a / 8  # the planes z = 0, a/2, …, half − a/2
    if liquid_density is not None:
        if not liquid_density > 0:
            raise ValueError(f"liquid_density must be > 0, got {liquid_density}")
        stretch = solid_density / liquid_density
        liquid = ~is_crystal
        pos = pos.copy()
        pos[liquid, 2] = half + (pos[liquid, 2] - half) * stretch
        cell = cell.copy()
        cell[2, 2] = half + half * stretch
    return pos, cell, is_crystal


def minimum_image(d, cell, inv=None) -> np.ndarray:
    """Displacements ``d`` (..., 3) reduced to their minimum image in the periodic ``cell`` (3, 3)."""
    cell = np.asarray(cell, float)
    frac = np.asarray(d, float) @ (np.linalg.inv(cell) if inv is None else inv)
    frac -= np.round(frac)
    return frac @ cell


def min_box_height(cell) -> float:
    """Smallest distance between opposite faces of a cell (3, 3)."""
    cell = np.asarray(cell, float)
    volume = abs(np.linalg.det(cell))
    return float((volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)).min())
