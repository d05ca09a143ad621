"""Persistent label cache that answers only the question it was asked, and warm-start densities.

Layout: ``root/<family>/<key>.npz``, one small file per label, written durably and atomically
(:func:`hmc_core.atomic_io.atomic_target`: temporary file, fsync, rename, fsync of the folder; mode
``0o666 & ~umask``), so concurrent processes and restarts never see half a file and a killed worker loses only
the label it was computing. Temporary files of dead writers are removed when a cache is opened.

- ``family`` = hash of (species in order, pbc, method settings that change the numbers, labeler identity):
  the "same molecule, same method" group within which converged densities are reused as SCF guesses.
- ``key`` = hash of (family, positions and cell rounded to multiples of ``tolerance`` Å).

A :class:`LabelQuestion` is what a label answers: species, positions (Å), cell (Å), pbc, the method settings
(``LabelSettings.method_key()``) and the labeler identity (:func:`labeler_identity`: labeler name and revision,
PySCF major.minor, pesflow major.minor; ASE labelers give their own, :mod:`tasks.ase_labeler`). Each entry stores
its whole question (a JSON header with species, pbc, method, labeler, units, plus the exact ``positions`` and
``cell`` arrays), the answer (``energy`` eV, ``forces`` (n, 3) eV/Å, ``scf_cycles``, ``wall_time`` s,
``ladder_step``, optionally ``dm``, the converged AO density matrix, and ``stress`` (6,) eV/Å³), full provenance
(exact PySCF or ASE labeler package versions, pesflow) and a SHA-256 ``checksum`` over all of it.
:meth:`LabelCache.get` uses an entry only when it is intact (checksum), answers this question (species, pbc,
method, labeler equal; positions and cell within ``tolerance`` Å, the key's own rounding), and holds a finite
energy, finite (n, 3) forces and, if stored, a finite (6,) stress. Anything else (a file planted under a
computable key, another geometry, a truncated file, a wrong shape, a NaN) is logged as a warning on the
``logging`` logger ``pesflow.label_cache`` and treated as a miss: the label is recomputed and the entry
overwritten.
Only successful labels are stored; failures are retried on the next call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from hmc_core.atomic_io import atomic_target, remove_stale_temporaries

log = logging.getLogger("pesflow.label_cache")

CACHE_FORMAT = "pesflow.label-cache/2"
LABELER = "pesflow.pyscf_adapter"
LABELER_REVISION = 2  # bump when the adapter's numbers change for the same settings (old entries then miss)
UNITS = {"energy": "eV", "forces": "eV/Å", "positions": "Å", "cell": "Å", "wall_time": "s"}


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def pesflow_version() -> str:
    try:
        return metadata.version("pesflow")
    except metadata.PackageNotFoundError:  # a source checkout without installation
        return "0+unknown"


def labeler_identity(pyscf_version: str) -> dict:
    """Who computes the labels, as far as it changes the numbers: labeler, its revision, PySCF and pesflow
    major.minor (patch releases share entries)."""
    return {"labeler": LABELER, "revision": LABELER_REVISION, "pyscf": _major_minor(pyscf_version),
            "pesflow": _major_minor(pesflow_version())}


def family_hash(species: np.ndarray, pbc: np.ndarray, method_key: dict, labeler: dict) -> str:
    """Hex id of a (molecule, method, labeler) family: same species order, periodicity, settings, labeler."""
    payload = json.dumps({"species": [int(z) for z in species], "pbc": [bool(p) for p in pbc],
                          "method": method_key, "labeler": labeler}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def label_key(family: str, positions: np.ndarray, cell: np.ndarray, tolerance: float) -> str:
    """Hex id of one configuration: positions and cell (Å) rounded to multiples of ``tolerance`` Å."""
    digest = hashlib.sha256(family.encode())
    for array in (positions, cell):
        digest.update(np.ascontiguousarray(np.rint(np.asarray(array, np.float64) / tolerance), dtype=np.int64))
    return digest.hexdigest()[:32]


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square displacement over atoms (Å), no alignment."""
    return float(np.sqrt(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=1))))


@dataclass(frozen=True, eq=False)
class LabelQuestion:
    """What one label answers: ``species`` (n,) Z, ``positions`` (n, 3) Å, ``cell`` (3, 3) Å, ``pbc`` (3,),
    ``method`` (``LabelSettings.method_key()``), ``labeler`` (:func:`labeler_identity`); positions and cell
    are the same question within ``tolerance`` Å."""

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    method: dict
    labeler: dict
    tolerance: float

    @cached_property
    def family(self) -> str:
        return family_hash(self.species, self.pbc, self.method, self.labeler)

    @cached_property
    def key(self) -> str:
        return label_key(self.family, self.positions, self.cell, self.tolerance)

    def header(self) -> dict:
        """The JSON-able part of the question (positions and cell are stored as exact arrays beside it)."""
        return {"format": CACHE_FORMAT, "species": [int(z) for z in self.species],
                "pbc": [bool(p) for p in self.pbc], "method": self.method, "labeler": self.labeler, "units": UNITS}


class InvalidEntry(ValueError):
    """A cache entry that must not be used (corrupt, or the answer to another question)."""


def _checksum(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == "checksum":
            continue
        value = np.asarray(arrays[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes() if value.dtype.kind != "U" else str(value).encode())
    return digest.hexdigest()


def entry_arrays(question: LabelQuestion, energy: float, forces: np.ndarray, scf_cycles: int, wall_time: float,
                 ladder_step: str, dm: np.ndarray | None, pyscf_version: str, stress: np.ndarray | None = None,
                 versions: dict | None = None) -> dict:
    """The arrays of one cache file (with its checksum) for ``question`` and its answer; ``stress`` (6,) eV/Å³
    (Voigt) when the labeler gives one, ``versions`` (package → exact version) replace the PySCF provenance."""
    provenance = versions or {"pyscf": pyscf_version, "pesflow": pesflow_version()}
    arrays = {"header": np.str_(json.dumps(question.header(), sort_keys=True)),
              "provenance": np.str_(json.dumps(provenance, sort_keys=True)),
              "positions": np.asarray(question.positions, np.float64), "cell": np.asarray(question.cell, np.float64),
              "energy": np.float64(energy), "forces": np.asarray(forces, np.float64),
              "scf_cycles": np.int64(scf_cycles), "wall_time": np.float64(wall_time),
              "ladder_step": np.str_(ladder_step)}
    if dm is not None:
        arrays["dm"] = np.asarray(dm, np.float64)
    if stress is not None:
        arrays["stress"] = np.asarray(stress, np.float64)
    arrays["checksum"] = np.str_(_checksum(arrays))
    return arrays


def _read(path: Path) -> dict:
    """All arrays of a cache file; raises :class:`InvalidEntry` for anything unreadable or tampered with."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # truncated zip, not a zip, object arrays, bad headers: numpy raises many kinds
        raise InvalidEntry(f"unreadable ({type(exc).__name__}: {exc})") from None
    missing = {"header", "positions", "cell", "energy", "forces", "checksum"} - set(arrays)
    if missing:
        raise InvalidEntry(f"not a {CACHE_FORMAT} entry (no {', '.join(sorted(missing))})")
    if str(arrays["checksum"]) != _checksum(arrays):
        raise InvalidEntry("checksum mismatch (the file was changed after it was written)")
    return arrays


def _check_answers(arrays: dict, question: LabelQuestion) -> None:
    """Raise :class:`InvalidEntry` unless the entry is the answer to ``question`` (see the module docstring)."""
    try:
        header = json.loads(str(arrays["header"]))
    except ValueError:
        raise InvalidEntry("header is not JSON") from None
    expected = question.header()
    for field in ("format", "species", "pbc", "method", "labeler", "units"):
        if header.get(field) != expected[field]:
            raise InvalidEntry(f"{field} {header.get(field)!r} differs from the request's {expected[field]!r}")
    n = len(question.species)
    for name, want, shape in (("positions", question.positions, (n, 3)), ("cell", question.cell, (3, 3))):
        stored = arrays[name]
        if stored.shape != shape or stored.dtype.kind != "f":
            raise InvalidEntry(f"{name} have shape {stored.shape}, the request {shape}")
        off = float(np.max(np.abs(stored - np.asarray(want)), initial=0.0))
        if not off <= question.tolerance:  # also catches NaN
            raise InvalidEntry(f"{name} differ from the request by {off:.3g} Å (tolerance {question.tolerance:g} Å)")
    energy, forces = arrays["energy"], arrays["forces"]
    if energy.shape != () or energy.dtype.kind != "f" or not np.isfinite(energy):
        raise InvalidEntry(f"energy {energy!r} is not one finite number")
    if forces.shape != (n, 3) or forces.dtype.kind != "f" or not np.all(np.isfinite(forces)):
        raise InvalidEntry(f"forces of shape {forces.shape} are not finite ({n}, 3) eV/Å")
    stress = arrays.get("stress")
    if stress is not None and (stress.shape != (6,) or stress.dtype.kind != "f" or not np.all(np.isfinite(stress))):
        raise InvalidEntry(f"stress of shape {stress.shape} is not 6 finite numbers (eV/Å³)")


class LabelCache:
    """On-disk cache of labels under ``root`` (see the module docstring for the layout and the checks)."""

    def __init__(self, root: str | os.PathLike, store_density: bool = True):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"label cache folder {self.root} cannot be created ({exc.strerror}); give a writable "
                             f"folder as the cache directory") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ValueError(f"label cache folder {self.root} is not writable; give a writable folder as the cache "
                             f"directory or fix its permissions")
        self.store_density = store_density
        self._index: dict[Path, tuple[int, np.ndarray | None]] = {}  # path → (mtime_ns, positions if usable)
        self.remove_stale_temporaries()

    def remove_stale_temporaries(self) -> list[Path]:
        """Remove temporary files of writers that died (killed workers); files of live writers stay."""
        removed = remove_stale_temporaries(self.root)
        for folder in self.root.iterdir():
            if folder.is_dir():
                removed += remove_stale_temporaries(folder)
        for path in removed:
            log.warning("removed %s, left by a label writer that was killed mid-write", path)
        return removed

    def path(self, family: str, key: str) -> Path:
        return self.root / family / f"{key}.npz"

    def get(self, question: LabelQuestion) -> dict | None:
        """The stored answer to ``question`` (energy eV, forces (n, 3) eV/Å, scf_cycles, wall_time s, ladder_step,
        stress (6,) eV/Å³ or None) or None when there is none or the entry cannot be trusted (logged; the caller
        recomputes)."""
        path = self.path(question.family, question.key)
        if not path.exists():
            return None
        try:
            arrays = _read(path)
            _check_answers(arrays, question)
            answer = {"energy": float(arrays["energy"]), "forces": np.array(arrays["forces"]),
                      "scf_cycles": int(arrays.get("scf_cycles", 0)), "wall_time": float(arrays.get("wall_time", 0)),
                      "ladder_step": str(arrays.get("ladder_step", "none")),
                      "stress": np.array(arrays["stress"]) if "stress" in arrays else None}
        except InvalidEntry as exc:
            log.warning("label cache entry %s not used, recomputing: %s", path, exc)
            return None
        return answer

    def put(self, question: LabelQuestion, energy: float, forces: np.ndarray, scf_cycles: int, wall_time: float,
            ladder_step: str, dm: np.ndarray | None, pyscf_version: str, stress: np.ndarray | None = None,
            versions: dict | None = None) -> Path:
        """Store one successful label durably and atomically; returns its path. Refuses (ValueError) an answer
        that :meth:`get` would reject (non-finite energy, forces not finite (n, 3), stress not finite (6,)).
        ``stress`` and ``versions``: see :func:`entry_arrays`."""
        arrays = entry_arrays(question, energy, forces, scf_cycles, wall_time, ladder_step,
                              dm if self.store_density else None, pyscf_version, stress, versions)
        try:
            _check_answers(arrays, question)
        except InvalidEntry as exc:
            raise ValueError(f"refusing to cache an invalid label: {exc}") from None
        path = self.path(question.family, question.key)
        write_entry(path, arrays)
        return path

    def nearest(self, question: LabelQuestion, exclude: set[str] = frozenset()) -> tuple[Path | None, float]:
        """(path, rmsd Å) of the closest cached geometry of the question's family that has a density, skipping
        keys in ``exclude``; ties go to the smaller key, so the choice depends only on the cache's content."""
        folder = self.root / question.family
        if not folder.is_dir():
            return None, np.inf
        best_path, best = None, (np.inf, "")
        for path in sorted(folder.glob("*.npz")):
            if path.stem in exclude:
                continue
            pos = self._usable_positions(path, question)
            if pos is None:
                continue
            d = (rmsd(pos, question.positions), path.stem)
            if d < best:
                best_path, best = path, d
        return best_path, best[0]

    def _usable_positions(self, path: Path, question: LabelQuestion) -> np.ndarray | None:
        """Positions of an entry of this family (same species, pbc, method, labeler) that holds a density."""
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        seen = self._index.get(path)
        if seen is not None and seen[0] == mtime:
            return seen[1]
        pos = None
        try:
            with np.load(path, allow_pickle=False) as data:
                if "dm" in data.files and "header" in data.files:
                    header = json.loads(str(data["header"]))
                    expected = question.header()
                    if all(header.get(f) == expected[f] for f in ("format", "species", "pbc", "method", "labeler")):
                        pos = np.array(data["positions"])
                        if pos.shape != np.shape(question.positions) or not np.all(np.isfinite(pos)):
                            pos = None
        except Exception:  # an unreadable entry is no warm-start source (get() reports it when asked for)
            pos = None
        self._index[path] = (mtime, pos)
        return pos

    def density(self, path: str | os.PathLike, question: LabelQuestion) -> np.ndarray | None:
        """The density matrix stored at ``path`` (from :meth:`nearest`) if intact and of ``question``'s family."""
        try:
            arrays = _read(Path(path))
            header = json.loads(str(arrays["header"]))
            if header.get("species") != question.header()["species"] or "dm" not in arrays:
                raise InvalidEntry("not a density of this molecule")
            dm = arrays["dm"]
            if dm.ndim not in (2, 3) or dm.shape[-1] != dm.shape[-2] or not np.all(np.isfinite(dm)):
                raise InvalidEntry(f"density of shape {dm.shape} is not finite square matrices")
        except (InvalidEntry, ValueError) as exc:
            log.warning("warm-start density %s not used: %s", path, exc)
            return None
        return np.array(dm)


def write_entry(path: Path, arrays: dict) -> None:
    """Write one cache file durably and atomically (``arrays`` from :func:`entry_arrays`)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
