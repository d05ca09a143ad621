"""Local order parameters: Steinhardt q_l, Lechner–Dellago averages, ten Wolde–Frenkel solid-like atoms,
solid clusters and adaptive common neighbour analysis (a-CNA) structure labels.

Definitions (neighbours j of atom i within ``cutoff``, N_b(i) of them, r̂_ij unit vectors):

* Steinhardt, Nelson & Ronchetti, PRB 28, 784 (1983):
  q_lm(i) = (1/N_b) Σ_j Y_lm(r̂_ij),  q_l(i) = sqrt(4π/(2l+1) Σ_m |q_lm(i)|²).
  Perfect lattices (first shell; bcc with its 8 + 6 neighbours): q6 = 0.5745 fcc, 0.4848 hcp,
  0.5107 bcc, 0.6633 icosahedron; q4 = 0.1909 fcc, 0.0972 hcp, 0.0364 bcc, 0 icosahedron.
* Lechner & Dellago, JCP 129, 114707 (2008): q̄_lm(i) = (q_lm(i) + Σ_j q_lm(j)) / (N_b + 1), q̄_l from q̄_lm.
* ten Wolde, Ruiz-Montero & Frenkel, JCP 104, 9932 (1996): the bond i–j is "solid" when
  d6(i,j) = Re Σ_m q6m(i) q6m(j)* / (|q6(i)| |q6(j)|) > ``bond_threshold`` (0.7 here, as in
  Auer & Frenkel, Nature 409, 1020 (2001)); atom i is solid-like with ≥ ``min_solid_bonds`` (7)
  solid bonds. Solid-like neighbours form clusters; the largest one measures a crystal nucleus.
* Adaptive CNA, Stukowski, MSMSE 20, 045021 (2012): per atom, the 12 (fcc/hcp/ico) or 14 (bcc)
  nearest neighbours set a local cutoff; signatures (n_common, n_bonds, longest_chain) of all
  neighbour pairs: 12×(421) fcc, 6×(421)+6×(422) hcp, 12×(555) icosahedral, 6×(444)+8×(666) bcc;
  and 10×(422)+2×(555) "fivefold": an atom on a five-fold twin axis (the inner vertices of a Mackay
  icosahedron, the axis of a decahedron; Cleveland, Luedtke & Landman, PRB 60, 5065 (1999)), which the
  a-CNA of OVITO leaves as "other".
* Ordered units (the topological-cluster idea of Malins et al., JCP 139, 234506 (2013), with a-CNA
  centres): every atom with a structure label other than "other" forms a unit with its a-CNA shell (its
  12, or 14 for bcc, nearest neighbours); units sharing an atom join. The largest unit cluster counts a
  crystal seed of any inserted structure, surface layer included: the ten Wolde–Frenkel q6 bonds miss
  icosahedral order (neighbouring atoms of an icosahedron do not share a q6 orientation) and the surface
  of small seeds.

Only m ≥ 0 components are stored: q_l,−m = (−1)^m q_lm*, so Σ_m over −l…l is |q_l0|² + 2 Σ_{m>0}.
Positions in any length unit (Å or σ); cells (3, 3) with lattice vectors as rows; periodic or open.
Neighbour search uses :class:`hmc_core.neighbors.NeighborList` (full list). Kernels are Numba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.pair_kernels import pair_displacement

STRUCTURES = ("other", "fcc", "hcp", "bcc", "ico", "fivefold")
OTHER, FCC, HCP, BCC, ICO, FIVEFOLD = range(6)
CNA_FACTOR = 0.5 * (1.0 + math.sqrt(2.0))  # local a-CNA cutoff / mean first-shell distance


def shell_cutoff(density: float) -> float:
    """Default first-shell cutoff (length) at number density ``density`` (1/length³): midway between
    the first and second fcc shells, (1 + √2)/2 · a_nn with a_nn = (√2 / ρ)^(1/3); 1.37σ at ρ* = 0.96."""
    if not density > 0:
        raise ValueError(f"density must be > 0, got {density}")
    return CNA_FACTOR * (math.sqrt(2.0) / density) ** (1.0 / 3.0)


@njit(cache=True, nogil=True)
def _legendre_norms(l):
    """sqrt((2l+1)/(4π) (l−m)!/(l+m)!) for m = 0..l."""
    out = np.empty(l + 1)
    for m in range(l + 1):
        r = 1.0
        for k in range(l - m + 1, l + m + 1):
            r /= k
        out[m] = math.sqrt((2 * l + 1) / (4.0 * math.pi) * r)
    return out


@njit(cache=True, nogil=True)
def _add_ylm(l, norms, dx, dy, dz, acc_re, acc_im, i):
    """acc[i, m] += Y_lm(r̂) for m = 0..l (Condon–Shortley phase omitted: it cancels in every use)."""
    r = math.sqrt(dx * dx + dy * dy + dz * dz)
    ct = dz / r
    st = math.sqrt(max(0.0, 1.0 - ct * ct))
    phi = math.atan2(dy, dx)
    pmm = 1.0  # P_m^m(ct) without (−1)^m: (2m−1)!! st^m
    for m in range(l + 1):
        if m > 0:
            pmm *= (2 * m - 1) * st
        if m == l:
            plm = pmm
        else:
            p_prev = pmm
            p_cur = ct * (2 * m + 1) * pmm
            for ll in range(m + 2, l + 1):
                p_next = ((2 * ll - 1) * ct * p_cur - (ll + m - 1) * p_prev) / (ll - m)
                p_prev = p_cur
                p_cur = p_next
            plm = p_cur
        v = norms[m] * plm
        acc_re[i, m] += v * math.cos(m * phi)
        acc_im[i, m] += v * math.sin(m * phi)


@njit(cache=True, nogil=True)
def qlm_kernel(x, offsets, nbr, codes, shifts, rc2, l):
    """Per-atom q_lm (m = 0..l) real/imag parts (N, l+1) and neighbour counts (N,) within √rc2."""
    n = x.shape[0]
    norms = _legendre_norms(l)
    q_re = np.zeros((n, l + 1))
    q_im = np.zeros((n, l + 1))
    count = np.zeros(n, np.int64)
    for i in range(n):
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 < rc2 and r2 > 0.0:
                _add_ylm(l, norms, dx, dy, dz, q_re, q_im, i)
                count[i] += 1
        if count[i] > 0:
            for m in range(l + 1):
                q_re[i, m] /= count[i]
                q_im[i, m] /= count[i]
    return q_re, q_im, count


@njit(cache=True, nogil=True)
def _norm_q(q_re, q_im, i):
    s = q_re[i, 0] * q_re[i, 0] + q_im[i, 0] * q_im[i, 0]
    for m in range(1, q_re.shape[1]):
        s += 2.0 * (q_re[i, m] * q_re[i, m] + q_im[i, m] * q_im[i, m])
    return s


@njit(cache=True, nogil=True)
def ql_from_qlm(q_re, q_im):
    """q_l(i) = sqrt(4π/(2l+1) Σ_m |q_lm|²) for every atom."""
    n, lp1 = q_re.shape
    out = np.empty(n)
    for i in range(n):
        out[i] = math.sqrt(4.0 * math.pi / (2 * lp1 - 1) * _norm_q(q_re, q_im, i))
    return out


@njit(cache=True, nogil=True)
def average_qlm_kernel(q_re, q_im, x, offsets, nbr, codes, shifts, rc2):
    """Lechner–Dellago neighbour average of q_lm over i and its neighbours within √rc2."""
    n, lp1 = q_re.shape
    a_re = q_re.copy()
    a_im = q_im.copy()
    for i in range(n):
        c = 1
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 < rc2 and r2 > 0.0:
                for m in range(lp1):
                    a_re[i, m] += q_re[j, m]
                    a_im[i, m] += q_im[j, m]
                c += 1
        for m in range(lp1):
            a_re[i, m] /= c
            a_im[i, m] /= c
    return a_re, a_im


@njit(cache=True, nogil=True)
def solid_bonds_kernel(q_re, q_im, x, offsets, nbr, codes, shifts, rc2, threshold):
    """Number of neighbours j with normalised q6(i)·q6(j) > threshold, per atom."""
    n, lp1 = q_re.shape
    norm = np.empty(n)
    for i in range(n):
        norm[i] = math.sqrt(_norm_q(q_re, q_im, i))
    bonds = np.zeros(n, np.int64)
    for i in range(n):
        if norm[i] == 0.0:
            continue
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
            r2 = dx * dx + dy * dy + dz * dz
            if r2 >= rc2 or r2 == 0.0 or norm[j] == 0.0:
                continue
            d = q_re[i, 0] * q_re[j, 0] + q_im[i, 0] * q_im[j, 0]
            for m in range(1, lp1):
                d += 2.0 * (q_re[i, m] * q_re[j, m] + q_im[i, m] * q_im[j, m])
            if d / (norm[i] * norm[j]) > threshold:
                bonds[i] += 1
    return bonds


@njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def cluster_kernel(mask, x, offsets, nbr, codes, shifts, rc2):
    """Cluster labels (−1 for unmasked atoms, else 0..K−1 ordered by size, largest first) and sizes."""
    n = mask.shape[0]
    parent = np.arange(n)
    for i in range(n):
        if not mask[i]:
            continue
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            if not mask[j]:
                continue
            dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
            if dx * dx + dy * dy + dz * dz < rc2:
                a = _find(parent, i)
                b = _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return _ranked_clusters(parent, mask)


@njit(cache=True, nogil=True)
def _ranked_clusters(parent, mask):
    """Union-find forest → per-atom cluster label (−1 unmasked, else 0..K−1 by size, largest first), sizes."""
    n = mask.shape[0]
    size = np.zeros(n, np.int64)
    for i in range(n):
        if mask[i]:
            size[_find(parent, i)] += 1
    roots = np.nonzero(size)[0]
    order = np.argsort(-size[roots], kind="mergesort")
    rank = np.full(n, -1, np.int64)
    sizes = np.empty(len(roots), np.int64)
    for k in range(len(order)):
        rank[roots[order[k]]] = k
        sizes[k] = size[roots[order[k]]]
    labels = np.full(n, -1, np.int64)
    for i in range(n):
        if mask[i]:
            labels[i] = rank[_find(parent, i)]
    return labels, sizes


@njit(cache=True, nogil=True)
def _signature_counts(v, m, rc2):
    """CNA signature counts over the m neighbour vectors v[:m]: (n421, n422, n555, n444, n666)."""
    bond = np.zeros((m, m), np.bool_)
    for a in range(m):
        for c in range(a + 1, m):
            dx = v[a, 0] - v[c, 0]
            dy = v[a, 1] - v[c, 1]
            dz = v[a, 2] - v[c, 2]
            b = dx * dx + dy * dy + dz * dz < rc2
            bond[a, c] = b
            bond[c, a] = b
    counts = np.zeros(5, np.int64)
    common = np.empty(m, np.int64)
    parent = np.empty(m, np.int64)
    nbonds_of = np.empty(m, np.int64)
    for a in range(m):
        nc = 0
        for c in range(m):
            if c != a and bond[a, c]:
                common[nc] = c
                nc += 1
        nb = 0
        for k in range(nc):
            parent[k] = k
            nbonds_of[k] = 0
        for k1 in range(nc):
            for k2 in range(k1 + 1, nc):
                if bond[common[k1], common[k2]]:
                    nb += 1
                    r1 = k1
                    while parent[r1] != r1:
                        r1 = parent[r1]
                    r2 = k2
                    while parent[r2] != r2:
                        r2 = parent[r2]
                    if r1 != r2:
                        parent[max(r1, r2)] = min(r1, r2)
                        nbonds_of[min(r1, r2)] += nbonds_of[max(r1, r2)]
                    nbonds_of[min(r1, r2)] += 1
        longest = 0
        for k in range(nc):
            if parent[k] == k and nbonds_of[k] > longest:
                longest = nbonds_of[k]
        if nc == 4 and nb == 2 and longest == 1:
            counts[0] += 1
        elif nc == 4 and nb == 2 and longest == 2:
            counts[1] += 1
        elif nc == 5 and nb == 5 and longest == 5:
            counts[2] += 1
        elif nc == 4 and nb == 4 and longest == 4:
            counts[3] += 1
        elif nc == 6 and nb == 6 and longest == 6:
            counts[4] += 1
    return counts


@njit(cache=True, nogil=True)
def acna_kernel(x, offsets, nbr, codes, shifts):
    """a-CNA label per atom (0 other, 1 fcc, 2 hcp, 3 bcc, 4 icosahedral, 5 five-fold axis) from a full
    neighbour list, and each labelled atom's shell (N, 14): the indices of its 12 (bcc: 14) nearest
    neighbours, −1 elsewhere."""
    n = x.shape[0]
    labels = np.zeros(n, np.int64)
    shell = np.full((n, 14), -1, np.int64)
    for i in range(n):
        k = offsets[i + 1] - offsets[i]
        if k < 12:
            continue
        vec = np.empty((k, 3))
        d2 = np.empty(k)
        for q in range(k):
            p = offsets[i] + q
            j = nbr[p]
            s = codes[p]
            vec[q, 0] = x[j, 0] - x[i, 0] + shifts[s, 0]
            vec[q, 1] = x[j, 1] - x[i, 1] + shifts[s, 1]
            vec[q, 2] = x[j, 2] - x[i, 2] + shifts[s, 2]
            d2[q] = vec[q, 0] ** 2 + vec[q, 1] ** 2 + vec[q, 2] ** 2
        order = np.argsort(d2)
        m = min(k, 14)
        v = np.empty((m, 3))
        for q in range(m):
            v[q] = vec[order[q]]
        mean12 = 0.0
        for q in range(12):
            mean12 += math.sqrt(d2[order[q]])
        rc = 0.5 * (1.0 + math.sqrt(2.0)) * mean12 / 12.0
        c = _signature_counts(v, 12, rc * rc)
        if c[0] == 12:
            labels[i] = 1
        elif c[0] == 6 and c[1] == 6:
            labels[i] = 2
        elif c[2] == 12:
            labels[i] = 4
        elif c[1] == 10 and c[2] == 2:
            labels[i] = 5
        if labels[i] > 0:
            for q in range(12):
                shell[i, q] = nbr[offsets[i] + order[q]]
            continue
        if m < 14:
            continue
        mean8 = 0.0
        mean6 = 0.0
        for q in range(8):
            mean8 += math.sqrt(d2[order[q]])
        for q in range(8, 14):
            mean6 += math.sqrt(d2[order[q]])
        rc = 0.5 * (1.0 + math.sqrt(2.0)) * 0.5 * (2.0 / math.sqrt(3.0) * mean8 / 8.0 + mean6 / 6.0)
        c = _signature_counts(v, 14, rc * rc)
        if c[3] == 6 and c[4] == 8:
            labels[i] = 3
            for q in range(14):
                shell[i, q] = nbr[offsets[i] + order[q]]
    return labels, shell


@njit(cache=True, nogil=True)
def unit_cluster_kernel(labels, shell):
    """Clusters of ordered units (labelled atom + its shell; units sharing an atom join): per-atom cluster
    label (−1 outside every unit, else 0..K−1 by size, largest first) and the sizes."""
    n = labels.shape[0]
    parent = np.arange(n)
    member = np.zeros(n, np.bool_)
    for i in range(n):
        if labels[i] == 0:
            continue
        member[i] = True
        for q in range(shell.shape[1]):
            j = shell[i, q]
            if j < 0:
                break
            member[j] = True
            a = _find(parent, i)
            b = _find(parent, j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return _ranked_clusters(parent, member)


@dataclass(frozen=True)
class OrderParameters:
    """Per-atom results of :func:`compute_order` (arrays of shape (N,))."""

    q4: np.ndarray
    q6: np.ndarray
    q4_avg: np.ndarray
    q6_avg: np.ndarray
    n_neighbors: np.ndarray
    solid_bonds: np.ndarray
    solid: np.ndarray
    cluster: np.ndarray
    cluster_sizes: np.ndarray
    structure: np.ndarray
    unit_cluster: np.ndarray  # ordered-unit cluster label per atom (−1: in no unit); all −1 without a-CNA
    unit_cluster_sizes: np.ndarray

    @property
    def largest_cluster(self) -> int:
        """Atoms in the largest ten Wolde–Frenkel solid-like cluster."""
        return int(self.cluster_sizes[0]) if len(self.cluster_sizes) else 0

    @property
    def largest_unit_cluster(self) -> int:
        """Atoms in the largest cluster of ordered a-CNA units (any structure; 0 when structures were off)."""
        return int(self.unit_cluster_sizes[0]) if len(self.unit_cluster_sizes) else 0

    def summary(self) -> dict:
        """Frame averages: mean q4, q6, q̄4, q̄6, solid fraction, largest cluster (ten Wolde–Frenkel and
        ordered units), structure fractions."""
        n = len(self.q6)
        out = {"q4": float(self.q4.mean()), "q6": float(self.q6.mean()), "q4_avg": float(self.q4_avg.mean()),
               "q6_avg": float(self.q6_avg.mean()), "solid_fraction": float(self.solid.mean()),
               "largest_cluster": float(self.largest_cluster),
               "largest_unit_cluster": float(self.largest_unit_cluster)}
        counts = np.bincount(self.structure, minlength=len(STRUCTURES))
        out.update({f"fraction_{name}": float(counts[k]) / n for k, name in enumerate(STRUCTURES)})
        return out


def _full_list(positions, cell, pbc, cutoff) -> tuple[NeighborList, np.ndarray]:
    x = np.array(positions, dtype=np.float64)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    nl = NeighborList(cutoff, 0.0, full=True)
    x = nl.build(x, cell, pbc)
    return nl, x


def compute_order(positions, cell=None, pbc=(True, True, True), cutoff: float | None = None,
                  bond_threshold: float = 0.7, min_solid_bonds: int = 7, cna_cutoff: float | None = None,
                  structures: bool = True) -> OrderParameters:
    """All local order parameters of one frame.

    positions (N, 3), cell (3, 3) (rows; zeros if open), both in the same length unit.
    cutoff: first-shell radius for q_l, bonds and clusters (default :func:`shell_cutoff` at N/V; give
    it explicitly for open systems). cna_cutoff: search radius for the a-CNA 14 nearest neighbours
    (default 1.6 × cutoff). Raises ValueError on bad input.
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"positions must have shape (N, 3) with N ≥ 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("positions contain NaN or inf")
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    if cutoff is None:
        if not pbc.all() or cell is None:
            raise ValueError("give cutoff for a system that is not periodic in all three directions")
        cutoff = shell_cutoff(len(x) / abs(np.linalg.det(np.asarray(cell, float))))
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive length, got {cutoff}")
    if not 1 <= min_solid_bonds:
        raise ValueError(f"min_solid_bonds must be ≥ 1, got {min_solid_bonds}")
    nl, xw = _full_list(x, cell, pbc, cutoff)
    args = (xw, nl.offsets, nl.neighbors, nl.codes, nl.shifts)
    rc2 = cutoff * cutoff
    q4r, q4i, count = qlm_kernel(*args, rc2, 4)
    q6r, q6i, _ = qlm_kernel(*args, rc2, 6)
    a4r, a4i = average_qlm_kernel(q4r, q4i, *args, rc2)
    a6r, a6i = average_qlm_kernel(q6r, q6i, *args, rc2)
    bonds = solid_bonds_kernel(q6r, q6i, *args, rc2, bond_threshold)
    solid = bonds >= min_solid_bonds
    labels, sizes = cluster_kernel(solid, *args, rc2)
    if structures:
        nl2, xw2 = _full_list(x, cell, pbc, cna_cutoff or 1.6 * cutoff)
        struct, shell = acna_kernel(xw2, nl2.offsets, nl2.neighbors, nl2.codes, nl2.shifts)
        units, unit_sizes = unit_cluster_kernel(struct, shell)
    else:
        struct = np.zeros(len(x), np.int64)
        units, unit_sizes = np.full(len(x), -1, np.int64), np.zeros(0, np.int64)
    return OrderParameters(q4=ql_from_qlm(q4r, q4i), q6=ql_from_qlm(q6r, q6i), q4_avg=ql_from_qlm(a4r, a4i),
                           q6_avg=ql_from_qlm(a6r, a6i), n_neighbors=count, solid_bonds=bonds, solid=solid,
                           cluster=labels, cluster_sizes=sizes, structure=struct, unit_cluster=units,
                           unit_cluster_sizes=unit_sizes)


def structure_labels(positions, cell=None, pbc=(True, True, True), search_cutoff: float | None = None) -> np.ndarray:
    """a-CNA label per atom (indices into :data:`STRUCTURES`); ``search_cutoff`` must reach the 14th neighbour."""
    x = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    if search_cutoff is None:
        if not pbc.all() or cell is None:
            raise ValueError("give search_cutoff for a system that is not periodic in all three directions")
        search_cutoff = 1.6 * shell_cutoff(len(x) / abs(np.linalg.det(np.asarray(cell, float))))
    nl, xw = _full_list(x, cell, pbc, search_cutoff)
    return acna_kernel(xw, nl.offsets, nl.neighbors, nl.codes, nl.shifts)[0]
