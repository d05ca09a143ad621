"""Small Numba building blocks shared by pair-potential and analysis kernels (inlined by Numba).

Neighbour-list convention (see :mod:`hmc_core.neighbors`): the displacement of pair ``p`` from atom
``i`` to its neighbour ``j = nbr[p]`` is ``x[j] − x[i] + shifts[codes[p]]`` (length units).
"""

from __future__ import annotations

from numba import njit


@njit(inline="always", nogil=True)
def pair_displacement(x, i, j, shifts, s):
    """Displacement (dx, dy, dz) from atom i to the image ``s`` of atom j."""
    return (x[j, 0] - x[i, 0] + shifts[s, 0], x[j, 1] - x[i, 1] + shifts[s, 1],
            x[j, 2] - x[i, 2] + shifts[s, 2])


@njit(inline="always", nogil=True)
def add_pair_force(f, w, i, j, dx, dy, dz, fr):
    """Add the central force fr·d on j (−fr·d on i) and its virial d ⊗ fr·d to the upper triangle of w."""
    fx = fr * dx
    fy = fr * dy
    fz = fr * dz
    f[i, 0] -= fx
    f[i, 1] -= fy
    f[i, 2] -= fz
    f[j, 0] += fx
    f[j, 1] += fy
    f[j, 2] += fz
    w[0, 0] += dx * fx
    w[0, 1] += dx * fy
    w[0, 2] += dx * fz
    w[1, 1] += dy * fy
    w[1, 2] += dy * fz
    w[2, 2] += dz * fz


@njit(inline="always", nogil=True)
def symmetrize_upper(w):
    """Copy the upper triangle of a 3×3 virial into the lower one."""
    w[1, 0] = w[0, 1]
    w[2, 0] = w[0, 2]
    w[2, 1] = w[1, 2]
