"""Phase-transition stage: heating and cooling ladders, supercooled liquids, seeded crystallisation runs,
two-phase coexistence runs.

Plain functions (testable without Prefect) and their Prefect tasks; the numerics are in
:mod:`hmc_core.structures`, :mod:`hmc_core.ladders`, :mod:`hmc_core.seeding` and
:mod:`hmc_core.coexistence`. Temperatures in K (rare gases, MTPs) or T* (LJ); pressures in bar or P*.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from prefect import task
from prefect.cache_policies import NO_CACHE

from hmc_core.coexistence import run_coexistence
from hmc_core.ladders import melt, run_ladder
from hmc_core.phase_system import PhaseModel, bulk_crystal
from hmc_core.seeding import run_seeded
from hmc_core.structures import add_defects, lattice

CRYSTAL_DENSITY_REDUCED = 1.0  # starting fcc density ρσ³ (NPT relaxes it within the warm-up)


log = logging.getLogger(__name__)


def _progress():
    """Progress lines go to the standard ``logging`` logger of this module (Prefect shows them in the run's logs:
    ``PREFECT_LOGGING_EXTRA_LOGGERS`` names ``tasks`` and ``hmc_core``, see :mod:`flows.server`)."""
    return log.info


def starting_crystal(system: PhaseModel, n_cells: int, vacancy_fraction: float = 0.0,
                     interstitial_fraction: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """fcc crystal of 4·n_cells³ sites at ρσ³ = 1, with random vacancies/interstitials; (positions, cell)."""
    pos, cell = lattice("fcc", n_cells, CRYSTAL_DENSITY_REDUCED / system.sigma**3)
    if vacancy_fraction or interstitial_fraction:
        pos = add_defects(pos, cell, vacancy_fraction, interstitial_fraction, seed=seed)
    return pos, cell


def ladder(system: PhaseModel, direction: str, temperatures: list[float], pressure: float, n_cells: int,
           vacancy_fraction: float = 0.0, interstitial_fraction: float = 0.0, melt_temperature: float | None = None,
           n_samples: int = 200, n_warmup: int = 50, analyse_every: int = 20, seed: int = 0, replica: int = 0,
           pressure_unit: str | None = None, n_melt: int = 100) -> xr.Dataset:
    """One heating (ascending, from the crystal) or cooling (descending, from a liquid melted at
    ``melt_temperature``, default 1.5 × the highest temperature, for ``n_melt`` sweeps) ladder.
    Returns the ladder Dataset, attrs ``direction``, ``vacancy_fraction``, ``interstitial_fraction``, ``replica``."""
    if direction not in ("heating", "cooling"):
        raise ValueError(f"direction must be heating or cooling, got {direction!r}")
    pos, cell = starting_crystal(system, n_cells, vacancy_fraction, interstitial_fraction, seed)
    temps = sorted(temperatures, reverse=direction == "cooling")
    kw = dict(n_warmup=n_warmup, pressure_unit=pressure_unit)
    if direction == "cooling":
        t_melt = melt_temperature or 1.5 * max(temps)
        pos, cell = melt(system, pos, cell, t_melt, pressure, n_samples=n_melt, seed=seed + 1, **kw)
    ds = run_ladder(system, pos, cell, temps, pressure, n_samples=n_samples, analyse_every=analyse_every,
                    seed=seed, progress=_progress(), **kw)
    ds.attrs.update({"direction": direction, "vacancy_fraction": vacancy_fraction,
                     "interstitial_fraction": interstitial_fraction, "replica": replica})
    return ds.sortby("temperature")


def supercooled_liquid(system: PhaseModel, temperature: float, pressure: float, n_cells: int,
                       melt_temperature: float, n_melt: int = 150, n_quench: int = 100, seed: int = 0,
                       pressure_unit: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Melt an fcc crystal at ``melt_temperature`` and quench it to ``temperature``: (positions, cell)."""
    pos, cell = starting_crystal(system, n_cells)
    pos, cell = melt(system, pos, cell, melt_temperature, pressure, n_samples=n_melt, seed=seed,
                     pressure_unit=pressure_unit)
    return melt(system, pos, cell, temperature, pressure, n_samples=n_quench, seed=seed + 1,
                pressure_unit=pressure_unit)


def seeded_run(system: PhaseModel, liquid: tuple[np.ndarray, np.ndarray], structure: str, n_seed: int,
               temperature: float, pressure: float, n_samples: int = 200, analyse_every: int = 5, seed: int = 0,
               pressure_unit: str | None = None, n_hold: int = 0, replica: int = 0,
               crystal: tuple[float, np.ndarray, np.ndarray] | None = None, n_steps: int = 10) -> xr.Dataset:
    """One seeded-crystallisation run from a prepared liquid (see :func:`hmc_core.seeding.run_seeded`);
    ``n_hold`` sweeps with the seed held while the liquid relaxes around it; ``crystal`` a thermalised
    bulk crystal (density, positions, cell) from :func:`crystal_at` (default: made in the run); attrs ``replica``."""
    pos, cell = liquid
    ds = run_seeded(system, pos, cell, structure, n_seed, temperature, pressure, n_samples=n_samples,
                    analyse_every=analyse_every, seed=seed, pressure_unit=pressure_unit, n_hold=n_hold,
                    crystal=None if crystal is None else crystal[1:], n_steps=n_steps)
    ds.attrs["replica"] = replica
    log.info(f"T={temperature:g} {structure} seed of {n_seed} (replica {replica}): {ds.attrs['outcome']}, largest "
             f"cluster {ds.attrs['initial_largest_cluster']:.0f} → {ds.attrs['final_largest_cluster']:.0f}")
    return ds


def crystal_at(system: PhaseModel, temperature: float, pressure: float, seed: int = 0, n_cells: int = 8,
               pressure_unit: str | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Bulk fcc crystal thermalised at (T, P): (density, positions, cell)
    (:func:`hmc_core.phase_system.bulk_crystal`)."""
    out = bulk_crystal(system, temperature, pressure, n_cells=n_cells, seed=seed, pressure_unit=pressure_unit)
    log.info(f"bulk fcc density at T={temperature:g}: {out[0]:.4f}")
    return out


def coexistence_run(system: PhaseModel, temperature: float, pressure: float, n_cells: tuple[int, int, int],
                    n_samples: int = 1000, analyse_every: int = 20, n_melt: int = 150, n_hold: int = 30,
                    n_bulk: int = 60, n_steps: int = 20, threshold: float = 0.03, seed: int = 0,
                    pressure_unit: str | None = None, melt_temperature: float | None = None) -> xr.Dataset:
    """One two-phase coexistence run at (T, P) (see :func:`hmc_core.coexistence.run_coexistence`); logs progress
    to this module's logger (shown in the Prefect run's logs)."""
    return run_coexistence(system, temperature, pressure, n_cells=n_cells, n_samples=n_samples,
                           analyse_every=analyse_every, n_melt=n_melt, n_hold=n_hold, n_bulk=n_bulk, n_steps=n_steps,
                           threshold=threshold, seed=seed, pressure_unit=pressure_unit, progress=_progress(),
                           melt_temperature=melt_temperature)


ladder_task = task(ladder, name="phase-ladder", cache_policy=NO_CACHE, persist_result=False,
                   task_run_name="{direction} ladder, defects {vacancy_fraction}/{interstitial_fraction}, "
                                 "replica {replica}")
supercooled_liquid_task = task(supercooled_liquid, name="supercooled-liquid", cache_policy=NO_CACHE,
                               persist_result=False,
                               task_run_name="liquid at T={temperature}")
seeded_run_task = task(seeded_run, name="seeded-run", cache_policy=NO_CACHE, persist_result=False,
                       task_run_name="{structure} seed of {n_seed} at T={temperature}, replica {replica}")
crystal_task = task(crystal_at, name="bulk-crystal", cache_policy=NO_CACHE, persist_result=False,
                    task_run_name="fcc crystal at T={temperature}")
coexistence_task = task(coexistence_run, name="coexistence-run", cache_policy=NO_CACHE, persist_result=False,
                        task_run_name="two-phase run at T={temperature}")
