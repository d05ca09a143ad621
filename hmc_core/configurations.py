"""One data model for every stage: a set of atomic configurations as an xarray Dataset.

Every stage (sampling output, candidates, labels, training sets) stores configurations with this
schema; later stages add variables, they never fork it.

Dimensions
    ``config``       one entry per configuration
    ``atom``         padded to the largest configuration; ``n_atoms`` says how many are real
    ``xyz``          3 Cartesian components
    ``cell_vector``  3 lattice vectors (rows of the cell matrix)
    ``voigt``        6 stress components in Voigt order xx, yy, zz, yz, xz, xy

Variables (units)
    ``positions``  (config, atom, xyz)          float64, Å; NaN in padding
    ``species``    (config, atom)               int32 atomic numbers; 0 in padding
    ``n_atoms``    (config,)                    int32
    ``cell``       (config, cell_vector, xyz)   float64, Å; rows are lattice vectors (zeros if open)
    ``pbc``        (config, xyz)                int8 (1 = periodic); netCDF has no boolean type
    ``energy``     (config,)                    float64, eV, optional
    ``forces``     (config, atom, xyz)          float64, eV/Å, optional; NaN in padding
    ``stress``     (config, voigt)              float64, eV/Å³, optional, ASE sign convention
                                                (positive = tensile)
Attributes: ``schema = "pesflow.configurations/1"``, units, and free-form provenance.

Round trip to netCDF is exact (float64 throughout); conversion to and from lists of
:class:`ase.Atoms` and extxyz files keeps positions, species, cell, pbc, energy, forces and stress.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from hmc_core.atomic_io import atomic_target

SCHEMA = "pesflow.configurations/1"
UNITS = {"positions": "Å", "cell": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å³"}
VOIGT = ["xx", "yy", "zz", "yz", "xz", "xy"]


class ConfigurationError(ValueError):
    """A configurations dataset or structure does not follow the schema."""


def make_configurations(
    positions: Sequence[np.ndarray],
    species: Sequence[np.ndarray],
    cells: Sequence[np.ndarray] | None = None,
    pbc: Sequence[Sequence[bool]] | None = None,
    energy: Sequence[float] | None = None,
    forces: Sequence[np.ndarray] | None = None,
    stress: Sequence[np.ndarray] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Build a configurations dataset from per-configuration arrays.

    ``positions[k]`` is (n_k, 3) Å, ``species[k]`` (n_k,) atomic numbers, ``cells[k]`` (3, 3) Å
    (rows are lattice vectors), ``pbc[k]`` three booleans, ``energy[k]`` eV, ``forces[k]`` (n_k, 3)
    eV/Å, ``stress[k]`` (6,) Voigt eV/Å³.
    """
    n_config = len(positions)
    if len(species) != n_config:
        raise ConfigurationError(f"{n_config} position arrays but {len(species)} species arrays")
    n_atoms = np.array([len(p) for p in positions], dtype=np.int32)
    n_max = int(n_atoms.max()) if n_config else 0
    pos = np.full((n_config, n_max, 3), np.nan)
    spc = np.zeros((n_config, n_max), dtype=np.int32)
    for k, (p, z) in enumerate(zip(positions, species, strict=True)):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        z = np.asarray(z, dtype=np.int32).reshape(-1)
        if len(z) != len(p):
            raise ConfigurationError(f"config {k}: {len(p)} positions but {len(z)} species")
        if len(z) and (z.min() < 1 or z.max() > 118):
            raise ConfigurationError(f"config {k}: atomic numbers must be in 1..118, got {sorted(set(z))}")
        pos[k, : len(p)] = p
        spc[k, : len(z)] = z
    cell = np.zeros((n_config, 3, 3))
    if cells is not None:
        cell[:] = np.asarray(cells, dtype=np.float64).reshape(n_config, 3, 3)
    pbc_arr = np.zeros((n_config, 3), dtype=np.int8)
    if pbc is not None:
        pbc_arr[:] = np.asarray(pbc, dtype=bool).reshape(n_config, 3)
    data = {
        "positions": (("config", "atom", "xyz"), pos),
        "species": (("config", "atom"), spc),
        "n_atoms": (("config",), n_atoms),
        "cell": (("config", "cell_vector", "xyz"), cell),
        "pbc": (("config", "xyz"), pbc_arr),
    }
    if energy is not None:
        data["energy"] = (("config",), np.asarray(energy, dtype=np.float64).reshape(n_config))
    if forces is not None:
        f = np.full((n_config, n_max, 3), np.nan)
        for k, fk in enumerate(forces):
            if fk is not None:
                f[k, : n_atoms[k]] = np.asarray(fk, dtype=np.float64).reshape(-1, 3)
        data["forces"] = (("config", "atom", "xyz"), f)
    if stress is not None:
        s = np.full((n_config, 6), np.nan)
        for k, sk in enumerate(stress):
            if sk is not None:
                s[k] = np.asarray(sk, dtype=np.float64).reshape(6)
        data["stress"] = (("config", "voigt"), s)
    ds = xr.Dataset(data, coords={"xyz": ["x", "y", "z"], "voigt": VOIGT} if stress is not None
                    else {"xyz": ["x", "y", "z"]})
    for name, unit in UNITS.items():
        if name in ds:
            ds[name].attrs["units"] = unit
    ds.attrs["schema"] = SCHEMA
    ds.attrs.update(attrs or {})
    return ds


def from_atoms(atoms_list: Iterable, attrs: dict | None = None) -> xr.Dataset:
    """Convert a list of :class:`ase.Atoms` to a configurations dataset.

    Energies, forces and stresses are taken from an attached calculator's results when present
    (never computed here).
    """
    atoms_list = list(atoms_list)
    if not atoms_list:
        raise ConfigurationError("no structures given: the list of ASE Atoms is empty")
    energy, forces, stress = [], [], []
    for atoms in atoms_list:
        results = atoms.calc.results if atoms.calc is not None else {}
        energy.append(results.get("energy", results.get("free_energy", np.nan)))
        forces.append(results.get("forces"))
        s = results.get("stress")
        if s is not None and np.shape(s) == (3, 3):
            s = np.asarray(s)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        stress.append(s)
    has_e = any(np.isfinite(e) for e in energy)
    has_f = any(f is not None for f in forces)
    has_s = any(s is not None for s in stress)
    return make_configurations(
        positions=[a.get_positions() for a in atoms_list],
        species=[a.get_atomic_numbers() for a in atoms_list],
        cells=[a.cell.array for a in atoms_list],
        pbc=[a.pbc for a in atoms_list],
        energy=energy if has_e else None,
        forces=forces if has_f else None,
        stress=stress if has_s else None,
        attrs=attrs,
    )


def config_arrays(ds: xr.Dataset, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions (n, 3), species (n,), cell (3, 3) and pbc (3,) bool of configuration ``k``."""
    n = int(ds["n_atoms"].values[k])
    return (
        np.array(ds["positions"].values[k, :n]),
        np.array(ds["species"].values[k, :n]),
        np.array(ds["cell"].values[k]),
        np.asarray(ds["pbc"].values[k], dtype=bool),
    )


def to_atoms(ds: xr.Dataset) -> list:
    """Convert a configurations dataset to a list of :class:`ase.Atoms` (labels attached when present)."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    validate(ds)
    out = []
    for k in range(ds.sizes["config"]):
        pos, spc, cell, pbc = config_arrays(ds, k)
        atoms = Atoms(numbers=spc, positions=pos, cell=cell, pbc=pbc)
        results = {}
        n = len(spc)
        if "energy" in ds and np.isfinite(ds["energy"].values[k]):
            results["energy"] = float(ds["energy"].values[k])
        if "forces" in ds and np.all(np.isfinite(ds["forces"].values[k, :n])):
            results["forces"] = np.array(ds["forces"].values[k, :n])
        if "stress" in ds and np.all(np.isfinite(ds["stress"].values[k])):
            results["stress"] = np.array(ds["stress"].values[k])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the schema; raise :class:`ConfigurationError` naming what is wrong."""
    for name, dims in (("positions", ("config", "atom", "xyz")), ("species", ("config", "atom")),
                       ("n_atoms", ("config",)), ("cell", ("config", "cell_vector", "xyz")),
                       ("pbc", ("config", "xyz"))):
        if name not in ds:
            raise ConfigurationError(f"configurations dataset lacks the variable {name!r} (schema {SCHEMA})")
        if ds[name].dims != dims:
            raise ConfigurationError(f"variable {name!r} has dims {ds[name].dims}, expected {dims}")
    n_atoms = ds["n_atoms"].values
    if n_atoms.size and n_atoms.max() > ds.sizes["atom"]:
        raise ConfigurationError("n_atoms exceeds the padded atom dimension")
    return ds


def concat(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate configuration datasets along ``config`` (padding to the largest ``atom`` size)."""
    datasets = [d for d in datasets if d.sizes.get("config", 0) > 0]
    if not datasets:
        raise ConfigurationError("nothing to concatenate: every dataset is empty")
    n_max = max(d.sizes["atom"] for d in datasets)
    padded = []
    for d in datasets:
        if d.sizes["atom"] < n_max:
            fill = {v: (0 if v == "species" else np.nan) for v in d.data_vars if "atom" in d[v].dims}
            d = d.pad(atom=(0, n_max - d.sizes["atom"]))
            for v, val in fill.items():
                if val == 0:
                    d[v] = d[v].fillna(0).astype(np.int32)
        padded.append(d)
    out = xr.concat(padded, dim="config", data_vars="all", coords="minimal", compat="override",
                    combine_attrs="override")
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically and durably (:func:`hmc_core.atomic_io.atomic_target`: temporary
    file in the same folder, fsync, rename, fsync of the folder); the file gets mode ``0o666 & ~umask``."""
    path = Path(path)
    with atomic_target(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a dataset written by :func:`write_netcdf` fully into memory (the file is closed). A truncated or
    corrupt file raises :class:`ConfigurationError` naming it (not a low-level HDF5 traceback)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such dataset file: {path}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(f"{path} is not a readable netCDF dataset (truncated or corrupt?): "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; restore or "
                                 "remove it") from None


def _index_selection(index: str, n: int) -> list[int]:
    """ASE-style index text (``":"``, ``"3"``, ``"-1"``, ``"2:10:2"``) as a list of configuration indices."""
    try:
        if ":" in index:
            parts = [int(p) if p else None for p in index.split(":")]
            return list(range(n))[slice(*parts)]
        return [list(range(n))[int(index)]]
    except (ValueError, IndexError, TypeError):
        raise ConfigurationError(f"index {index!r} does not select structures of a file with {n}") from None


def element_numbers(species) -> list[int]:
    """Atomic numbers from element symbols or numbers (``["Ar"]``, ``"H,O"``, ``[1, 8]``); ValueError names the
    entry that is neither."""
    from ase.data import atomic_numbers

    items = species.split(",") if isinstance(species, str) else list(species)
    out = []
    for item in items:
        text = str(item).strip()
        if text.isdigit() and 0 < int(text) < 119:
            out.append(int(text))
        elif text in atomic_numbers and atomic_numbers[text] > 0:
            out.append(atomic_numbers[text])
        else:
            raise ValueError(f"unknown element {text!r} in species {species!r}: give element symbols such as 'Ar', "
                             "'H', 'O' (case matters) or atomic numbers")
    return out


def read_structures(path: str | os.PathLike, index: str = ":", species=None) -> xr.Dataset:
    """Read structures from any file ASE reads (extxyz, xyz, POSCAR, cif, …), a netCDF dataset, or an MLIP
    ``.cfg`` file (read by pesflow's own reader: ASE takes ``*.cfg`` as AtomEye). A ``.cfg`` stores atom types,
    not elements: ``species`` (symbols or atomic numbers, type 0 first) says which is which."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such structure file: {path}")
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory, not a structure file")
    if path.suffix in (".nc", ".netcdf", ".h5"):
        return validate(read_netcdf(path))
    if path.suffix == ".cfg":
        if species is None:
            raise ConfigurationError(f"{path} is an MLIP .cfg file, which stores atom types, not elements: say which "
                                     "element each type is (--species Ar,Kr on the command line, [system] species "
                                     "= [\"Ar\", \"Kr\"] in a campaign), type 0 first")
        from hmc_core.mtp.io import read_cfg

        ds = read_cfg(path, element_numbers(species))
        return ds if index == ":" else ds.isel(config=_index_selection(index, ds.sizes["config"]))
    from ase.io import read

    try:
        atoms = read(str(path), index=index)
    except Exception as exc:  # ASE raises many kinds; report them as one clear error
        key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
        if isinstance(key, str) and key.isalpha() and len(key) <= 3:  # ASE's symbol lookup: KeyError('Hx')
            raise ConfigurationError(f"unknown element symbol {key!r} in {path}: use chemical symbols (H, He, Li, …; "
                                     "first letter upper case) in the element column") from None
        raise ConfigurationError(f"could not read structures from {path}: {exc}") from exc
    return from_atoms(atoms if isinstance(atoms, list) else [atoms], attrs={"source": str(path)})


def write_extxyz(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the configurations (with labels when present) as extended XYZ."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(str(path), to_atoms(ds), format="extxyz")
    return path
