"""The systems of a campaign in its stages: per-system starting and test sets, which labels belong to which
system, the chains of an iteration (each system's starts at that system's temperatures), and per-system errors.

Every labeled or explored configuration carries a ``system`` variable (the system's name, text, dim
``config``); labels of a campaign made before systems had names lack it, and rows without it (or with "")
belong to the first system.

Random streams (:meth:`flows.config.CampaignConfig.stream`) of system ``k``: starting set
``("start_set", *stream_key(k))``, test set ``("test_set", *stream_key(k))``, generated structure
``("structure", k)``, chain starts ``("chain_starts", iteration, *stream_key(k))``, chain
``("chain", iteration, k, start rank, temperature rank)``. ``stream_key(0)`` is empty, so a one-system campaign
draws exactly what it drew before campaigns had several systems (its results do not change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from flows.config import CampaignConfig
from hmc_core.configurations import concat

SYSTEM_VAR = "system"


def stream_key(k: int) -> tuple[int, ...]:
    """The extra random-stream key of system ``k``: () for the first, (k,) for the others."""
    return () if k == 0 else (int(k),)


def reference_structures(cfg: CampaignConfig, k: int) -> xr.Dataset:
    """The structure(s) of system ``k`` (:func:`flows.systems.system_structures`)."""
    from flows.systems import system_structures

    return system_structures(cfg.systems[k], cfg.structure_path(k), cfg.stream("structure", k))


def tagged(configs: xr.Dataset, name: str) -> xr.Dataset:
    """``configs`` with the ``system`` variable set to ``name`` for every configuration."""
    out = configs.copy()
    out[SYSTEM_VAR] = ("config", np.array([name] * configs.sizes["config"], dtype=str))
    return out


def rattled_sets(cfg: CampaignConfig, which: str, structures: list[xr.Dataset] | None = None) -> xr.Dataset | None:
    """The starting set (``which = "start_set"``) or the held-out test set (``"test_set"``) of all systems,
    system by system, each tagged with its name; None when no system has one (``n_test = 0``).
    ``structures``: each system's reference structures (built here when None). ValueError from
    :func:`flows.systems.rattled_set` names the system when there are several."""
    from flows.systems import rattled_set

    parts = []
    for k, s in enumerate(cfg.systems):
        n = s.n_start if which == "start_set" else s.n_test
        sigma = s.rattle if which == "start_set" or s.test_rattle is None else s.test_rattle
        if not n:
            continue
        structure = structures[k] if structures is not None else reference_structures(cfg, k)
        try:
            part = rattled_set(structure, n, sigma, s.min_distance, cfg.stream(which, *stream_key(k)))
        except ValueError as exc:
            if len(cfg.systems) == 1:
                raise
            raise ValueError(f"system {s.system_name()!r}: {exc}") from None
        parts.append(tagged(part, s.system_name()))
    if not parts:
        return None
    return concat(parts) if len(parts) > 1 else parts[0]


def system_index(configs: xr.Dataset, cfg: CampaignConfig) -> np.ndarray:
    """The system (index into ``cfg.systems``) of every configuration, int (n_config,); configurations without
    a ``system`` value belong to the first. ValueError for a name the configuration does not have."""
    n = configs.sizes["config"]
    if SYSTEM_VAR not in configs:
        return np.zeros(n, np.int64)
    names = cfg.system_names()
    lookup = {name: k for k, name in enumerate(names)} | {"": 0}
    values = configs[SYSTEM_VAR].values.astype(str)
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise ValueError(f"configurations of system(s) {unknown} that the configuration does not name "
                         f"(systems: {names})")
    return np.array([lookup[v] for v in values], np.int64)


@dataclass(frozen=True)
class SystemChain:
    """One chain of an iteration: ``start`` (index into the iteration's training labels), ``temperature`` (K),
    ``system`` (index) and its ``name``; ``key`` = (system, start rank, temperature rank), the chain's random
    stream key after the iteration; ``pressure``: the system's ``pressure`` (bar; None = fixed cell), for
    :class:`tasks.explore.ExploreInputs` ``pressure``."""

    start: int
    temperature: float
    system: int
    name: str
    key: tuple[int, int, int]
    pressure: float | None = None


def plan_explore(cfg: CampaignConfig, labels: xr.Dataset, iteration: int) -> list[SystemChain]:
    """The chains of ``iteration``: for each system, :func:`tasks.explore.plan_chains` over that system's
    training labels (``[hmc] n_starts`` starts, at the system's temperatures, its own start stream). A system
    without usable labels has no chains; ValueError when no system has any."""
    from tasks.explore import plan_chains

    owner = system_index(labels, cfg)
    chains = []
    for k, s in enumerate(cfg.systems):
        mine = np.flatnonzero(owner == k)
        if not len(mine):
            continue
        settings = cfg.hmc.model_copy(update={"temperatures": cfg.explore_temperatures(k)})
        for c in plan_chains(settings, len(mine), cfg.stream("chain_starts", iteration, *stream_key(k))):
            chains.append(SystemChain(int(mine[c.start]), c.temperature, k, s.system_name(), (k, *c.key),
                                      s.pressure))
    if not chains:
        raise ValueError("no labeled configuration to start HMC from")
    return chains


def chain_title(cfg: CampaignConfig, iteration: int, chain: SystemChain) -> str:
    """The chain's task-run name: ``HMC iteration I [system ]start S at T K[ and P bar]`` (the system named only
    when there are several, the pressure only for an NPT chain)."""
    system = f"{chain.name} " if len(cfg.systems) > 1 else ""
    pressure = "" if chain.pressure is None else f" and {chain.pressure:g} bar"
    return f"HMC iteration {iteration} {system}start {chain.start} at {chain.temperature:g} K{pressure}"


def per_system_errors(cfg: CampaignConfig, potential, sets: dict[str, xr.Dataset]) -> dict[str, float]:
    """Per-system errors of ``potential`` as metrics columns ``<system>.<prefix>_<error>`` (e.g.
    ``liquid.test_force_rmse_eV_per_A``; :func:`hmc_core.mtp.fit.prediction_errors`: meV/atom, eV/Å) and
    ``<system>.n_labels`` (usable training labels of the system), for each ``prefix`` → labeled set in
    ``sets`` (e.g. {"test": test set, "train": training labels}). Empty for a one-system campaign (its overall
    columns say it all)."""
    from hmc_core.mtp.fit import prediction_errors

    if len(cfg.systems) < 2:
        return {}
    row: dict[str, float] = {}
    for prefix, labeled in sets.items():
        owner = system_index(labeled, cfg)
        for k, name in enumerate(cfg.system_names()):
            mine = np.flatnonzero(owner == k)
            if prefix == "train":
                row[f"{name}.n_labels"] = int(len(mine))
            if len(mine):
                for key, value in prediction_errors(potential, labeled.isel(config=mine)).items():
                    row[f"{name}.{prefix}_{key}"] = value
    return row


__all__ = ["SYSTEM_VAR", "SystemChain", "chain_title", "per_system_errors", "plan_explore", "rattled_sets",
           "reference_structures", "stream_key", "system_index", "tagged"]
