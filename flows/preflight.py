"""Every check of a campaign that needs no computation, run before anything expensive starts (a Prefect server
included): the structure, the starting and test sets, the elements against the basis and the ``[production]`` study,
the campaign directory, and a SLURM executor's partition and job size (asking the scheduler).

:func:`preflight` raises :class:`flows.app.UserError` (or :class:`flows.config.ConfigError`) with what is
wrong, where, and how to fix it; the CLI prints one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.app import UserError
from flows.config import CampaignConfig


def check_structure(cfg: CampaignConfig, k: int = 0):
    """The reference structure(s) of system ``k``: readable (a generated crystal, liquid or cluster built),
    finite coordinates, no two atoms closer than its ``min_distance``, periodic in x, y and z when the system has
    a ``pressure``. Returns the configurations dataset."""
    from flows.campaign_systems import reference_structures
    from hmc_core.neighbors import closest_pair

    sys, path = cfg.systems[k], cfg.structure_path(k)
    section = "[system]" if len(cfg.systems) == 1 else f"[[system]] {sys.system_name()!r}"
    where = f"structure file {path}" if sys.structure else f"builtin {sys.builtin!r}"
    if len(cfg.systems) > 1:
        where = f"{section} {where}"
    if sys.structure is not None and not path.exists():
        raise UserError(f"no such structure file: {path} ({section} structure)")
    if path is not None and path.is_dir():
        raise UserError(f"{section} structure = {sys.structure!r} is a directory; give a structure file")
    try:
        system = reference_structures(cfg, k)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise UserError(f"cannot {'read' if sys.structure or not sys.generated else 'build'} {where}: {exc}") \
            from None
    from hmc_core.configurations import config_arrays

    for j in range(system.sizes["config"]):
        x, z, cell, pbc = config_arrays(system, j)
        if sys.pressure is not None and not (pbc.all() and abs(np.linalg.det(cell)) > 0):
            raise UserError(f"{where}, structure {j}: {section} pressure = {sys.pressure:g} bar needs a cell "
                            f"periodic in x, y and z (NPT cell moves), this one has pbc = {pbc.astype(bool).tolist()}; "
                            "remove `pressure` or give a periodic structure")
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            raise UserError(f"{where}, structure {j}: atom {bad[0]} has non-finite coordinates {x[bad[0]]}; "
                            "fix the file")
        pair = closest_pair(x, cell, pbc, sys.min_distance)
        if pair is not None:
            a, b, d = pair
            raise UserError(f"{where}, structure {j}: atoms {a} and {b} are {d:.3f} Å apart, closer than {section} "
                            f"min_distance = {sys.min_distance} Å (overlapping or duplicated atoms?); "
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


def check_sets(cfg: CampaignConfig, structures: list) -> list:
    """The random displacements of the starting and test sets of every system can be drawn (cheap; the same
    draws the flow makes, so the flow cannot fail on them later). ``structures``: each system's reference
    structures. Returns [(what, configurations)]."""
    from flows.campaign_systems import rattled_sets

    sets = []
    for what, which in (("starting set", "start_set"), ("test set", "test_set")):
        try:
            drawn = rattled_sets(cfg, which, structures)
        except ValueError as exc:
            tested = which == "test_set" and any(s.test_rattle is not None for s in cfg.systems)
            raise UserError(f"{what}: {exc}; lower [system] {'test_rattle' if tested else 'rattle'} or "
                            "min_distance") from None
        if drawn is not None:
            sets.append((what, drawn))
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


def check_production(cfg: CampaignConfig, structures: list) -> None:
    """A ``[production]`` study fits the campaign's elements (one element; ``species``, if given, that one)."""
    if cfg.production is None:
        return
    from flows.production import check_elements

    try:
        check_elements(cfg.production, np.unique(np.concatenate([s["species"].values.ravel() for s in structures])))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_cluster_cut(cfg: CampaignConfig, structures: list) -> None:
    """``[labeling] cluster_cut``: every system periodic, each cell wide enough for the cut radius (the potential's
    cutoff + buffer must stay below half of every periodic width)."""
    cut = cfg.labeling.cluster_cut
    if cut is None:
        return
    from hmc_core.cluster_cut import ClusterCutError, check_cell
    from hmc_core.configurations import config_arrays

    for k, system in enumerate(structures):
        name = cfg.systems[k].system_name()
        for j in range(system.sizes["config"]):
            _, _, cell, pbc = config_arrays(system, j)
            if not pbc.any():
                raise UserError(f"[labeling] cluster_cut: system {name!r} is not periodic (structure {j}); cluster "
                                "cuts are for periodic frames: remove cluster_cut or that system")
            try:
                check_cell(cell, pbc, cfg.potential.cutoff, cut.buffer)
            except ClusterCutError as exc:
                raise UserError(f"[labeling] cluster_cut, system {name!r}, structure {j}: {exc}") from None


def check_executor(cfg: CampaignConfig) -> None:
    """``[executor] kind = "slurm"``: the SLURM controller answers, the partition exists and takes a job of the
    configured partition, account, cores, memory and walltime (:func:`flows.slurm.check_slurm`; SlurmError, a
    UserError, naming the setting)."""
    if cfg.executor.kind == "slurm":
        from flows.slurm import check_slurm

        check_slurm(cfg.executor)


def preflight(cfg: CampaignConfig, directory: Path) -> None:
    """All checks that need no computation (see the module docstring)."""
    structures = [check_structure(cfg, k) for k in range(len(cfg.systems))]
    check_cluster_cut(cfg, structures)
    check_labels_possible(cfg, check_sets(cfg, structures))
    check_production(cfg, structures)
    check_executor(cfg)
    check_directory(cfg, directory)
