"""Campaign systems: built-in molecules/clusters, generated crystals, liquids and clusters of an element, or
structure files, and the random-displacement starting set."""

from __future__ import annotations

import numpy as np
import xarray as xr
from ase import Atoms

from hmc_core.configurations import config_arrays, from_atoms, make_configurations, read_structures
from hmc_core.neighbors import closest_pair

EXTRA_BUILTINS = ("ar13", "water-dimer")


def builtin_system(name: str) -> xr.Dataset:
    """A built-in open-boundary system: any molecule name of ASE's G2 collection (``H2O``, ``CH4``, ``NH3`` …),
    ``water-dimer`` (S22 geometry) or ``ar13`` (icosahedral argon cluster, 3.72 Å nearest neighbours)."""
    from ase.build import molecule
    from ase.collections import g2, s22

    if name == "ar13":
        from ase.cluster import Icosahedron

        atoms = Icosahedron("Ar", noshells=2, latticeconstant=5.26)
    elif name == "water-dimer":
        atoms = s22["Water_dimer"]
    elif name in g2.names:
        atoms = molecule(name)
    else:
        near = [n for n in g2.names if n.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown built-in system {name!r}{hint}; use an ASE G2 molecule name such as H2O, CH4, "
                         f"NH3, C2H6, or one of {', '.join(EXTRA_BUILTINS)}, or give `structure = \"file\"`")
    atoms.center()
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return from_atoms([atoms], attrs={"source": f"builtin:{name}"})


def load_system(builtin: str | None, structure=None, index: str = ":", species=None) -> xr.Dataset:
    """Reference structure(s) of a campaign as a configurations dataset (``species``: elements of the atom types
    of an MLIP ``.cfg`` file)."""
    if structure is not None:
        return read_structures(structure, index=index, species=species)
    return builtin_system(builtin)


#: the liquid builtin: HMC sweeps of a Lennard-Jones fluid at this reduced density and temperature
LIQUID_RHO_STAR, LIQUID_T_STAR, LIQUID_SWEEPS = 0.85, 2.0, 150


def system_structures(system, structure_path=None, seed: np.random.SeedSequence | int = 0) -> xr.Dataset:
    """Reference structure(s) of one :class:`flows.system_config.SystemConfig`: its file (``structure_path``,
    absolute), a molecule builtin, or a generated crystal / liquid / cluster of ``system.element``
    (``seed``: the liquid's melting run). Raises ValueError / OSError naming what is wrong."""
    if not system.generated:
        return load_system(system.builtin, structure_path, system.index, system.species)
    density = system.number_density()
    if system.builtin == "cluster":
        positions, cell, pbc = cluster(system.n_atoms, density), np.zeros((3, 3)), False
    else:
        positions, cell = crystal(system.crystal, system.cells, density)
        pbc = True
        if system.builtin == "liquid":
            positions = liquid_box(positions, cell, density, seed)
    atoms = Atoms([system.element] * len(positions),
                  positions=positions, cell=cell, pbc=pbc)
    if not pbc:
        atoms.center()
        atoms.cell[:] = 0.0
    return from_atoms([atoms], attrs={"source": f"builtin:{system.builtin} {system.element} "
                                                f"density={density:.6g}/A^3"})


def crystal(structure: str, cells, density: float) -> tuple[np.ndarray, np.ndarray]:
    """A perfect fcc / hcp / bcc supercell: positions (N, 3) Å and cell (3, 3) Å at ``density`` atoms/Å³,
    ``cells`` unit cells per direction (:func:`hmc_core.structures.lattice`: cubic cells for fcc and bcc,
    orthohexagonal ones with ideal c/a for hcp)."""
    from hmc_core.structures import lattice

    return lattice(structure, tuple(cells), density)


def cluster(n_atoms: int, density: float) -> np.ndarray:
    """An ``n_atoms`` cluster centred at 0, positions (n, 3) Å: a Mackay icosahedron when ``n_atoms`` is one
    (13, 55, 147, …), else the fcc sites nearest a central site; nearest neighbours those of an fcc crystal at
    ``density`` atoms/Å³ (the icosahedron's intra-shell spacing)."""
    from hmc_core.structures import crystal_seed, mackay_size

    magic = {mackay_size(k) for k in range(2, 12)}
    return crystal_seed("ico" if n_atoms in magic else "fcc", int(n_atoms), density)


def liquid_box(positions, cell, density: float, seed: np.random.SeedSequence | int = 0) -> np.ndarray:
    """Melt a crystal at fixed cell: positions (N, 3) Å of a liquid-like configuration in ``cell`` (Å).

    The crystal is taken to Lennard-Jones reduced units with σ chosen so that ρσ³ = 0.85 (a dense LJ liquid
    whatever the element) and melted by :data:`LIQUID_SWEEPS` HMC trajectories at T* = 2, far above the LJ
    melting line at that density (:func:`hmc_core.npt.melt`; its order-parameter check must find a liquid,
    else RuntimeError). The result has the liquid's disorder and the given density, not the element's own
    liquid structure: the campaign's exploration on the learned potential equilibrates it."""
    from hmc_core.hmc import HMCConfig
    from hmc_core.npt import melt
    from hmc_core.potentials.lennard_jones import LennardJones

    sigma = (LIQUID_RHO_STAR / density) ** (1.0 / 3.0)
    n = len(positions)
    lj = LennardJones(species=(1,), cutoff_sigma=2.5, shift=True, units="lj")
    config = HMCConfig(temperature=LIQUID_T_STAR, dt=0.005, n_steps=10, units="lj")
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    x = melt(lj, np.ones(n, np.int64), np.asarray(positions) / sigma, np.asarray(cell) / sigma, config,
             LIQUID_T_STAR, n_sweeps=LIQUID_SWEEPS, seed=seed)
    return x * sigma


def rattled_set(structures: xr.Dataset, n: int, sigma: float, min_dist: float, seed: int,
                max_tries: int = 1000) -> xr.Dataset:
    """``n`` configurations: the structures in turn, every coordinate displaced by N(0, σ²) (σ in Å);
    draws with two atoms closer than ``min_dist`` (Å) are redrawn. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    pos, spc, cells, pbcs = [], [], [], []
    for k in range(n):
        p0, z, cell, pbc = config_arrays(structures, k % structures.sizes["config"])
        for _ in range(max_tries):
            p = p0 + rng.normal(0.0, sigma, p0.shape)
            if closest_pair(p, cell, pbc, min_dist) is None:
                break
        else:
            raise ValueError(f"could not displace structure {k % structures.sizes['config']} by σ = {sigma} Å "
                             f"without atoms closer than {min_dist} Å in {max_tries} draws (a smaller displacement or "
                             "minimum distance would do)")
        pos.append(p)
        spc.append(z)
        cells.append(cell)
        pbcs.append(pbc)
    return make_configurations(pos, spc, cells, pbcs, attrs={"source": f"rattle sigma={sigma} seed={seed}"})
