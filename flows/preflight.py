"""Every check of a campaign that needs no computation, run before anything expensive starts (a Prefect server
included): the structure, the starting and test sets, the elements against the basis, the campaign directory.

:func:`preflight` raises :class:`flows.app.UserError` (or :class:`flows.config.ConfigError`) with what is
wrong, where, and how to fix it; the CLI prints one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.app import UserError
from flows.config import CampaignConfig


def check_structure(cfg: CampaignConfig):
    """The reference structure(s): readable, finite coordinates, no two atoms closer than ``[system]
    min_distance``. Returns the configurations dataset."""
    from flows.systems import load_system
    from hmc_core.neighbors import closest_pair

    where = f"structure file {cfg.structure_path()}" if cfg.system.structure else f"builtin {cfg.system.builtin!r}"
    if cfg.system.structure is not None and not cfg.structure_path().exists():
        raise UserError(f"no such structure file: {cfg.structure_path()} ([system] structure)")
    if cfg.structure_path() is not None and cfg.structure_path().is_dir():
        raise UserError(f"[system] structure = {cfg.system.structure!r} is a directory; give a structure file")
    try:
        system = load_system(cfg.system.builtin, cfg.structure_path(), cfg.system.index, cfg.system.species)
    except (ValueError, KeyError, OSError) as exc:
        raise UserError(f"cannot read {where}: {exc}") from None
    from hmc_core.configurations import config_arrays

    for k in range(system.sizes["config"]):
        x, z, cell, pbc = config_arrays(system, k)
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            raise UserError(f"{where}, structure {k}: atom {bad[0]} has non-finite coordinates {x[bad[0]]}; "
                            "fix the file")
        pair = closest_pair(x, cell, pbc, cfg.system.min_distance)
        if pair is not None:
            i, j, d = pair
            raise UserError(f"{where}, structure {k}: atoms {i} and {j} are {d:.3f} Å apart, closer than [system] "
                            f"min_distance = {cfg.system.min_distance} Å (overlapping or duplicated atoms?); "
                            "fix the structure")
    return system


def check_labels_possible(cfg: CampaignConfig, sets) -> None:
    """The label stage's own input checks (:func:`tasks.label.check_batch`: basis and ECP coverage of every
    element, periodic-only bases on open boundaries, charge/spin parity, overlapping atoms) on the starting and
    test sets, with no SCF."""
    from tasks.label import check_batch

    for what, configs in sets:
        try:
            check_batch(configs, cfg.labeling.label_settings())
        except ValueError as exc:
            raise UserError(f"[labeling] cannot label the {what}: {exc}") from None


def check_sets(cfg: CampaignConfig, system) -> list:
    """The random displacements of the starting and test sets can be drawn (cheap; the same draws the flow
    makes, so the flow cannot fail on them later). Returns [(what, configurations)]."""
    from flows.systems import rattled_set

    s = cfg.system
    sets = []
    for what, n, sigma, stream in (("starting set", s.n_start, s.rattle, "start_set"),
                                   ("test set", s.n_test, s.rattle if s.test_rattle is None else s.test_rattle,
                                    "test_set")):
        if n:
            try:
                sets.append((what, rattled_set(system, n, sigma, s.min_distance, cfg.stream(stream))))
            except ValueError as exc:
                key = "rattle" if what == "starting set" or s.test_rattle is None else "test_rattle"
                raise UserError(f"{what}: {exc}; lower [system] {key} or min_distance") from None
    return sets


def check_directory(cfg: CampaignConfig, directory: Path) -> None:
    """The campaign directory: creatable and writable, not a file, not another campaign, not busy."""
    from flows.store import CampaignBusy, CampaignStore, _comparable

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"campaign directory {directory} is a file; choose a directory (--dir)")
    writable_folder(directory, "campaign directory (--dir)")
    if cfg.labeling.cache_dir:
        writable_folder(Path(cfg.labeling.cache_dir).expanduser(), "[labeling] cache_dir")
    store = CampaignStore(directory)
    if store.config_path.exists():
        import tomllib

        try:
            old = _comparable(store.config_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{store.config_path} is not valid TOML ({exc}); remove the directory or fix it") from None
        if old != _comparable(cfg.to_toml()):
            raise UserError(f"{directory} holds a campaign with a different configuration ({store.config_path}); "
                            "choose another directory (--dir) or remove it")
        try:
            with store.locked():
                pass
        except CampaignBusy as exc:
            raise UserError(str(exc)) from None
        readable_results(store)


def writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove it takes a file (permissions alone mislead: root, /proc, read-only
    mounts); UserError naming ``what`` otherwise (and the file in the way when a parent is a file). The one check
    of every folder a command will write to."""
    import tempfile

    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {folder}: {probe} is a file, so the folder cannot be created; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{what} {folder} cannot be written ({exc.strerror or exc}); choose a writable folder") \
            from None


def readable_results(store) -> None:
    """The datasets a resume reads first (labels, test set, metrics) are readable netCDF files."""
    from hmc_core.configurations import read_netcdf

    for path in (store.labels_path, store.test_path, store.metrics_path):
        if path.exists():
            try:
                read_netcdf(path)
            except ValueError as exc:
                raise UserError(f"cannot resume the campaign in {store.root}: {exc}") from None


def preflight(cfg: CampaignConfig, directory: Path) -> None:
    """All checks that need no computation (see the module docstring)."""
    system = check_structure(cfg)
    check_labels_possible(cfg, check_sets(cfg, system))
    check_directory(cfg, directory)
