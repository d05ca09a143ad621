"""The campaign directory: every result of a campaign, readable with plain xarray, written atomically.

Layout (``<dir>`` is the campaign directory; ``NNN`` the iteration, zero-padded)::

    <dir>/campaign.toml            the validated configuration (resume refuses a different one)
    <dir>/labels.nc                every label: configurations schema + energy, forces, status, reason,
                                   scf_cycles, wall_time, origin ("start" | "candidate"), iteration, system
                                   (the system's name, flows.campaign_systems), method, basis
    <dir>/test_set.nc              held-out labeled set (test errors in metrics.nc)
    <dir>/metrics.nc               per iteration: label counts, test/train errors, candidates, grades,
                                   acceptance, stage wall times (s); with several systems also
                                   ``<system>.<column>`` label counts and errors
    <dir>/label_cache/             the PySCF label cache (keyed by geometry + method); finished
                                   calculations are never repeated after a crash
    <dir>/iterations/NNN/potential.mtp       MTP fitted in iteration NNN (MLIP format)
    <dir>/iterations/NNN/potential.json      the same potential as pesflow JSON (+ fit report)
    <dir>/iterations/NNN/active_set.nc       MaxVol active set of the training labels (grades are relative to it)
    <dir>/iterations/NNN/samples.nc          explored HMC frames (configurations + chain, temperature, grade)
    <dir>/iterations/NNN/trajectories.nc     per-sample HMC traces (energies, acceptance) of every chain
    <dir>/iterations/NNN/candidates.nc       selected configurations with their grades and reasons
    <dir>/iterations/NNN/pool_summary.nc     grade histogram of the explored pool
    <dir>/iterations/NNN/<stage>.done.json   completion marker of a stage, written last (with its timings)
    <dir>/final.mtp, <dir>/final.json        the last fitted potential
    <dir>/DONE.json                          the campaign finished (stop reason, summary)

Every file is written to a temporary name in the same folder and renamed (atomic on POSIX). A stage counts as
finished only when its marker exists; anything without a marker is redone on resume, and redoing is idempotent
(labels of an iteration replace that iteration's rows; the label cache answers finished calculations).
One process at a time owns a campaign directory (an ``fcntl`` lock, released by the kernel even on kill -9).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from hmc_core.atomic_io import atomic_target, remove_stale_temporaries
from hmc_core.configurations import concat, read_netcdf, write_netcdf

STAGES = ("fit", "explore", "select", "cut", "label", "ensemble")


class CampaignBusy(RuntimeError):
    """Another process is running this campaign directory."""


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` durably and atomically (:func:`hmc_core.atomic_io.atomic_target`)."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` durably and atomically."""
    return write_bytes_atomic(path, text.encode())


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        return float(obj) if np.isfinite(obj) else None
    return obj


class CampaignStore:
    """Read and write one campaign directory (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, provenance: dict | None = None):
        """root: the campaign directory; provenance: attributes stamped on every dataset written (the campaign
        passes its seed and configuration, so each file says how it was made)."""
        self.root = Path(root).expanduser().resolve()
        self._lock_fh = None
        self.provenance = dict(provenance or {})

    # ---- paths -------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "campaign.toml"

    @property
    def labels_path(self) -> Path:
        return self.root / "labels.nc"

    @property
    def test_path(self) -> Path:
        return self.root / "test_set.nc"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.nc"

    @property
    def done_path(self) -> Path:
        return self.root / "DONE.json"

    @property
    def default_cache_dir(self) -> Path:
        return self.root / "label_cache"

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / "iterations" / f"{iteration:03d}"

    def path(self, name: str, iteration: int | None = None) -> Path:
        """``<dir>/name`` or ``<dir>/iterations/NNN/name``."""
        return (self.root if iteration is None else self.iteration_dir(iteration)) / name

    def label_cache_dir(self, configured: str | None = None) -> Path:
        """The label cache: ``configured`` (``[labeling] cache_dir``) or ``<dir>/label_cache``."""
        return Path(configured).expanduser() if configured else self.default_cache_dir

    def iterations(self) -> list[int]:
        """Iterations that have a folder, sorted."""
        base = self.root / "iterations"
        return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.exists() else []

    # ---- life cycle --------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.exists()

    def initialize(self, config_toml: str) -> None:
        """Create the directory with its configuration, or check that a resumed one has the same configuration.

        Raises ValueError if the directory holds a different campaign (change ``directory`` or delete it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            old = self.config_path.read_text()
            if _comparable(old) != _comparable(config_toml):
                raise ValueError(f"{self.root} holds a campaign with a different configuration "
                                 f"({self.config_path}); choose another directory or remove it")
            return
        write_text_atomic(self.config_path, config_toml)

    @contextlib.contextmanager
    def locked(self) -> Iterator[CampaignStore]:
        """Hold the campaign's exclusive lock (non-blocking); :class:`CampaignBusy` if another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / ".lock", "a+")  # noqa: SIM115 - held for the whole block
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise CampaignBusy(f"another process ({holder}) is running the campaign in {self.root}; wait for it "
                               "to finish or stop it, then run the same command again") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
            fh.flush()
            yield self
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files killed writers left in the campaign's folders (the label cache cleans
        its own). Returns what was removed."""
        folders = [self.root, *(p for p in (self.root / "iterations").glob("*") if p.is_dir())]
        return [p for f in folders for p in remove_stale_temporaries(f)]

    # ---- datasets and JSON -------------------------------------------------------------------------------
    def write_dataset(self, name: str, ds: xr.Dataset, iteration: int | None = None) -> Path:
        return write_netcdf(netcdf_safe(self._stamped(ds)), self.path(name, iteration))

    def _stamped(self, ds: xr.Dataset) -> xr.Dataset:
        if not self.provenance:
            return ds
        ds = ds.copy()
        ds.attrs = {**ds.attrs, **self.provenance}
        return ds

    def read_dataset(self, name: str, iteration: int | None = None) -> xr.Dataset:
        return read_netcdf(self.path(name, iteration))

    def has(self, name: str, iteration: int | None = None) -> bool:
        return self.path(name, iteration).exists()

    def write_json(self, name: str, data: dict, iteration: int | None = None) -> Path:
        return write_text_atomic(self.path(name, iteration), json.dumps(_jsonable(data), indent=1))

    def read_json(self, name: str, iteration: int | None = None) -> dict:
        return json.loads(self.path(name, iteration).read_text())

    def write_mtp(self, potential, path: Path) -> Path:
        """An MTP in MLIP's .mtp format, written atomically."""
        from hmc_core.mtp import write_mtp

        with atomic_target(path) as tmp:
            write_mtp(potential, tmp)
        return path

    def copy_file(self, source: Path, target: Path) -> Path:
        """Copy ``source`` to ``target`` atomically."""
        return write_bytes_atomic(target, Path(source).read_bytes())

    # ---- stage markers -----------------------------------------------------------------------------------
    def mark_done(self, stage: str, iteration: int, info: dict | None = None) -> None:
        """Write the completion marker of ``stage`` (last, after the stage's outputs)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        self.write_json(f"{stage}.done.json", info or {}, iteration)

    def stage_done(self, stage: str, iteration: int) -> dict | None:
        """The marker's content if ``stage`` of ``iteration`` finished, else None."""
        p = self.path(f"{stage}.done.json", iteration)
        return json.loads(p.read_text()) if p.exists() else None

    # ---- labels ------------------------------------------------------------------------------------------
    def read_labels(self) -> xr.Dataset | None:
        return read_netcdf(self.labels_path) if self.labels_path.exists() else None

    def training_labels(self, iteration: int) -> xr.Dataset:
        """The usable labels that iteration ``iteration`` fits: those made before it (``iteration`` variable
        < ``iteration``; the starting set has −1). Later labels never leak into an earlier iteration, so an
        iteration redone after a crash sees exactly what it saw the first time."""
        from hmc_core.mtp.fit import usable_labels

        labels = self.read_labels()
        if labels is None:
            raise FileNotFoundError(f"{self.labels_path} does not exist: the starting set has not been labeled")
        return usable_labels(labels.isel(config=np.flatnonzero(labels["iteration"].values < iteration)))

    def add_labels(self, new: xr.Dataset, iteration: int, origin: str) -> xr.Dataset:
        """Add labels of ``iteration`` to labels.nc, replacing rows of the same iteration and origin
        (so that redoing a stage after a crash never duplicates labels). Returns the whole label set."""
        new = new.copy()
        n = new.sizes["config"]
        new["iteration"] = ("config", np.full(n, iteration, np.int32))
        new["origin"] = ("config", np.array([origin] * n, dtype=str))
        old = self.read_labels()
        parts = []
        if old is not None:
            keep = ~((old["iteration"].values == iteration) & (old["origin"].values.astype(str) == origin))
            if keep.any():
                parts.append(old.isel(config=np.flatnonzero(keep)))
        if n:
            parts.append(new)
        if not parts:
            return new
        merged = concat(_aligned(parts)) if len(parts) > 1 else parts[0]
        order = np.argsort(merged["iteration"].values, kind="stable")  # rows in iteration order, always
        merged = merged.isel(config=order)
        write_netcdf(netcdf_safe(self._stamped(merged)), self.labels_path)
        return merged

    # ---- metrics -----------------------------------------------------------------------------------------
    def read_metrics(self) -> xr.Dataset | None:
        return read_netcdf(self.metrics_path) if self.metrics_path.exists() else None

    def metrics_row(self, iteration: int) -> dict | None:
        """The recorded metrics of ``iteration`` (a finished iteration), or None."""
        metrics = self.read_metrics()
        if metrics is None or iteration not in metrics["iteration"].values:
            return None
        return {k: metrics[k].sel(iteration=iteration).item() for k in metrics.data_vars}

    def record_metrics(self, iteration: int, row: dict[str, float | int | str]) -> xr.Dataset:
        """Write (or replace) the metrics of one iteration in metrics.nc (dim ``iteration``)."""
        rows = {}
        old = self.read_metrics()
        if old is not None:
            for i in old["iteration"].values:
                rows[int(i)] = {k: old[k].sel(iteration=i).item() for k in old.data_vars}
        rows[int(iteration)] = dict(row)
        its = sorted(rows)
        keys = list(dict.fromkeys(k for i in its for k in rows[i]))
        data = {}
        for k in keys:
            values = [rows[i].get(k) for i in its]
            if all(isinstance(v, str) or v is None for v in values):
                data[k] = ("iteration", np.array(["" if v is None else v for v in values], dtype=object))
            else:
                data[k] = ("iteration", np.array([np.nan if v is None else v for v in values], dtype=float))
        ds = xr.Dataset(data, coords={"iteration": np.array(its, np.int32)})
        for k in ds.data_vars:
            if k.endswith("_s"):
                ds[k].attrs["units"] = "s"
            elif "meV_per_atom" in k:
                ds[k].attrs["units"] = "meV/atom"
            elif "eV_per_A" in k:
                ds[k].attrs["units"] = "eV/Å"
        ds.attrs["schema"] = "pesflow.campaign_metrics/1"
        write_netcdf(netcdf_safe(self._stamped(ds)), self.metrics_path)
        return ds


def _homogeneous(values) -> bool:
    """A list netCDF can store as an attribute: all numbers (not booleans) or all strings."""
    numbers = all(isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) for x in values)
    return numbers or all(isinstance(x, str) for x in values)


def _safe_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            v = int(v)
        elif isinstance(v, dict) or (isinstance(v, list | tuple) and not _homogeneous(v)):
            v = json.dumps(_jsonable(v))  # netCDF stores flat lists of numbers or of strings, nothing nested
        out[k] = v
    return out


def netcdf_safe(ds: xr.Dataset) -> xr.Dataset:
    """A copy whose attributes netCDF can store (None dropped, booleans as 0/1, nested values as JSON text), with
    a ``units`` attribute on every variable (:func:`flows.netcdf_units.annotate_units`)."""
    from flows.netcdf_units import annotate_units

    ds = annotate_units(ds.copy(), strict=False)
    ds.attrs = _safe_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = _safe_attrs(ds[name].attrs)
    return ds


def _aligned(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give every dataset the same variables before concatenation: text as numpy unicode (object and
    fixed-width strings do not concatenate safely); a per-config variable missing from one part is filled with
    "" (text), −1 (integers) or NaN (floats) there, so that integer variables keep their type."""
    parts = [p.copy() for p in parts]
    for p in parts:
        for name in p.data_vars:
            if p[name].dtype.kind in "OSU":
                p[name] = p[name].astype(str)
    templates = {}
    for p in parts:
        for name in p.data_vars:
            if p[name].dims == ("config",):
                templates.setdefault(name, p[name].dtype)
    for p in parts:
        n = p.sizes["config"]
        for name, dtype in templates.items():
            if name not in p:
                fill = "" if dtype.kind == "U" else (-1 if dtype.kind in "iu" else np.nan)
                p[name] = ("config", np.full(n, fill, dtype=dtype if dtype.kind in "iuf" else object))
                if dtype.kind == "U":
                    p[name] = p[name].astype(str)
    return parts


def _comparable(toml_text: str) -> dict:
    """The parts of a configuration that must match to resume (stopping budgets, executor and the production study
    after the campaign may change)."""
    import tomllib

    data = tomllib.loads(toml_text)
    for key in ("stopping", "executor", "directory", "production"):
        data.pop(key, None)
    data.get("labeling", {}).pop("n_workers", None)
    return data
