"""Explore stage: HMC chains on a potential from starting structures → sampled configurations.

Plain function :func:`explore` (testable without Prefect) and its Prefect task :data:`explore_task`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from prefect import task

from hmc_core.configurations import concat, config_arrays, validate
from hmc_core.hmc import HMCConfig, run_chains, samples_to_configurations
from hmc_core.potentials.base import Potential


def explore(
    starts: xr.Dataset,
    potential: Potential,
    hmc: HMCConfig,
    n_samples: int,
    temperatures: list[float] | None = None,
    seed: int = 0,
    n_workers: int = 1,
    monitor=None,
    stop_above: float = np.inf,
) -> tuple[xr.Dataset, list[xr.Dataset]]:
    """Run one set of chains (one per temperature) from each starting configuration.

    Returns the saved frames of all chains as one configurations dataset (variables ``start``,
    ``chain``, ``frame``, ``temperature``, ``monitor`` per config) and the raw HMC datasets, one per start.
    """
    validate(starts)
    runs, frames = [], []
    for k in range(starts.sizes["config"]):
        pos, species, cell, pbc = config_arrays(starts, k)
        ds = run_chains(potential, species, pos, hmc, n_samples, temperatures=temperatures, cell=cell,
                        pbc=pbc, seed=seed + 1000 * k, n_workers=n_workers, monitor=monitor,
                        stop_above=stop_above)
        runs.append(ds)
        conf = samples_to_configurations(ds)
        conf["start"] = ("config", np.full(conf.sizes["config"], k, np.int32))
        conf["temperature"] = ("config", ds["temperature"].values[conf["chain"].values])
        frames.append(conf)
    return concat(frames), runs


explore_task = task(explore, name="explore", task_run_name="explore-{n_samples}-samples")
