"""Free-energy melting point stage (issue 22 §2): settings, the plain function and its Prefect task.

The numerics are in :mod:`hmc_core.free_energy` (Frenkel–Ladd crystal, ideal-gas → liquid) and
:mod:`hmc_core.free_energy_melting` (Gibbs–Helmholtz at fixed P, the crossing, the bootstrap interval). Works for
the built-in Lennard-Jones systems and a fitted MTP (:class:`tasks.phase_settings.PhaseSettings`). Temperatures in T*
or K, pressures in P* or bar.
"""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, model_validator

from hmc_core.free_energy_melting import free_energy_melting_point
from hmc_core.lj_reference import TRIPLE_POINT_MASTNY_DE_PABLO, melting_temperature
from hmc_core.structures import lattice, min_box_height
from tasks.phase_settings import PhaseSettings, Temperature

log = logging.getLogger(__name__)


class FreeEnergySettings(PhaseSettings):
    """T_m where the Gibbs free energies of the fcc crystal and the liquid cross at ``pressure``.

    t_guess: the reference temperature T₀ (None: the published LJ melting temperature at the pressure; needed with
    a potential file); NPT runs at T₀ × (1 ± spread) over ``n_temperatures`` temperatures, ``n_npt`` sweeps each;
    4·n_cells³ atoms per phase; Frenkel–Ladd ``n_lambda`` nodes × ``n_fl`` trajectories; the liquid's isotherm at
    ``t_high`` (None: 2.5 T₀, above the LJ critical point) over ``n_density`` nodes and isochore over ``n_beta``
    nodes, ``n_liquid`` trajectories each; ``n_bootstrap`` resamples for the ``confidence`` interval."""

    t_guess: Temperature | None = None
    n_cells: int = Field(5, ge=3, le=20)
    spread: float = Field(0.04, gt=0, lt=0.3)
    n_temperatures: int = Field(5, ge=2, le=50)
    n_npt: int = Field(400, ge=30)
    n_lambda: int = Field(8, ge=2, le=64)
    n_fl: int = Field(200, ge=20)
    n_density: int = Field(8, ge=2, le=64)
    n_beta: int = Field(5, ge=2, le=64)
    n_liquid: int = Field(200, ge=20)
    t_high: Temperature | None = None
    n_bootstrap: int = Field(2000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _state(self):
        system = self.system()
        if self.t_guess is None:
            if not system.is_lennard_jones:
                raise ValueError("t_guess (K) is needed with a potential file: the reference temperature of the "
                                 "free energies, near the expected T_m (e.g. from pesflow coexist)")
            p_star = self.pressure / system.reduced_pressure_to_user(1.0)
            t_star = TRIPLE_POINT_MASTNY_DE_PABLO if p_star < 0.05 else melting_temperature(p_star)
            object.__setattr__(self, "t_guess", round(t_star * system.epsilon_over_kB, 6))
        if self.t_high is not None and not self.t_high > 1.5 * self.t_guess:
            raise ValueError(f"t_high = {self.t_high} must exceed 1.5 × t_guess = {1.5 * self.t_guess:g}: the "
                             "liquid's isotherm must be supercritical")
        width = min_box_height(lattice("fcc", self.n_cells, 1.1 / system.sigma**3)[1])
        if width <= 2 * system.cutoff:
            raise ValueError(f"n_cells = {self.n_cells} gives a crystal box {width:.3g} {system.length_unit} across, "
                             f"not more than twice the cutoff {system.cutoff:.3g}; use more cells")
        return self


def run_free_energy(settings: FreeEnergySettings) -> dict:
    """The free-energy melting point of ``settings`` (:func:`hmc_core.free_energy_melting.free_energy_melting_point`);
    progress to this module's logger."""
    s = settings
    return free_energy_melting_point(
        s.system(), s.pressure, s.t_guess, n_cells=s.n_cells, spread=s.spread, n_temperatures=s.n_temperatures,
        n_npt=s.n_npt, n_lambda=s.n_lambda, n_fl=s.n_fl, n_density=s.n_density, n_beta=s.n_beta,
        n_liquid=s.n_liquid, t_high=s.t_high, n_bootstrap=s.n_bootstrap, level=s.confidence,
        seed=s.run_seed(s.stream(0)), progress=log.info)


free_energy_task = task(run_free_energy, name="free-energy-melting-point", cache_policy=NO_CACHE,
                        persist_result=False, task_run_name="free energies of crystal and liquid")
