"""The Moment Tensor Potential as a :class:`hmc_core.potentials.Potential` (full neighbour list).

:class:`MTP` holds the parameters of an MLIP ``.mtp`` file (radial basis, basis definition, trained
coefficients) plus the chemical elements its species indices stand for, and evaluates energies (eV),
forces (eV/Å) and virials (eV) with the Numba kernels of :mod:`hmc_core.mtp.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hmc_core.mtp.basis import MomentBasis
from hmc_core.mtp.evaluate import angular_tables, mtp_energy_forces_fast, mtp_site_basis_fast
from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import ForceField, Potential, PotentialError

MIN_DIST_POLICIES = ("raise", "nan", "allow")


@dataclass
class MTP(Potential):
    """Moment Tensor Potential with MLIP conventions (``RBChebyshev`` radial basis).

    ``species`` (n_species,) atomic numbers in the order of the file's species indices 0, 1, …;
    ``min_dist``/``max_dist`` Å (``max_dist`` is the cutoff); ``radial_coeffs``
    (n_species, n_species, radial_funcs_count, radial_basis_size); ``species_coeffs`` (n_species,) eV;
    ``moment_coeffs`` (n_basis,) eV; ``scaling`` multiplies the radial basis.
    ``below_min_dist``: what to do when two atoms are closer than ``min_dist``: ``"raise"``
    (:class:`PotentialError`), ``"nan"`` (energy NaN, e.g. to reject an HMC trajectory) or ``"allow"``
    (extrapolate the Chebyshev basis, as MLIP and motep do).
    """

    species: tuple[int, ...]
    basis: MomentBasis
    min_dist: float
    max_dist: float
    radial_basis_size: int
    radial_coeffs: np.ndarray
    species_coeffs: np.ndarray
    moment_coeffs: np.ndarray
    scaling: float = 1.0
    potential_name: str = "MTP1m"
    below_min_dist: str = "raise"
    extra: dict = field(default_factory=dict)
    full_neighbor_list = True
    units = "metal"

    def __post_init__(self):
        self.species = tuple(int(z) for z in self.species)
        s = len(self.species)
        if len(set(self.species)) != s:
            raise ValueError(f"MTP species must be distinct, got {self.species}")
        if not (0.0 <= self.min_dist < self.max_dist):
            raise ValueError(f"need 0 ≤ min_dist < max_dist, got min_dist={self.min_dist}, max_dist={self.max_dist}")
        if self.below_min_dist not in MIN_DIST_POLICIES:
            raise ValueError(f"below_min_dist must be one of {MIN_DIST_POLICIES}, got {self.below_min_dist!r}")
        self.min_dist = float(self.min_dist)
        self.max_dist = float(self.max_dist)
        self.scaling = float(self.scaling)
        self.radial_basis_size = int(self.radial_basis_size)
        shape = (s, s, self.basis.radial_funcs_count, self.radial_basis_size)
        self.radial_coeffs = np.ascontiguousarray(self.radial_coeffs, dtype=np.float64)
        if self.radial_coeffs.shape != shape:
            raise ValueError(f"radial_coeffs have shape {self.radial_coeffs.shape}, expected {shape} "
                             "(species, species, radial_funcs_count, radial_basis_size)")
        self.species_coeffs = np.ascontiguousarray(self.species_coeffs, dtype=np.float64).reshape(-1)
        if self.species_coeffs.shape != (s,):
            raise ValueError(f"species_coeffs have {self.species_coeffs.size} values, expected {s}")
        self.moment_coeffs = np.ascontiguousarray(self.moment_coeffs, dtype=np.float64).reshape(-1)
        if self.moment_coeffs.shape != (self.basis.n_basis,):
            raise ValueError(f"moment_coeffs have {self.moment_coeffs.size} values, expected "
                             f"{self.basis.n_basis} (alpha_scalar_moments)")

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def untrained(cls, basis: MomentBasis, species, min_dist: float = 2.0, max_dist: float = 5.0,
                  radial_basis_size: int = 8, seed: int = 0, **kwargs) -> MTP:
        """A potential with the given basis and small random radial coefficients (a fit starts here).

        Radial coefficients ~ U(−0.1, 0.1) from ``seed`` (MLIP's initialisation), coefficients zero.
        """
        s = len(species)
        rng = np.random.default_rng(seed)
        radial = rng.uniform(-0.1, 0.1, (s, s, basis.radial_funcs_count, radial_basis_size))
        return cls(species=tuple(species), basis=basis, min_dist=min_dist, max_dist=max_dist,
                   radial_basis_size=radial_basis_size, radial_coeffs=radial, species_coeffs=np.zeros(s),
                   moment_coeffs=np.zeros(basis.n_basis), **kwargs)

    # -- Potential interface -------------------------------------------------------------------
    @property
    def cutoff(self) -> float:  # type: ignore[override]
        return self.max_dist

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_basis(self) -> int:
        """Number of moment basis functions B_s (``alpha_scalar_moments``)."""
        return self.basis.n_basis

    @property
    def linear_coefficients(self) -> np.ndarray:
        """All linear parameters (n_species + n_basis,): ``species_coeffs`` then ``moment_coeffs`` (eV).

        Matches the columns of ``per_atom_basis(..., include_species=True)``: E_i = row · coefficients.
        """
        return np.concatenate([self.species_coeffs, self.moment_coeffs])

    @linear_coefficients.setter
    def linear_coefficients(self, values) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        expected = self.n_species + self.n_basis
        if values.size != expected:
            raise ValueError(f"linear coefficients need {expected} values (n_species={self.n_species} species "
                             f"constants then n_basis={self.n_basis} moment coefficients), got {values.size}")
        if not np.all(np.isfinite(values)):
            raise ValueError("linear coefficients contain NaN or inf")
        self.species_coeffs = values[: self.n_species].copy()
        self.moment_coeffs = values[self.n_species:].copy()

    def check_species(self, species: np.ndarray) -> None:
        missing = sorted(set(np.asarray(species).tolist()) - set(self.species))
        if missing:
            raise PotentialError(f"species {missing} are not in this MTP (it covers atomic numbers "
                                 f"{list(self.species)}); fit a potential that includes them or remove those atoms")

    def prepare(self, species: np.ndarray) -> np.ndarray:
        self.check_species(species)
        lookup = {z: k for k, z in enumerate(self.species)}
        return np.array([lookup[int(z)] for z in np.asarray(species).reshape(-1)], dtype=np.int32)

    def _args(self):
        return (self.min_dist, self.max_dist, self.scaling, self.radial_coeffs)

    def _angular(self):
        """Monomial tables of the basis (cached per basis object)."""
        cache = self.__dict__.get("_angular_cache")
        if cache is None or cache[0] is not self.basis:
            cache = (self.basis, angular_tables(self.basis.alpha_index_basic))
            self.__dict__["_angular_cache"] = cache
        return cache[1]

    def _check_close(self, close: np.ndarray) -> bool:
        """Apply the ``below_min_dist`` policy; return True when the result must be NaN."""
        if not np.isfinite(close[0]) or self.below_min_dist == "allow":
            return False
        if self.below_min_dist == "nan":
            return True
        raise PotentialError(f"atoms {int(close[1])} and {int(close[2])} are {close[0]:.4f} Å apart, closer than the "
                             f"MTP's min_dist = {self.min_dist} Å (outside its training range); use "
                             "below_min_dist='allow' to extrapolate or 'nan' to reject such structures")

    def compute_site_energies(self, positions, cell, types, nlist: NeighborList):
        """Site energies (N,) eV, forces (N, 3) eV/Å and virial (3, 3) eV."""
        if not nlist.full:
            raise ValueError("the MTP needs a full neighbour list (NeighborList(..., full=True))")
        b = self.basis
        e, f, w, close = mtp_energy_forces_fast(
            positions, types, nlist.offsets, nlist.neighbors, nlist.codes, nlist.shifts, *self._args(),
            self.species_coeffs, self.moment_coeffs, b.alpha_index_basic, b.alpha_index_times,
            b.alpha_moment_mapping, b.alpha_moments_count, *self._angular())
        if self._check_close(close):
            e = np.full_like(e, np.nan)
        return e, f, w

    def compute(self, positions, cell, types, nlist):
        e, f, w = self.compute_site_energies(positions, cell, types, nlist)
        return float(e.sum()), f, w

    def site_basis(self, positions, cell, types, nlist) -> np.ndarray:
        """Per-atom basis values B (N, n_basis), species columns excluded."""
        b = self.basis
        out, close = mtp_site_basis_fast(
            positions, types, nlist.offsets, nlist.neighbors, nlist.codes, nlist.shifts, *self._args(),
            b.alpha_index_basic, b.alpha_index_times, b.alpha_moment_mapping, b.alpha_moments_count,
            *self._angular())
        if self._check_close(close):
            out[:] = np.nan
        return out

    def describe(self) -> dict:
        return {"name": "MTP", "cutoff": self.max_dist, "min_dist": self.min_dist, "level": self.basis.level,
                "species": list(self.species), "n_basis": self.n_basis,
                "radial_funcs_count": self.basis.radial_funcs_count, "radial_basis_size": self.radial_basis_size}

    def copy(self) -> MTP:
        return MTP(species=self.species, basis=self.basis, min_dist=self.min_dist, max_dist=self.max_dist,
                   radial_basis_size=self.radial_basis_size, radial_coeffs=self.radial_coeffs.copy(),
                   species_coeffs=self.species_coeffs.copy(), moment_coeffs=self.moment_coeffs.copy(),
                   scaling=self.scaling, potential_name=self.potential_name, below_min_dist=self.below_min_dist,
                   extra=dict(self.extra))

    # -- convenience ----------------------------------------------------------------------
    def evaluate(self, positions, species, cell=None, pbc=(False, False, False)) -> dict:
        """Energy (eV), site energies (N,), forces (N, 3) eV/Å, virial (3, 3) eV and stress (6,) Voigt eV/Å³
        (ASE sign, NaN unless fully periodic) of one structure."""
        ff = ForceField(self, species, cell, pbc, skin=0.0)
        x = np.array(positions, dtype=np.float64).reshape(-1, 3)
        ff.nlist.update(x, ff.cell, ff.pbc)
        e, f, w = self.compute_site_energies(x, ff.cell, ff.types, ff.nlist)
        stress = np.full(6, np.nan)
        if ff.pbc.all():
            s = -0.5 * (w + w.T) / ff.volume
            stress = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        return {"energy": float(e.sum()), "energies": e, "forces": f, "virial": w, "stress": stress}
