"""Cluster cuts: non-periodic clusters cut from a periodic frame around chosen atoms (arrays in, arrays out).

Periodic ab initio labels of large cells are slow (or, with PySCF's Γ-point GTH set-up, out of reach). MLIP-3
(Podryabinkin, Garifullin, Shapeev, Novikov et al., J. Chem. Phys. 159, 084112 (2023)) learns from
configurations *cut from large atomistic systems*; pesflow does it this way: around a centre atom whose
environment is uncertain, take every atom within the cut radius

    R = r_cut + buffer        (Å; r_cut = the potential's cutoff, buffer ≥ 0)

of the centre, periodic images included, as a molecule (open boundaries, centre at the origin). A molecular
method labels the cluster; the fit then uses only what the cut determines: the forces on the *core* atoms,
whose whole cutoff sphere lies inside the cut sphere, i.e. atoms at distance ≤ ``buffer`` from the centre (the
centre is always core). Atoms between ``buffer`` and R only complete the core atoms' neighbourhoods; their
forces (and the cluster's energy) feel the artificial surface and are not fitted.

What the buffer must cover. The force on a core atom i of a many-body potential with cutoff r_cut also depends
on the site energies of i's neighbours, and so on atoms up to 2·r_cut from i; and the labeler's force on i feels
everything within its own range (its "nearsightedness": r_c of a pair potential, a few Å of screening for a
metal or an insulator at the DFT level). The buffer therefore sets a compromise between cost (the cluster grows
as R³) and how bulk-like the core forces are; ``buffer ≥ r_cut`` makes the MTP force on the centre exactly its
bulk value, and the labeler's range decides how far the reference force is from its periodic value.

One atom cannot appear twice: the cut is refused when R reaches half the smallest width of the cell along a
periodic direction (then the centre, or another atom, could meet its own periodic image inside the sphere);
label such small cells periodically, or repeat them first. Below that limit the minimum image is exact, even for
non-orthogonal cells: an image within R < h_k/2 of the centre has fractional coordinate |s_k| ≤ R/h_k < 1/2
along every periodic direction k (h_k the distance between the lattice planes spanned by the other two cell
vectors), so rounding the fractional displacement picks it, and it is the only one.

Units: positions, cell, radii in Å. Errors: :class:`ClusterCutError` (a ``ValueError``) saying what is wrong,
where, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SOURCE = ("cluster cuts after MLIP-3: Podryabinkin, Garifullin, Shapeev, Novikov et al., J. Chem. Phys. 159, "
          "084112 (2023)")
_TINY = 1e-12


class ClusterCutError(ValueError):
    """A cluster cut that cannot be made (bad radius, cell too small, too many atoms, bad input)."""


@dataclass(frozen=True)
class ClusterCut:
    """One cluster cut from a periodic frame.

    positions (n, 3) Å: the centre atom at the origin, then the others by increasing distance (ties by frame
    index); open boundaries, no cell. species (n,) int32 atomic numbers. indices (n,) int64: each atom's index
    in the frame. distances (n,) Å from the centre. core (n,) bool: distance ≤ ``buffer`` (forces to fit).
    centre: the centre's frame index; r_cut, buffer, radius = r_cut + buffer (Å).
    """

    positions: np.ndarray
    species: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    core: np.ndarray
    centre: int
    r_cut: float
    buffer: float

    @property
    def radius(self) -> float:
        return self.r_cut + self.buffer

    @property
    def n_atoms(self) -> int:
        return len(self.species)

    @property
    def n_core(self) -> int:
        return int(self.core.sum())


def check_radii(r_cut: float, buffer: float) -> float:
    """The cut radius r_cut + buffer (Å) after checking both: r_cut finite and > 0, buffer finite and ≥ 0."""
    if not (np.isfinite(r_cut) and r_cut > 0):
        raise ClusterCutError(f"cluster cut: r_cut must be a finite distance > 0 Å (the potential's cutoff), got "
                              f"{r_cut}")
    if not np.isfinite(buffer) or buffer < 0:
        raise ClusterCutError(f"cluster cut: buffer must be a finite distance ≥ 0 Å (the shell around the core "
                              f"whose atoms complete the core's neighbourhoods), got {buffer}; set [labeling] "
                              "cluster_cut = {buffer = …} to a value such as 2–6 Å")
    return float(r_cut) + float(buffer)


def _fractional_basis(cell, pbc) -> tuple[np.ndarray, np.ndarray]:
    """Rows: the periodic cell vectors, open directions filled by an orthonormal complement; and its inverse."""
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    if not np.all(np.isfinite(cell)):
        raise ClusterCutError("cluster cut: the cell has NaN or inf entries")
    periodic = np.flatnonzero(pbc)
    basis = np.eye(3)
    for k in periodic:
        if np.linalg.norm(cell[k]) < _TINY:
            raise ClusterCutError(f"cluster cut: direction {k} is periodic but cell vector {k} is zero; give the "
                                  "cell or set that direction open")
        basis[k] = cell[k]
    if len(periodic) == 2:
        normal = np.cross(cell[periodic[0]], cell[periodic[1]])
        if np.linalg.norm(normal) < _TINY * np.linalg.norm(cell[periodic[0]]) * np.linalg.norm(cell[periodic[1]]):
            raise ClusterCutError(f"cluster cut: periodic cell vectors {periodic[0]} and {periodic[1]} are parallel")
        basis[np.flatnonzero(~pbc)[0]] = normal / np.linalg.norm(normal)
    elif len(periodic) == 1:
        a = cell[periodic[0]] / np.linalg.norm(cell[periodic[0]])
        trial = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(a, trial)
        u /= np.linalg.norm(u)
        for k, v in zip(np.flatnonzero(~pbc), (u, np.cross(a, u)), strict=True):
            basis[k] = v
    scale = max(1.0, float(np.prod(np.linalg.norm(basis, axis=1))))
    if abs(np.linalg.det(basis)) < 1e-9 * scale:
        raise ClusterCutError("cluster cut: the periodic cell vectors are linearly dependent (zero volume)")
    return basis, np.linalg.inv(basis)


def cell_widths(cell, pbc) -> np.ndarray:
    """Width h_k (Å) of the cell along each periodic direction k: the distance between neighbouring lattice planes
    spanned by the other cell vectors (inf for open directions). (3,)"""
    _, inverse = _fractional_basis(cell, pbc)
    widths = 1.0 / np.linalg.norm(inverse, axis=0)  # fractional s_k = d · inverse[:, k]
    return np.where(np.asarray(pbc, dtype=bool).reshape(3), widths, np.inf)


def max_cut_radius(cell, pbc) -> float:
    """The largest cut radius (exclusive, Å) for which no atom can meet its own image: half the smallest width
    over periodic directions (inf for an open box)."""
    return float(0.5 * cell_widths(cell, pbc).min())


def check_cell(cell, pbc, r_cut: float, buffer: float) -> float:
    """Refuse a cell too small for the cut radius R = r_cut + buffer (R ≥ half a periodic width); returns R."""
    radius = check_radii(r_cut, buffer)
    widths = cell_widths(cell, pbc)
    k = int(np.argmin(widths))
    if radius >= 0.5 * widths[k]:
        raise ClusterCutError(
            f"cluster cut: the cut radius r_cut + buffer = {r_cut:g} + {buffer:g} = {radius:.3f} Å reaches half the "
            f"cell's width along periodic direction {k} ({widths[k]:.3f} Å / 2 = {0.5 * widths[k]:.3f} Å): an atom "
            "would meet its own periodic image inside the cluster. Lower the buffer below "
            f"{max(0.5 * widths[k] - r_cut, 0.0):.3f} Å, repeat the frame into a larger cell, or label this small "
            "cell periodically (no cluster cut)")
    return radius


def _frame(positions, species, cell, pbc) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ClusterCutError(f"cluster cut: positions must be (n_atoms, 3) Å, got shape {x.shape}")
    z = np.asarray(species).reshape(-1)
    if len(z) != len(x):
        raise ClusterCutError(f"cluster cut: {len(x)} positions but {len(z)} species")
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ClusterCutError(f"cluster cut: atom {bad} has a NaN or inf position")
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    return x, z.astype(np.int32), np.asarray(cell, dtype=np.float64).reshape(3, 3), pbc


def cut_clusters(positions, species, cell, pbc, centres: Sequence[int], r_cut: float, buffer: float,
                 max_atoms: int | None = None) -> list[ClusterCut]:
    """Cut one cluster around each atom of ``centres`` (see the module docstring).

    positions (N, 3) Å (wrapped or not), species (N,) atomic numbers, cell (3, 3) Å (rows are lattice vectors;
    ignored in open directions), pbc (3,) bool; centres: frame indices; r_cut: the potential's cutoff, Å;
    buffer ≥ 0 Å; max_atoms: the labeler's atom limit (None: no limit).

    Returns one :class:`ClusterCut` per centre, in the order given.

    Raises :class:`ClusterCutError`: r_cut ≤ 0, buffer < 0 or not finite, bad shapes or NaN positions, a centre
    index outside the frame, a cell too small for the cut radius (:func:`check_cell`), or a cluster with more
    than ``max_atoms`` atoms (checked for every centre before any cluster is returned).
    """
    x, z, cell, pbc = _frame(positions, species, cell, pbc)
    radius = check_cell(cell, pbc, r_cut, buffer)
    if max_atoms is not None and (int(max_atoms) != max_atoms or max_atoms < 1):
        raise ClusterCutError(f"cluster cut: max_atoms must be a positive integer (the labeler's atom limit), got "
                              f"{max_atoms}")
    basis, inverse = _fractional_basis(cell, pbc)
    out = []
    for c in centres:
        if int(c) != c or not 0 <= int(c) < len(x):
            raise ClusterCutError(f"cluster cut: centre atom {c} is not an atom of this frame (0 … {len(x) - 1})")
        c = int(c)
        frac = (x - x[c]) @ inverse
        frac[:, pbc] -= np.round(frac[:, pbc])  # exact minimum image for radius < half the smallest width
        d = frac @ basis
        dist = np.sqrt(np.einsum("ij,ij->i", d, d))
        dist[c] = 0.0
        inside = np.flatnonzero(dist <= radius)
        order = inside[np.lexsort((inside, dist[inside]))]  # by distance, ties by index; centre first (d = 0)
        order = np.concatenate([[c], order[order != c]])
        if max_atoms is not None and len(order) > max_atoms:
            raise ClusterCutError(
                f"cluster cut around atom {c}: {len(order)} atoms lie within r_cut + buffer = {radius:.3f} Å, above "
                f"the labeler's limit max_atoms = {max_atoms}. Lower the buffer ({buffer:g} Å now) or raise "
                "max_atoms if the labeler can take larger molecules")
        out.append(ClusterCut(positions=np.ascontiguousarray(d[order]), species=z[order].copy(),
                              indices=order.astype(np.int64), distances=dist[order].copy(),
                              core=dist[order] <= buffer, centre=c, r_cut=float(r_cut), buffer=float(buffer)))
    return out


def cut_cluster(positions, species, cell, pbc, centre: int, r_cut: float, buffer: float,
                max_atoms: int | None = None) -> ClusterCut:
    """The cluster around one centre atom (:func:`cut_clusters` with one centre)."""
    return cut_clusters(positions, species, cell, pbc, [centre], r_cut, buffer, max_atoms)[0]


__all__ = ["SOURCE", "ClusterCut", "ClusterCutError", "cell_widths", "check_cell", "check_radii", "cut_cluster",
           "cut_clusters", "max_cut_radius"]
