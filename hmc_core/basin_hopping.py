"""Parallel-tempering basin hopping with HMC moves: global optimisation on a rugged landscape.

Plain parallel tempering samples exp(−U/k_B T); on a double funnel such as LJ₃₈ the funnel of the
global minimum is entropically so narrow that tempered chains seldom fall into it (pesflow's
PT-HMC on LJ₃₈ did not, in 3.6 × 10⁶ force evaluations per seed, see ``bench/lj38.py``). Basin
hopping (Li & Scheraga 1987; Wales & Doye 1997) instead walks on the *transformed* landscape
Ũ(x) = U(quench(x)), which removes the barriers inside each basin, and parallel tempering over
basin-hopping walkers (Strodel, Lin & Wales 2010) lets hot walkers feed cold ones. Here:

* every rung k holds a local minimum x_k with energy Ũ_k;
* a *move* perturbs x_k with ``n_kicks`` HMC trajectories at the kick temperature (momenta drawn at
  ``kick_temperature``; by default unadjusted, as only the end point matters: the trajectory is a
  proposal generator, as the escape MD of minima hopping, Goedecker 2004), then quenches the end
  point (:func:`hmc_core.minimize.local_minimum`) to y with energy Ũ_y;
* y is accepted with probability min(1, exp(−(Ũ_y − Ũ_k) / k_B T_k));
* after every move on every rung, neighbouring rungs (alternating even/odd pairs) swap minima with
  probability min(1, exp((β_k − β_{k+1})(Ũ_k − Ũ_{k+1}))).

This is an optimiser: it does not sample the Boltzmann distribution of U (use
:class:`hmc_core.replica_exchange.ReplicaExchange` for thermodynamics). The force evaluations of
kicks and quenches are both counted. Units as in :mod:`hmc_core.hmc` ("lj": reduced; "metal": K, fs, eV).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hmc_core.hmc import HMCConfig, HMCSampler
from hmc_core.minimize import local_minimum
from hmc_core.potentials.base import ForceField
from hmc_core.replica_exchange import ExchangeStatistics, swap_acceptance, validate_ladder
from hmc_core.units import get_units


@dataclass(frozen=True)
class BasinHoppingConfig:
    """Settings (validated on construction).

    temperatures: acceptance ladder for quenched energies (K or T*), strictly increasing, ≥ 2 rungs.
    kick_temperature: temperature of the HMC momenta of a move (K or T*); dt (fs or τ), n_steps: its
    trajectory; n_kicks: trajectories per move; metropolis_kicks: accept/reject each kick at the kick
    temperature (False: unadjusted, every non-divergent end point is used). gtol (energy/length) and
    max_iter: the quench's convergence.
    """

    temperatures: tuple[float, ...]
    kick_temperature: float
    dt: float
    n_steps: int = 40
    n_kicks: int = 1
    metropolis_kicks: bool = False
    units: str = "lj"
    gtol: float = 1e-6
    max_iter: int = 5000

    def __post_init__(self):
        object.__setattr__(self, "temperatures", tuple(validate_ladder(self.temperatures).tolist()))
        if not (math.isfinite(self.kick_temperature) and self.kick_temperature > 0):
            raise ValueError(f"kick_temperature must be positive, got {self.kick_temperature}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be positive, got {self.dt}")
        for name in ("n_steps", "n_kicks", "max_iter"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value}")
        if not self.gtol > 0:
            raise ValueError(f"gtol must be positive, got {self.gtol}")
        get_units(self.units)


@dataclass
class BasinHoppingResult(ExchangeStatistics):
    """Per (move, rung) quenched energies and acceptances, swap statistics, the best minimum found."""

    temperatures: np.ndarray
    energies: np.ndarray  # (n_moves, K) current minimum's energy after each move and swap round
    accepted: np.ndarray  # (n_moves, K)
    swap_attempts: np.ndarray  # (K-1,)
    swap_accepts: np.ndarray
    best_energy: float
    best_positions: np.ndarray  # (N, 3)
    best_move: int  # move at which the best minimum was first reached
    best_force_evaluations: int  # force evaluations spent up to then (kicks + quenches, all rungs)
    force_evaluations: int
    quench_evaluations: int
    minima: list[tuple[float, np.ndarray]] = field(default_factory=list, repr=False)


class ParallelTemperingBasinHopping:
    """PT over basin-hopping walkers whose moves are HMC trajectories plus a quench (module docstring).

    ``make_forcefield()`` builds one force field per rung; ``masses`` as for :class:`HMCSampler`.
    """

    def __init__(self, make_forcefield: Callable[[], ForceField], config: BasinHoppingConfig, masses=None):
        self.config = config
        self.temperatures = np.array(config.temperatures)
        self.betas = 1.0 / (get_units(config.units).kB * self.temperatures)
        kick = HMCConfig(temperature=config.kick_temperature, dt=config.dt, n_steps=config.n_steps,
                         units=config.units, metropolis=config.metropolis_kicks, adapt_step_size=False)
        self.samplers = [HMCSampler(make_forcefield(), kick, masses) for _ in self.temperatures]

    @property
    def force_evaluations(self) -> int:
        return sum(s.ff.n_evaluations for s in self.samplers)

    def _quench(self, k: int, x: np.ndarray) -> tuple[float, np.ndarray, int]:
        ff = self.samplers[k].ff
        n0 = ff.n_evaluations
        e, y = local_minimum(ff, x, self.config.gtol, self.config.max_iter)
        return e, y, ff.n_evaluations - n0

    def run(self, positions, n_moves: int, seed: int = 0, stop_below: float | None = None,
            keep_minima_below: float | None = None,
            callback: Callable[[int, np.ndarray], bool] | None = None) -> BasinHoppingResult:
        """``n_moves`` moves per rung from ``positions`` ((N, 3) shared or (K, N, 3), quenched first).

        stop_below: end as soon as a quench reaches an energy below it (e.g. the known global minimum
        + tolerance). keep_minima_below: keep every distinct quenched minimum below this energy (distinct:
        energies differing by more than 1e-6; permutation/rotation copies of one minimum count once), e.g.
        as a database for the harmonic superposition approximation.
        callback(move, energies) returning True stops early.
        """
        if int(n_moves) != n_moves or n_moves < 1:
            raise ValueError(f"n_moves must be an integer ≥ 1, got {n_moves}")
        k_rungs = len(self.temperatures)
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim == 2:
            pos = np.repeat(pos[None], k_rungs, axis=0)
        if pos.ndim != 3 or len(pos) != k_rungs:
            raise ValueError(f"give one (N, 3) start or {k_rungs} starts (one per rung), got shape {pos.shape}")
        seeds = np.random.SeedSequence(seed).spawn(k_rungs + 1)
        rng = np.random.default_rng(seeds[-1])
        n0 = self.force_evaluations
        quench_evals = 0
        xs, es, states = [], [], []
        for k in range(k_rungs):
            e, x, n = self._quench(k, pos[k])
            quench_evals += n
            xs.append(x)
            es.append(e)
            states.append(self.samplers[k].init(x, seeds[k]))
        i_best = int(np.argmin(es))
        best = (es[i_best], xs[i_best].copy(), 0, self.force_evaluations - n0)
        minima: list[tuple[float, np.ndarray]] = []
        energies = np.full((n_moves, k_rungs), np.nan)
        accepted = np.zeros((n_moves, k_rungs), np.int8)
        attempts = np.zeros(k_rungs - 1, np.int64)
        accepts = np.zeros(k_rungs - 1, np.int64)
        done = n_moves
        for move in range(n_moves):
            stop = False
            for k in range(k_rungs):
                sampler, state = self.samplers[k], states[k]
                state.positions = xs[k] - xs[k].mean(axis=0)
                state.energy, state.forces = sampler.ff.energy_forces(state.positions)
                for _ in range(self.config.n_kicks):
                    sampler.step(state)
                e_new, x_new, n = self._quench(k, state.positions)
                quench_evals += n
                if not math.isfinite(e_new):
                    continue
                if e_new < best[0] - 1e-9:
                    best = (e_new, x_new.copy(), move, self.force_evaluations - n0)
                if keep_minima_below is not None and e_new < keep_minima_below and \
                        all(abs(e_new - e_m) > 1e-6 for e_m, _ in minima):
                    minima.append((e_new, x_new.copy()))
                if e_new <= es[k] or rng.uniform() < math.exp(-self.betas[k] * (e_new - es[k])):
                    accepted[move, k] = 1
                    xs[k], es[k] = x_new, e_new
                if stop_below is not None and e_new < stop_below:
                    stop = True
                    break
            if not stop:
                for k in range(move % 2, k_rungs - 1, 2):
                    attempts[k] += 1
                    if rng.uniform() < float(swap_acceptance(self.betas[k], self.betas[k + 1], es[k], es[k + 1])):
                        accepts[k] += 1
                        xs[k], xs[k + 1] = xs[k + 1], xs[k]
                        es[k], es[k + 1] = es[k + 1], es[k]
            energies[move] = es
            if stop or (callback is not None and callback(move, energies[move])):
                done = move + 1
                break
        return BasinHoppingResult(
            temperatures=self.temperatures, energies=energies[:done], accepted=accepted[:done],
            swap_attempts=attempts, swap_accepts=accepts, best_energy=float(best[0]),
            best_positions=best[1], best_move=int(best[2]), best_force_evaluations=int(best[3]),
            force_evaluations=self.force_evaluations - n0, quench_evaluations=int(quench_evals),
            minima=sorted(minima, key=lambda m: m[0]))
