"""MLIP file formats: ``.mtp`` potentials (trained or untrained templates) and ``.cfg`` training sets.

``.mtp`` files carry species indices 0, 1, …, not elements; pesflow writes the elements into
``potential_tag`` as ``species:42,3`` (a free text field MLIP and motep keep) and otherwise needs
``species=`` when reading. ``.cfg`` files: MLIP's ``BEGIN_CFG … END_CFG`` blocks with ``Size``,
``Supercell`` (rows = lattice vectors, Å; absent for open structures), ``AtomData`` (``id type cartes_x …``
or ``direct_x …``, optional ``fx fy fz`` eV/Å), ``Energy`` (eV) and ``PlusStress`` (= −stress · volume, eV,
order xx yy zz yz xz xy). Numbers are written exactly (shortest round-trip decimals; fixed notation in ``.cfg``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from hmc_core.configurations import make_configurations, validate
from hmc_core.mtp.basis import BasisError, MomentBasis
from hmc_core.mtp.potential import MTP


class MTPFileError(ValueError):
    """A ``.mtp`` or ``.cfg`` file is malformed (the message names the file and line)."""


def _ints(text: str, where: str) -> np.ndarray:
    body = text.replace("{", " ").replace("}", " ").replace(",", " ").split()
    try:
        return np.array([int(v) for v in body], dtype=np.int32)
    except ValueError as err:
        raise MTPFileError(f"{where}: expected integers, got {text.strip()[:60]!r}") from err


def _floats(text: str, where: str) -> np.ndarray:
    body = text.replace("{", " ").replace("}", " ").replace(",", " ").split()
    try:
        return np.array([float(v) for v in body], dtype=np.float64)
    except ValueError as err:
        raise MTPFileError(f"{where}: expected numbers, got {text.strip()[:60]!r}") from err


# Radial-basis keys of the dialects motep 0.2 reads: flat (MLIP-2: min_dist, max_dist, radial_basis_size), old
# grouped (min_val, max_val, basis_size) and grouped (motep's default writer: min, max, size under the
# radial_basis_type line).
_RADIAL_KEYS = {"min_dist": "min_dist", "max_dist": "max_dist", "radial_basis_size": "radial_basis_size",
                "min_val": "min_dist", "max_val": "max_dist", "basis_size": "radial_basis_size",
                "min": "min_dist", "max": "max_dist", "size": "radial_basis_size"}
_GROUPED_KEYS = {"min_val", "max_val", "basis_size", "min", "max", "size"}
_MAGNETIC_KEYS = {"magnetic_basis_type", "min_mag", "max_mag", "mag_basis_size"}
_INT_KEYS = ("species_count", "radial_basis_size", "radial_funcs_count", "alpha_moments_count",
             "alpha_index_basic_count", "alpha_index_times_count", "alpha_scalar_moments")


def _radial_block(lines: list[str], k: int, path: Path) -> tuple[dict, int]:
    """Parse the ``radial_coeffs`` block starting at line index ``k`` (after its header) without needing
    ``radial_funcs_count`` (motep's default writer puts that key after the block). Returns
    ``({(a, b): (line of the pair header, [(line, row), …])}, index of the first line after the block)``."""
    pairs: dict = {}
    current = None
    while k < len(lines):
        text = lines[k].strip()
        if not text:
            k += 1
            continue
        if text.startswith("{"):
            if current is None:
                raise MTPFileError(f"{path}:{k + 1}: radial coefficients before a species pair like '0-1'")
            pairs[current][1].append((k + 1, _floats(text, f"{path}:{k + 1}")))
        elif "=" in text:
            break
        else:
            try:
                a, b = (int(v) for v in text.split("-"))
            except ValueError as err:
                raise MTPFileError(f"{path}:{k + 1}: expected a species pair like '0-1' or a row of radial "
                                   f"coefficients {{…}}, got {text[:60]!r}") from err
            if (a, b) in pairs:
                raise MTPFileError(f"{path}:{k + 1}: species pair {a}-{b} appears twice in radial_coeffs")
            current = (a, b)
            pairs[current] = (k + 1, [])
        k += 1
    return pairs, k


def _radial_coeffs(fields: dict, where: dict, path: Path) -> np.ndarray:
    """The (s, s, radial_funcs_count, radial_basis_size) array of a parsed block, every count checked."""
    s, n_mu, nb = fields["species_count"], fields["radial_funcs_count"], fields["radial_basis_size"]
    coeffs = np.zeros((s, s, n_mu, nb))
    pairs = fields.pop("_radial_pairs")
    for (a, b), (line, rows) in pairs.items():
        if not (0 <= a < s and 0 <= b < s):
            raise MTPFileError(f"{path}:{line}: species pair {a}-{b} outside 0..{s - 1} "
                               f"(species_count = {s} at line {where['species_count']})")
        if len(rows) != n_mu:
            raise MTPFileError(f"{path}:{where['radial_funcs_count']}: radial_funcs_count = {n_mu} but species "
                               f"pair {a}-{b} (line {line}) has {len(rows)} rows of radial coefficients")
        for mu, (row_line, row) in enumerate(rows):
            if row.size != nb:
                raise MTPFileError(f"{path}:{row_line}: {row.size} radial coefficients, expected radial_basis_size = "
                                   f"{nb} (line {where['radial_basis_size']})")
            coeffs[a, b, mu] = row
    if len(pairs) != s * s:
        missing = [f"{a}-{b}" for a in range(s) for b in range(s) if (a, b) not in pairs]
        raise MTPFileError(f"{path}:{where['radial_coeffs']}: radial_coeffs has {len(pairs)} species pairs, "
                           f"species_count = {s} (line {where['species_count']}) needs {s * s}; missing {missing[:6]}")
    return coeffs


def read_mtp_fields(path: str | os.PathLike) -> dict:
    """Parse a ``.mtp`` file into a dict of raw fields (arrays for lists); raises :class:`MTPFileError`.

    Reads every dialect motep 0.2 reads (flat ``min_dist``/``max_dist``/``radial_basis_size``, grouped
    ``min``/``max``/``size`` or ``min_val``/``max_val``/``basis_size`` under ``radial_basis_type``,
    ``radial_coeffs`` before or after ``radial_funcs_count``) and refuses MLIP-3 magnetic MTPs by name.
    Errors name the file and the line of the offending key (``fields["_lines"]`` maps keys to lines).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise MTPFileError(f"cannot read MTP file {path}: {err}") from err
    if not lines or lines[0].strip() != "MTP":
        raise MTPFileError(f"{path}: line 1 must be 'MTP' (is this an MLIP .mtp file?)")
    fields: dict = {}
    where: dict = {}
    section = None  # "radial" after radial_basis_type: the grouped keys belong to it
    k = 1
    while k < len(lines):
        line = lines[k].strip()
        at = f"{path}:{k + 1}"
        k += 1
        if not line:
            continue
        if line == "radial_coeffs":
            if "species_count" not in fields:
                raise MTPFileError(f"{at}: radial_coeffs before species_count is given")
            where["radial_coeffs"] = k
            fields["_radial_pairs"], k = _radial_block(lines, k, path)
            continue
        if "=" not in line:
            raise MTPFileError(f"{at}: expected 'key = value', got {line[:60]!r}")
        key, value = (v.strip() for v in line.split("=", 1))
        if key in _MAGNETIC_KEYS:
            raise MTPFileError(f"{at}: magnetic MTP not supported ({key}: an MLIP-3 magnetic moment tensor "
                               "potential); pesflow reads and evaluates non-magnetic MTPs only")
        if key in _GROUPED_KEYS and section != "radial":
            raise MTPFileError(f"{at}: {key} outside a basis section (it belongs under 'radial_basis_type = …')")
        if key == "radial_basis_type":
            section = "radial"
        key = _RADIAL_KEYS.get(key, key)
        if key in where:
            raise MTPFileError(f"{at}: {key} is given twice (first at line {where[key]})")
        where[key] = k
        if key in ("alpha_index_basic", "alpha_index_times"):
            vals = _ints(value, at)
            if vals.size % 4:
                raise MTPFileError(f"{at}: {key} entries must have 4 integers each")
            fields[key] = vals.reshape(-1, 4)
        elif key == "alpha_moment_mapping":
            fields[key] = _ints(value, at)
        elif key in ("species_coeffs", "moment_coeffs"):
            fields[key] = _floats(value, at)
        elif key in ("scaling", "min_dist", "max_dist"):
            vals = _floats(value, at)
            if vals.size != 1:
                raise MTPFileError(f"{at}: {key} must be one number")
            fields[key] = float(vals[0])
        elif key in _INT_KEYS:
            vals = _ints(value, at)
            if vals.size != 1:
                raise MTPFileError(f"{at}: {key} must be one integer")
            fields[key] = int(vals[0])
        else:
            fields[key] = value
    required = ["species_count", "radial_basis_type", "min_dist", "max_dist", "radial_basis_size",
                "radial_funcs_count", "alpha_moments_count", "alpha_index_basic", "alpha_index_times",
                "alpha_moment_mapping"]
    missing = [r for r in required if r not in fields]
    if missing:
        raise MTPFileError(f"{path}: missing fields {missing}")
    if fields["radial_basis_type"] != "RBChebyshev":
        raise MTPFileError(f"{path}:{where['radial_basis_type']}: radial_basis_type "
                           f"{fields['radial_basis_type']!r} is not supported (only RBChebyshev)")
    for key, n in (("alpha_index_basic", "alpha_index_basic_count"), ("alpha_index_times", "alpha_index_times_count"),
                   ("alpha_moment_mapping", "alpha_scalar_moments")):
        if n in fields and len(fields[key]) != fields[n]:
            raise MTPFileError(f"{path}:{where[n]}: {n} = {fields[n]} but {key} (line {where[key]}) has "
                               f"{len(fields[key])} entries")
    basic, times = fields["alpha_index_basic"], fields["alpha_index_times"]
    targets = np.unique(times[:, 3]) if len(times) else np.zeros(0, dtype=np.int32)
    expected = len(basic) + len(targets)
    if fields["alpha_moments_count"] != expected:
        raise MTPFileError(f"{path}:{where['alpha_moments_count']}: alpha_moments_count = "
                           f"{fields['alpha_moments_count']} but the file defines {expected} moments "
                           f"({len(basic)} in alpha_index_basic + {len(targets)} contraction results in "
                           "alpha_index_times)")
    if "_radial_pairs" in fields:
        fields["radial_coeffs"] = _radial_coeffs(fields, where, path)
    fields["_lines"] = where
    return fields


# Basis sizes (alpha_scalar_moments, alpha_index_basic_count) of MLIP's level templates, to name a file's level.
_TEMPLATE_LEVELS = {(1, 1): 2, (2, 1): 4, (5, 5): 6, (9, 11): 8, (16, 25): 10, (29, 46): 12, (52, 81): 14,
                    (92, 130): 16, (163, 201): 18, (288, 295): 20, (500, 421): 22, (864, 581): 24, (1464, 706): 26}


def basis_from_fields(fields: dict, path="") -> MomentBasis:
    try:
        return MomentBasis(radial_funcs_count=fields["radial_funcs_count"],
                           alpha_moments_count=fields["alpha_moments_count"],
                           alpha_index_basic=fields["alpha_index_basic"],
                           alpha_index_times=fields["alpha_index_times"],
                           alpha_moment_mapping=fields["alpha_moment_mapping"],
                           level=_TEMPLATE_LEVELS.get((len(fields["alpha_moment_mapping"]),
                                                       len(fields["alpha_index_basic"]))))
    except BasisError as err:
        raise MTPFileError(f"{path}: inconsistent basis: {err}") from err


def read_basis(path: str | os.PathLike) -> MomentBasis:
    """The basis definition (moment and contraction lists) of any ``.mtp`` file, trained or not."""
    return basis_from_fields(read_mtp_fields(path), path)


def read_mtp(path: str | os.PathLike, species: Sequence[int] | None = None, below_min_dist: str = "raise",
             seed: int = 0) -> MTP:
    """Read an MLIP ``.mtp`` file as an :class:`MTP`.

    ``species``: atomic numbers for the file's species indices 0, 1, … (default: from a pesflow
    ``potential_tag = species:…``). An untrained template gets MLIP's starting point: radial
    coefficients U(−0.1, 0.1) from ``seed``, zero species and moment coefficients, scaling 1.
    """
    fields = read_mtp_fields(path)
    basis = basis_from_fields(fields, path)
    s = fields["species_count"]
    if species is None:
        tag = fields.get("potential_tag", "")
        if tag.startswith("species:"):
            species = [int(v) for v in tag[len("species:"):].split(",") if v]
        else:
            raise MTPFileError(f"{path} does not say which elements its {s} species are; pass species=[Z0, Z1, …] "
                               "(atomic numbers in the order of the file's species indices)")
    species = [int(z) for z in species]
    if len(species) != s:
        raise MTPFileError(f"{path} has species_count = {s} but {len(species)} atomic numbers were given: {species}")
    trained = "radial_coeffs" in fields
    if trained:
        for key, n in (("species_coeffs", s), ("moment_coeffs", basis.n_basis)):
            if key not in fields or len(fields[key]) != n:
                raise MTPFileError(f"{path}: {key} must have {n} values")
        radial = fields["radial_coeffs"]
        species_coeffs, moment_coeffs = fields["species_coeffs"], fields["moment_coeffs"]
    else:
        rng = np.random.default_rng(seed)
        radial = rng.uniform(-0.1, 0.1, (s, s, basis.radial_funcs_count, fields["radial_basis_size"]))
        species_coeffs, moment_coeffs = np.zeros(s), np.zeros(basis.n_basis)
    scaling = fields.get("scaling")
    return MTP(species=tuple(species), basis=basis, min_dist=fields["min_dist"], max_dist=fields["max_dist"],
               radial_basis_size=fields["radial_basis_size"], radial_coeffs=radial, species_coeffs=species_coeffs,
               moment_coeffs=moment_coeffs, scaling=1.0 if scaling is None else scaling,
               potential_name=fields.get("potential_name", "MTP1m"), below_min_dist=below_min_dist,
               extra={"version": fields.get("version", "1.1.0"), "trained": trained})


def _fmt(v: float) -> str:
    return f"{v:.16e}"


def _pos(v: float) -> str:
    """Shortest exact decimal without exponent (MLIP-style fixed notation; motep's reader needs it)."""
    return np.format_float_positional(float(v), unique=True, trim="-")


def _list(values, fmt=str) -> str:
    return "{" + ", ".join(fmt(v) for v in values) + "}"


def format_mtp(mtp: MTP, untrained: bool = False) -> str:
    """The text of an MLIP ``.mtp`` file for ``mtp`` (``untrained``: basis definition only)."""
    b = mtp.basis
    out = ["MTP", f"version = {mtp.extra.get('version', '1.1.0')}", f"potential_name = {mtp.potential_name}"]
    if not untrained:
        out.append(f"scaling = {_fmt(mtp.scaling)}")
    out += [f"species_count = {mtp.n_species}", "potential_tag = species:" + ",".join(str(z) for z in mtp.species),
            "radial_basis_type = RBChebyshev", f"\tmin_dist = {_fmt(mtp.min_dist)}",
            f"\tmax_dist = {_fmt(mtp.max_dist)}", f"\tradial_basis_size = {mtp.radial_basis_size}",
            f"\tradial_funcs_count = {b.radial_funcs_count}"]
    if not untrained:
        out.append("\tradial_coeffs")
        for a in range(mtp.n_species):
            for c in range(mtp.n_species):
                out.append(f"\t\t{a}-{c}")
                for mu in range(b.radial_funcs_count):
                    out.append("\t\t\t" + _list(mtp.radial_coeffs[a, c, mu], _fmt))
    out += [f"alpha_moments_count = {b.alpha_moments_count}", f"alpha_index_basic_count = {b.n_basic}",
            "alpha_index_basic = " + _list(b.alpha_index_basic, lambda r: _list(r)),
            f"alpha_index_times_count = {len(b.alpha_index_times)}",
            "alpha_index_times = " + _list(b.alpha_index_times, lambda r: _list(r)),
            f"alpha_scalar_moments = {b.n_basis}", "alpha_moment_mapping = " + _list(b.alpha_moment_mapping)]
    if not untrained:
        out += ["species_coeffs = " + _list(mtp.species_coeffs, _fmt),
                "moment_coeffs = " + _list(mtp.moment_coeffs, _fmt)]
    return "\n".join(out) + "\n"


def write_mtp(mtp: MTP, path: str | os.PathLike, untrained: bool = False) -> Path:
    """Write ``mtp`` as an MLIP ``.mtp`` file (readable by MLIP, its LAMMPS interface and motep)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_mtp(mtp, untrained), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- .cfg
def read_cfg(path: str | os.PathLike, species: Sequence[int]) -> xr.Dataset:
    """Read an MLIP ``.cfg`` file as a configurations dataset; ``species[t]`` is the atomic number of type t."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise MTPFileError(f"cannot read cfg file {path}: {err}") from err
    species = [int(z) for z in species]
    pos, spc, cells, pbcs, energy, forces, stress = [], [], [], [], [], [], []
    k = 0

    def err(msg):
        return MTPFileError(f"{path}:{k + 1}: {msg}")

    while k < len(lines):
        if lines[k].strip() != "BEGIN_CFG":
            if lines[k].strip():
                raise err(f"expected BEGIN_CFG, got {lines[k].strip()[:40]!r}")
            k += 1
            continue
        k += 1
        size, cell, atoms, e, plus = None, None, None, np.nan, None
        while k < len(lines) and lines[k].strip() != "END_CFG":
            words = lines[k].split()
            head = words[0] if words else ""
            try:
                if head == "Size":
                    size = int(lines[k + 1].split()[0])
                    k += 2
                elif head in ("Supercell", "SuperCell"):
                    rows = []
                    k += 1
                    while k < len(lines) and len(lines[k].split()) == 3 and len(rows) < 3:
                        rows.append([float(v) for v in lines[k].split()])
                        k += 1
                    cell = np.array(rows)
                elif head in ("AtomData:", "Atomic_data:"):
                    if size is None:
                        raise err("AtomData before Size")
                    cols = words[1:]
                    if k + size >= len(lines):
                        raise err(f"AtomData announces {size} atoms but the file ends first")
                    table = [lines[k + 1 + a].split() for a in range(size)]
                    if any(len(row) != len(cols) for row in table):
                        raise err(f"AtomData rows must have {len(cols)} columns ({' '.join(cols)})")
                    atoms = {c: np.array([float(row[n]) for row in table]) for n, c in enumerate(cols)}
                    k += 1 + size
                elif head == "Energy":
                    e = float(lines[k + 1].split()[0])
                    k += 2
                elif head == "PlusStress:":
                    plus = dict(zip(words[1:], (float(v) for v in lines[k + 1].split()), strict=True))
                    k += 2
                else:
                    k += 1
            except (ValueError, IndexError) as exc:
                raise err(f"cannot parse the {head} block: {exc}") from exc
        if k >= len(lines):
            raise err("file ends before END_CFG")
        k += 1
        if atoms is None or "type" not in atoms:
            raise err("configuration without an AtomData block with a 'type' column")
        types = atoms["type"].astype(int)
        if types.min() < 0 or types.max() >= len(species):
            raise err(f"atom types {sorted(set(types))} but only {len(species)} species given ({species})")
        n_periodic = 0 if cell is None else len(cell)
        full_cell = np.zeros((3, 3))
        if n_periodic:
            full_cell[:n_periodic] = cell
        if all(c in atoms for c in ("cartes_x", "cartes_y", "cartes_z")):
            x = np.stack([atoms["cartes_x"], atoms["cartes_y"], atoms["cartes_z"]], 1)
        elif all(c in atoms for c in ("direct_x", "direct_y", "direct_z")) and n_periodic == 3:
            x = np.stack([atoms["direct_x"], atoms["direct_y"], atoms["direct_z"]], 1) @ full_cell
        else:
            raise err("AtomData needs cartes_x/y/z columns (or direct_x/y/z with a 3-row Supercell)")
        pos.append(x)
        spc.append(np.array([species[t] for t in types]))
        cells.append(full_cell)
        pbcs.append([a < n_periodic for a in range(3)])
        energy.append(e)
        forces.append(np.stack([atoms["fx"], atoms["fy"], atoms["fz"]], 1) if "fx" in atoms else None)
        if plus is not None and n_periodic == 3:
            vol = abs(np.linalg.det(full_cell))
            stress.append(-np.array([plus[c] for c in ("xx", "yy", "zz", "yz", "xz", "xy")]) / vol)
        else:
            stress.append(None)
    if not pos:
        raise MTPFileError(f"{path}: no BEGIN_CFG … END_CFG block found")
    has_f = any(f is not None for f in forces)
    has_s = any(s is not None for s in stress)
    return make_configurations(pos, spc, cells, pbcs, energy=energy, forces=forces if has_f else None,
                               stress=stress if has_s else None, attrs={"source": str(path)})


def write_cfg(ds: xr.Dataset, path: str | os.PathLike, species: Sequence[int] | None = None) -> Path:
    """Write a configurations dataset as MLIP ``.cfg``; type t is ``species[t]`` (default: sorted elements)."""
    validate(ds)
    if species is None:
        zs = ds["species"].values
        species = sorted(set(zs[zs > 0].tolist()))
    lookup = {int(z): t for t, z in enumerate(species)}
    out = []
    for c in range(ds.sizes["config"]):
        n = int(ds["n_atoms"].values[c])
        z = ds["species"].values[c, :n]
        unknown = sorted(set(z.tolist()) - set(lookup))
        if unknown:
            raise ValueError(f"configuration {c} has species {unknown} not in the type list {list(species)}")
        x = ds["positions"].values[c, :n]
        cell = ds["cell"].values[c]
        pbc = ds["pbc"].values[c].astype(bool)
        if pbc.any() and not pbc.all():
            raise ValueError(f"configuration {c}: MLIP .cfg files hold fully periodic or open structures only")
        f = ds["forces"].values[c, :n] if "forces" in ds and np.all(np.isfinite(ds["forces"].values[c, :n])) \
            else None
        out += ["BEGIN_CFG", " Size", f"    {n}"]
        if pbc.all():
            out.append(" Supercell")
            out += ["    " + " ".join(_pos(v) for v in row) for row in cell]
        cols = " AtomData:  id type cartes_x cartes_y cartes_z" + (" fx fy fz" if f is not None else "")
        out.append(cols)
        for a in range(n):
            row = f"    {a + 1} {lookup[int(z[a])]} " + " ".join(_pos(v) for v in x[a])
            if f is not None:
                row += " " + " ".join(_pos(v) for v in f[a])
            out.append(row)
        if "energy" in ds and np.isfinite(ds["energy"].values[c]):
            out += [" Energy", f"    {_pos(ds['energy'].values[c])}"]
        if "stress" in ds and pbc.all() and np.all(np.isfinite(ds["stress"].values[c])):
            vol = abs(np.linalg.det(cell))
            out += [" PlusStress: xx yy zz yz xz xy",
                    "    " + " ".join(_pos(-v * vol) for v in ds["stress"].values[c])]
        out += ["END_CFG", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
    return path
