"""Sane candidates: frames an explorer produced that no labeler should see.

A chain on an immature potential can leave physics behind: an atom flies off a cluster or out of a molecule
(evaporation, dissociation at a too-high temperature, or a potential with no repulsion where it never saw data),
or an NPT chain squeezes its cell flat. Labeling such a frame wastes the most expensive stage and teaches the
potential a region no simulation should reach. Atoms closer than the potential's ``min_dist`` are already
refused by the grade (their basis is not finite, :mod:`tasks.select` reason ``"invalid"``); this module adds

``"isolated_atom"``   an atom with no other atom within ``max_isolation`` Å (minimum image for periodic
                      directions): an exploded cluster, an evaporated or dissociated atom;
``"degenerate_cell"`` a periodic cell whose perpendicular width along a periodic direction is below
                      ``min_cell_width`` Å, or whose volume is under ``min_cell_shape`` × a·b·c (a cell sheared
                      nearly flat; 1 for a cube, √2/2 ≈ 0.71 for fcc's primitive cell).

Neighbour distances come from ASE's neighbour list (``ase.neighborlist.neighbor_list``, Larsen et al., J. Phys.:
Condens. Matter 29, 273002 (2017)). Units: Å.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

#: the reasons :func:`frame_problem` returns, in the order they are checked
PROBLEMS = ("degenerate_cell", "isolated_atom")


def cell_problem(cell: np.ndarray, pbc: Sequence[bool], min_cell_width: float, min_cell_shape: float) -> str | None:
    """Why a cell (3, 3) Å (rows are lattice vectors) with periodic directions ``pbc`` is degenerate, or None.
    Only periodic directions are checked; an open cell (no periodic direction) is never degenerate."""
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any():
        return None
    cell = np.asarray(cell, dtype=np.float64)
    lengths = np.linalg.norm(cell, axis=1)
    volume = abs(float(np.linalg.det(cell)))
    if not np.isfinite(volume) or volume <= 0.0 or np.any(lengths[pbc] <= 0.0):
        return "degenerate_cell: the periodic cell has no volume"
    if pbc.all() and volume < min_cell_shape * float(np.prod(lengths)):
        return (f"degenerate_cell: volume {volume:.4g} Å³ is {volume / np.prod(lengths):.3f} of a·b·c, below "
                f"{min_cell_shape}")
    widths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    for axis in np.flatnonzero(pbc):
        if widths[axis] < min_cell_width:
            return f"degenerate_cell: width {widths[axis]:.4g} Å along cell vector {axis} is below {min_cell_width} Å"
    return None


def isolated_atoms(positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: Sequence[bool],
                   max_isolation: float) -> np.ndarray:
    """Indices of the atoms with no other atom within ``max_isolation`` Å (periodic images included). A frame of
    one atom has none (there is nothing to be isolated from)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    n = len(numbers)
    if n < 2:
        return np.zeros(0, np.int64)
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    first = neighbor_list("i", atoms, float(max_isolation), self_interaction=False)
    has = np.zeros(n, bool)
    has[first] = True
    return np.flatnonzero(~has)


def frame_problem(positions, numbers, cell, pbc, max_isolation: float | None, min_cell_width: float,
                  min_cell_shape: float) -> str:
    """The first problem of one frame (see the module docstring), as ``"<reason>: <what>"``, or "" when sane.
    ``max_isolation`` None skips the isolation check."""
    if (why := cell_problem(cell, pbc, min_cell_width, min_cell_shape)) is not None:
        return why
    if max_isolation is not None:
        lone = isolated_atoms(positions, numbers, cell, pbc, max_isolation)
        if len(lone):
            return (f"isolated_atom: atom(s) {', '.join(map(str, lone[:5].tolist()))}{' …' if len(lone) > 5 else ''} "
                    f"with no neighbour within {max_isolation} Å")
    return ""


def frame_problems(frames: xr.Dataset, max_isolation: float | None, min_cell_width: float = 1.0,
                   min_cell_shape: float = 0.05) -> np.ndarray:
    """:func:`frame_problem` of every configuration of ``frames`` (a configurations dataset): an object array of
    strings ("" = sane), shape (config,)."""
    from hmc_core.configurations import config_arrays

    if max_isolation is not None and not max_isolation > 0:
        raise ValueError(f"max_isolation must be > 0 Å (or None to skip the check), got {max_isolation}")
    if not min_cell_width >= 0 or not 0 <= min_cell_shape < 1:
        raise ValueError(f"min_cell_width ({min_cell_width} Å) must be ≥ 0 and min_cell_shape ({min_cell_shape}) "
                         "in [0, 1)")
    out = np.empty(frames.sizes["config"], dtype=object)
    for k in range(frames.sizes["config"]):
        x, z, cell, pbc = config_arrays(frames, k)
        out[k] = frame_problem(x, z, cell, pbc, max_isolation, min_cell_width, min_cell_shape)
    return out


__all__ = ["PROBLEMS", "cell_problem", "frame_problem", "frame_problems", "isolated_atoms"]
