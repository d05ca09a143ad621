"""Persistent label cache and warm-start densities.

Layout: ``root/<family>/<key>.npz``, one small file per label, written atomically (temporary file in the
same folder, then ``os.replace``), so concurrent processes and restarts never see half a file and a killed
worker loses only the label it was computing.

- ``family`` = hash of (species in order, pbc, method settings that change the numbers, PySCF major.minor):
  the "same molecule, same method" group within which converged densities are reused as SCF guesses.
- ``key`` = hash of (family, positions and cell rounded to multiples of ``tolerance`` Å).

Each file holds ``energy`` (eV), ``forces`` (n, 3) eV/Å, ``positions`` (n, 3) Å, ``scf_cycles``,
``wall_time`` (s), ``ladder_step`` and, unless disabled, ``dm`` (the converged AO density matrix).
Only successful labels are stored; failures are retried on the next call.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

_MEMORY_PER_FAMILY = 64  # densities kept in memory per family for warm starts


def family_hash(species: np.ndarray, pbc: np.ndarray, method_key: dict, pyscf_version: str) -> str:
    """Hex id of a (molecule, method) family: same species order, periodicity and settings."""
    major_minor = ".".join(pyscf_version.split(".")[:2])
    payload = json.dumps({"species": [int(z) for z in species], "pbc": [bool(p) for p in pbc],
                          "method": method_key, "pyscf": major_minor}, sort_keys=True)
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


class DensityMemory:
    """Converged densities of this process's recent labels, per family (the warm-start source without a cache)."""

    def __init__(self, per_family: int = _MEMORY_PER_FAMILY):
        self.per_family = per_family
        self._items: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, family: str, positions: np.ndarray, dm: np.ndarray) -> None:
        items = self._items.setdefault(family, [])
        items.append((np.array(positions), dm))
        del items[: max(0, len(items) - self.per_family)]

    def nearest(self, family: str, positions: np.ndarray) -> tuple[np.ndarray | None, float]:
        """(density, rmsd Å) of the closest stored geometry, or (None, inf)."""
        best, best_d = None, np.inf
        for pos, dm in self._items.get(family, ()):
            d = rmsd(pos, positions)
            if d < best_d:
                best, best_d = dm, d
        return best, best_d


class LabelCache:
    """On-disk cache of labels under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike, store_density: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store_density = store_density
        self._positions: dict[Path, np.ndarray] = {}  # index of geometries already read from disk

    def path(self, family: str, key: str) -> Path:
        return self.root / family / f"{key}.npz"

    def get(self, family: str, key: str) -> dict | None:
        """The stored label as a dict (energy eV, forces eV/Å, scf_cycles, wall_time, ladder_step) or None."""
        path = self.path(family, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {"energy": float(data["energy"]), "forces": np.array(data["forces"]),
                        "scf_cycles": int(data["scf_cycles"]), "wall_time": float(data["wall_time"]),
                        "ladder_step": str(data["ladder_step"])}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None  # unreadable entry: recompute and overwrite it

    def put(self, family: str, key: str, positions: np.ndarray, energy: float, forces: np.ndarray,
            scf_cycles: int, wall_time: float, ladder_step: str, dm: np.ndarray | None) -> Path:
        """Store one successful label atomically; returns its path."""
        path = self.path(family, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"energy": np.float64(energy), "forces": np.asarray(forces, np.float64),
                  "positions": np.asarray(positions, np.float64), "scf_cycles": np.int64(scf_cycles),
                  "wall_time": np.float64(wall_time), "ladder_step": np.str_(ladder_step)}
        if self.store_density and dm is not None:
            arrays["dm"] = np.asarray(dm)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def nearest(self, family: str, positions: np.ndarray) -> tuple[np.ndarray | None, float]:
        """(density, rmsd Å) of the closest cached geometry of ``family`` that has a density, or (None, inf)."""
        folder = self.root / family
        if not folder.is_dir():
            return None, np.inf
        best_path, best_d = None, np.inf
        for path in folder.glob("*.npz"):
            pos = self._positions.get(path)
            if pos is None:
                try:
                    with np.load(path, allow_pickle=False) as data:
                        if "dm" not in data.files:
                            continue
                        pos = np.array(data["positions"])
                except (OSError, KeyError, ValueError, zipfile.BadZipFile):
                    continue
                self._positions[path] = pos
            if pos.shape == np.shape(positions):
                d = rmsd(pos, positions)
                if d < best_d:
                    best_path, best_d = path, d
        if best_path is None:
            return None, np.inf
        try:
            with np.load(best_path, allow_pickle=False) as data:
                return np.array(data["dm"]), best_d
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None, np.inf
