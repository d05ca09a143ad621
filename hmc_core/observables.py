"""Observables: kinetic temperature, virial pressure, radial distribution function.

Units follow the potential: energies eV (or ε), lengths Å (or σ), pressure energy/length³.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.pair_kernels import pair_displacement


def virial_pressure(n_atoms: int, kT: float, virial: np.ndarray, volume: float) -> float:
    """P = (N k_B T + tr W / 3) / V, with W the configurational virial (3, 3)."""
    return (n_atoms * kT + np.trace(virial) / 3.0) / volume


def kinetic_temperature(momenta: np.ndarray, inv_mass: np.ndarray, kB: float) -> float:
    """Instantaneous temperature 2K / (3N k_B) from momenta (N, 3) and inverse masses (N, 3)."""
    return float(np.sum(momenta**2 * inv_mass) / (momenta.size * kB))


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_histogram(x, offsets, nbr, codes, shifts, r_max, n_bins, hist):
    dr = r_max / n_bins
    for i in range(x.shape[0]):
        for p in range(offsets[i], offsets[i + 1]):
            dx, dy, dz = pair_displacement(x, i, nbr[p], shifts, codes[p])
            r = np.sqrt(dx * dx + dy * dy + dz * dz)
            if r < r_max:
                hist[int(r / dr)] += 1.0


def radial_distribution(frames, cell, pbc=(True, True, True), r_max: float = 3.0, n_bins: int = 150):
    """g(r) averaged over frames (F, N, 3) of a periodic system; returns (r_centres, g).

    Normalised by the ideal-gas pair count at the number density N/V.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    if not np.all(pbc) or volume <= 0:
        raise ValueError("radial_distribution needs a cell periodic in all three directions")
    n = frames.shape[1]
    hist = np.zeros(n_bins)
    nl = NeighborList(r_max, 0.0, full=False)
    for x in frames:
        nl.build(x.copy(), cell, pbc)
        _pair_histogram(nl.reference, nl.offsets, nl.neighbors, nl.codes, nl.shifts, r_max, n_bins, hist)
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    ideal = 0.5 * n * (n - 1) / volume * shell * len(frames)
    return 0.5 * (edges[1:] + edges[:-1]), hist / ideal
