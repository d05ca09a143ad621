"""Lennard-Jones potential with several species.

u_ab(r) = 4 ε_ab [(σ_ab/r)¹² − (σ_ab/r)⁶] for r < rc_ab, optionally shifted so that u(rc) = 0.
The long-range tail correction (for homogeneous periodic fluids, truncated not shifted) adds
  E_tail = (2π/V) Σ_ab N_a N_b 4 ε σ³ [ (σ/rc)⁹/9 − (σ/rc)³/3 ]
  P_tail = (2π/(3V²)) Σ_ab N_a N_b 4 ε σ³ [ 4/3 (σ/rc)⁹ − 2 (σ/rc)³ ]
(Allen & Tildesley, 2nd ed., §2.8), entered in the virial as P_tail·V on the diagonal.
With ``shift=True`` as well, the energy also gets the mean-field value of the removed shift,
  E_shift = (2π/(3V)) Σ_ab N_a N_b r_c³ u_ab(r_c)   (u(r_c) < 0; the virial is unchanged),
so that −dE/dV of the tail terms equals P_tail: without it the shifted model's pressure exceeds the
full potential's by the impulsive term (2π/3) ρ² r_c³ |u(r_c)| (≈ 0.2 ε/σ³ at ρ* = 0.8, r_c = 3σ).

Units: reduced (``units="lj"``, ε = σ = 1, species are type labels 1, 2, …) or eV/Å
(``units="metal"``, species are atomic numbers). Mixed pairs default to Lorentz–Berthelot rules.

Built-in rare-gas parameters (:meth:`LennardJones.rare_gas`): Ar ε/k_B = 119.8 K, σ = 3.405 Å (Rowley,
Nicholson & Parsonage 1975, the common choice for argon simulations); Ne, Kr and Xe from Bernardes (1958)
as tabulated by Ashcroft & Mermin, *Solid State Physics*, Table 20.1 (ε in eV there): Ne ε = 0.0031 eV,
σ = 2.74 Å; Kr 0.0140 eV, 3.65 Å; Xe 0.0200 eV, 3.98 Å (ε/k_B = 36.0, 162.5, 232.1 K). These values are
quoted from the book from memory and were not re-checked against a copy here; other fits differ by a few
per cent (e.g. Vrabec, Stoll & Hasse 2001: Kr 162.6 K, 3.627 Å).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numba import njit

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError
from hmc_core.units import METAL

# Fast-math without the no-NaN/no-inf assumptions: overlapping atoms must still give inf (a rejection).
FAST_FINITE = {"nsz", "arcp", "contract", "afn", "reassoc"}

RARE_GAS = {  # symbol: (Z, ε/k_B in K, σ in Å)
    "Ne": (10, 0.0031 / 8.617333262e-5, 2.74),
    "Ar": (18, 119.8, 3.405),
    "Kr": (36, 0.0140 / 8.617333262e-5, 3.65),
    "Xe": (54, 0.0200 / 8.617333262e-5, 3.98),
}


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_FINITE)
def lj_pair(r2, c12, c6):
    """Pair energy and f/r for r² (length²): returns (u, −u'(r)/r)."""
    inv2 = 1.0 / r2
    inv6 = inv2 * inv2 * inv2
    return inv6 * (c12 * inv6 - c6), inv6 * (12.0 * c12 * inv6 - 6.0 * c6) * inv2


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST_FINITE)
def lj_energy_forces(x, types, offsets, nbr, codes, shifts, c12, c6, rc2, eshift):
    """Energy, forces (N, 3) and virial (3, 3) from a half neighbour list."""
    n = x.shape[0]
    f = np.zeros((n, 3))
    w = np.zeros((3, 3))
    energy = 0.0
    for i in range(n):
        ti = types[i]
        xi0 = x[i, 0]
        xi1 = x[i, 1]
        xi2 = x[i, 2]
        fi0 = 0.0
        fi1 = 0.0
        fi2 = 0.0
        for p in range(offsets[i], offsets[i + 1]):
            j = nbr[p]
            tj = types[j]
            s = codes[p]
            dx = x[j, 0] - xi0 + shifts[s, 0]
            dy = x[j, 1] - xi1 + shifts[s, 1]
            dz = x[j, 2] - xi2 + shifts[s, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 < rc2[ti, tj]:
                u, fr = lj_pair(r2, c12[ti, tj], c6[ti, tj])
                energy += u - eshift[ti, tj]
                fx = fr * dx
                fy = fr * dy
                fz = fr * dz
                fi0 -= fx
                fi1 -= fy
                fi2 -= fz
                f[j, 0] += fx
                f[j, 1] += fy
                f[j, 2] += fz
                w[0, 0] += dx * fx
                w[0, 1] += dx * fy
                w[0, 2] += dx * fz
                w[1, 1] += dy * fy
                w[1, 2] += dy * fz
                w[2, 2] += dz * fz
        f[i, 0] += fi0
        f[i, 1] += fi1
        f[i, 2] += fi2
    w[1, 0] = w[0, 1]
    w[2, 0] = w[0, 2]
    w[2, 1] = w[1, 2]
    return energy, f, w


def _pair_table(values, species: list[int], default) -> np.ndarray:
    """(T, T) table from a scalar, a per-species mapping (mixed by ``default``) or a pair mapping."""
    t = len(species)
    table = np.empty((t, t))
    for a, za in enumerate(species):
        for b, zb in enumerate(species):
            if isinstance(values, Mapping):
                if (za, zb) in values:
                    table[a, b] = values[(za, zb)]
                elif (zb, za) in values:
                    table[a, b] = values[(zb, za)]
                elif za in values and zb in values:
                    table[a, b] = default(values[za], values[zb])
                else:
                    raise PotentialError(f"no Lennard-Jones parameter for the pair ({za}, {zb})")
            else:
                table[a, b] = float(values)
    return table


class LennardJones(Potential):
    """Multi-species Lennard-Jones.

    ``species``: the species it covers (atomic numbers for ``metal``, labels for ``lj``).
    ``epsilon``, ``sigma``, ``cutoff``: a number, a per-species dict (Lorentz–Berthelot mixing:
    σ arithmetic, ε geometric mean, cutoff arithmetic), or a dict keyed by pairs (a, b).
    ``cutoff`` may instead be given as a multiple of σ with ``cutoff_sigma``.
    ``shift``: shift each pair energy to zero at its cutoff. ``tail``: add the tail correction.
    """

    full_neighbor_list = False

    def __init__(
        self,
        species: Sequence[int] = (1,),
        epsilon: float | Mapping = 1.0,
        sigma: float | Mapping = 1.0,
        cutoff: float | Mapping | None = None,
        cutoff_sigma: float | None = 2.5,
        shift: bool = False,
        tail: bool = False,
        units: str = "lj",
    ):
        self.species_list = [int(z) for z in species]
        if len(set(self.species_list)) != len(self.species_list) or not self.species_list:
            raise PotentialError(f"species must be a non-empty list of distinct labels, got {species}")
        self.units = units
        self.eps = _pair_table(epsilon, self.species_list, lambda a, b: np.sqrt(a * b))
        self.sig = _pair_table(sigma, self.species_list, lambda a, b: 0.5 * (a + b))
        if cutoff is not None:
            self.rc = _pair_table(cutoff, self.species_list, lambda a, b: 0.5 * (a + b))
        elif cutoff_sigma is not None:
            self.rc = cutoff_sigma * self.sig
        else:
            raise PotentialError("give cutoff or cutoff_sigma")
        if np.any(self.eps < 0) or np.any(self.sig <= 0) or np.any(self.rc <= 0):
            raise PotentialError("ε must be ≥ 0, σ and cutoff > 0")
        self.shift, self.tail = bool(shift), bool(tail)
        self.cutoff = float(self.rc.max())
        self.c12 = 4.0 * self.eps * self.sig**12
        self.c6 = 4.0 * self.eps * self.sig**6
        self.rc2 = self.rc**2
        self.eshift = np.where(self.shift, self.c12 / self.rc**12 - self.c6 / self.rc**6, 0.0)
        self._type_of = {z: k for k, z in enumerate(self.species_list)}

    @classmethod
    def rare_gas(cls, symbol: str, cutoff_sigma: float = 3.0, shift: bool = False, tail: bool = True):
        """Built-in Lennard-Jones parameters (eV, Å) for Ne, Ar, Kr or Xe (sources in module docstring)."""
        if symbol not in RARE_GAS:
            raise PotentialError(f"no built-in Lennard-Jones parameters for {symbol!r}; "
                                 f"built in: {', '.join(RARE_GAS)}")
        z, eps_k, sigma = RARE_GAS[symbol]
        return cls(species=[z], epsilon=eps_k * METAL.kB, sigma=sigma, cutoff_sigma=cutoff_sigma,
                   shift=shift, tail=tail, units="metal")

    def prepare(self, species: np.ndarray) -> np.ndarray:
        self.check_species(species)
        lookup = np.full(max(int(np.max(species)), max(self.species_list)) + 1, -1, np.int32)
        for z, k in self._type_of.items():
            lookup[z] = k
        return np.ascontiguousarray(lookup[species])

    def check_species(self, species: np.ndarray) -> None:
        missing = sorted(set(np.unique(species).tolist()) - set(self.species_list))
        if missing:
            raise PotentialError(f"species {missing} not covered by this Lennard-Jones potential "
                                 f"(it has {self.species_list}); add their ε and σ")

    def tail_energy_virial(self, types: np.ndarray, volume: float) -> tuple[float, float]:
        """Tail-correction energy and pressure·volume for the composition (type indices) and volume."""
        counts = np.bincount(types, minlength=len(self.species_list)).astype(np.float64)
        nn = np.outer(counts, counts)
        x3 = (self.sig / self.rc) ** 3
        x9 = x3**3
        pref = 4.0 * self.eps * self.sig**3
        e_tail = 2.0 * np.pi / volume * np.sum(nn * pref * (x9 / 9.0 - x3 / 3.0))
        if self.shift:  # mean-field value of the shift removed inside r_c (see the module docstring)
            e_tail += 2.0 * np.pi / (3.0 * volume) * np.sum(nn * self.rc**3 * self.eshift)
        pv_tail = 2.0 * np.pi / (3.0 * volume) * np.sum(nn * pref * (4.0 / 3.0 * x9 - 2.0 * x3))
        return float(e_tail), float(pv_tail)

    def compute(self, positions, cell, types, nlist: NeighborList):
        energy, forces, virial = lj_energy_forces(
            positions, types, nlist.offsets, nlist.neighbors, nlist.codes, nlist.shifts,
            self.c12, self.c6, self.rc2, self.eshift,
        )
        if self.tail:
            if not nlist.pbc.all():
                raise PotentialError("the tail correction needs a cell periodic in all three directions")
            e_tail, pv_tail = self.tail_energy_virial(types, abs(np.linalg.det(cell)))
            energy += e_tail
            virial = virial + np.eye(3) * pv_tail
        return energy, forces, virial

    def describe(self) -> dict:
        return {"name": "LennardJones", "units": self.units, "species": str(self.species_list),
                "epsilon": str(self.eps.tolist()), "sigma": str(self.sig.tolist()),
                "cutoff": str(self.rc.tolist()), "shift": int(self.shift), "tail": int(self.tail)}
