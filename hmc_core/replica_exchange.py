"""Replica exchange (parallel tempering) over HMC chains on a temperature ladder.

K replicas of one system run HMC at T_1 < T_2 < … < T_K. After every ``swap_every`` trajectories
per replica, neighbouring rungs (k, k+1) attempt to exchange configurations, alternating even and
odd pairs (deterministic even–odd scheme, Okabe et al. 2001; Syed et al. 2022). A swap is accepted
with probability

    min(1, exp((β_k − β_{k+1}) (U_k − U_{k+1}))),   β = 1 / k_B T,

which keeps the product of Boltzmann distributions invariant (Swendsen & Wang 1986; Geyer 1991).
Every walker (the configuration that started on rung w) is tracked through the ladder; a round trip
is a walk from the lowest rung to the highest and back. Swap acceptance per pair and round-trip
times are recorded.

The ladder can be chosen automatically for a target swap rate from (T_min, T_max): for Gaussian
energy distributions with means μ and variances σ² at the two temperatures, x = Δβ (U_k − U_{k+1})
is Gaussian with m = Δβ (μ_k − μ_{k+1}) and s² = Δβ² (σ_k² + σ_{k+1}²), and the expected acceptance is

    E[min(1, eˣ)] = Φ(m / s) + exp(m + s²/2) Φ(−m / s − s).

μ(T) and σ²(T) come from short pilot chains (or from a model, e.g. harmonic: μ = d k_B T / 2,
σ² = d (k_B T)² / 2); rungs are placed one after another so that each neighbour pair has the target.

Units as in :mod:`hmc_core.hmc` (temperatures in K for "metal", reduced for "lj").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr
from scipy.optimize import brentq
from scipy.special import ndtr

from hmc_core.hmc import HMCConfig, HMCSampler, HMCState, run_chain
from hmc_core.potentials.base import ForceField
from hmc_core.units import get_units


def validate_ladder(temperatures: Sequence[float]) -> np.ndarray:
    """The ladder as a float array; raises ValueError unless ≥ 2 finite, positive, strictly increasing rungs."""
    t = np.asarray(temperatures, dtype=np.float64).ravel()
    if t.size < 2:
        raise ValueError(f"a replica-exchange ladder needs at least 2 temperatures, got {t.size}; "
                         "give a range (T_min, T_max) or several rungs")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(f"ladder temperatures must be positive and finite, got {t.tolist()}")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"ladder temperatures must be strictly increasing (sorted, no duplicates), got {t.tolist()}")
    return t


def geometric_ladder(t_min: float, t_max: float, n: int) -> np.ndarray:
    """n temperatures spaced geometrically from t_min to t_max (optimal for constant heat capacity)."""
    if n < 2:
        raise ValueError(f"a ladder needs at least 2 rungs, got {n}")
    return validate_ladder(np.geomspace(t_min, t_max, n))


def swap_acceptance(beta_low: float, beta_high: float, u_low, u_high) -> np.ndarray:
    """min(1, exp((β_low − β_high)(U_low − U_high))) for energies at the colder / hotter rung."""
    x = (beta_low - beta_high) * (np.asarray(u_low, float) - np.asarray(u_high, float))
    return np.exp(np.minimum(0.0, x))


def predicted_swap_rate(beta_1: float, beta_2: float, mean_1: float, var_1: float, mean_2: float,
                        var_2: float) -> float:
    """Expected swap acceptance between two rungs with Gaussian energy distributions (module docstring)."""
    db = beta_1 - beta_2
    m = db * (mean_1 - mean_2)
    s = abs(db) * math.sqrt(max(var_1 + var_2, 0.0))
    if s == 0.0:
        return 1.0 if m >= 0 else math.exp(m)
    return float(ndtr(m / s) + math.exp(m + 0.5 * s * s + math.log(max(ndtr(-m / s - s), 1e-300))))


def ladder_for_swap_rate(t_min: float, t_max: float, target: float, mean_fn: Callable[[float], float],
                         var_fn: Callable[[float], float], kB: float = 1.0, max_rungs: int = 200) -> np.ndarray:
    """Rungs from t_min to t_max, each neighbour pair with predicted swap rate ``target`` (the last ≥ target).

    ``mean_fn(T)``, ``var_fn(T)``: mean and variance of the potential energy at T; kB: Boltzmann constant.
    """
    validate_ladder([t_min, t_max])
    if not 0 < target < 1:
        raise ValueError(f"target swap rate must be in (0, 1), got {target}")

    def rate(t1, t2):
        return predicted_swap_rate(1 / (kB * t1), 1 / (kB * t2), mean_fn(t1), var_fn(t1), mean_fn(t2), var_fn(t2))

    ladder = [float(t_min)]
    while rate(ladder[-1], t_max) < target:
        if len(ladder) >= max_rungs:
            raise ValueError(f"more than {max_rungs} rungs needed for swap rate {target} between {t_min} and "
                             f"{t_max}; lower the target or narrow the range")
        t_lo = ladder[-1]
        log_t = brentq(lambda lt, t_lo=t_lo: rate(t_lo, math.exp(lt)) - target,
                       math.log(t_lo) + 1e-12, math.log(t_max))
        ladder.append(math.exp(log_t))
    ladder.append(float(t_max))
    return validate_ladder(ladder)


@dataclass
class ReplicaExchangeState:
    """Per-rung HMC states plus walker bookkeeping (rung k holds walker ``walker_at[k]``)."""

    states: list[HMCState]
    walker_at: np.ndarray
    last_end: np.ndarray  # per walker: -1 none yet, 0 last visited the bottom, 1 last visited the top
    last_bottom_sweep: np.ndarray
    attempts: np.ndarray
    accepts: np.ndarray
    round_trip_times: list[int] = field(default_factory=list)
    n_sweeps: int = 0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


class ExchangeStatistics:
    """Swap and acceptance rates of a result holding ``swap_attempts``, ``swap_accepts`` (K−1,) and
    ``accepted`` (n, K) arrays."""

    swap_attempts: np.ndarray
    swap_accepts: np.ndarray
    accepted: np.ndarray

    @property
    def swap_rates(self) -> np.ndarray:
        return self.swap_accepts / np.maximum(self.swap_attempts, 1)

    @property
    def acceptance_rates(self) -> np.ndarray:
        return self.accepted.mean(axis=0)


def walker_round_trips(walker_at: np.ndarray, start=None) -> np.ndarray:
    """Completed round trips lowest rung → highest rung → lowest rung of every walker (replica).

    walker_at: (n_sweeps, K) int, the walker on each rung after each sweep; ``start``: (K,) walkers before
    the first sweep (default: walker k on rung k). Returns (K,) int counts, indexed by walker (= its
    starting rung). A walker that starts at the top counts its first trip once it reaches the bottom and the
    top again from there, so a trip is always bottom → top → bottom (the definition of
    ``ReplicaExchangeResult.round_trip_times``).
    """
    w = np.asarray(walker_at, dtype=np.int64)
    if w.ndim != 2 or w.shape[1] < 2:
        raise ValueError(f"walker_at must be (n_sweeps, K ≥ 2), got shape {w.shape}")
    k = w.shape[1]
    start = np.arange(k) if start is None else np.asarray(start, np.int64)
    w = np.vstack([start[None], w])
    counts = np.zeros(k, np.int64)
    for walker in range(k):
        ends = []  # 0 at the bottom, 1 at the top, consecutive repeats dropped
        for end in np.where(w[:, 0] == walker, 0, np.where(w[:, -1] == walker, 1, -1)):
            if end >= 0 and (not ends or ends[-1] != end):
                ends.append(int(end))
        if ends and ends[0] == 1:
            ends = ends[1:]
        counts[walker] = max(len(ends) - 1, 0) // 2
    return counts


@dataclass(frozen=True)
class EquilibrationVerdict:
    """Whether a replica-exchange run mixed across its ladder, by two criteria stated in ``criteria``:
    every walker made at least ``min_round_trips`` round trips (bottom → top → bottom) and every neighbour
    pair accepted at least ``min_swap_rate`` of its swap attempts."""

    equilibrated: bool
    criteria: str
    failures: tuple[str, ...]

    @property
    def text(self) -> str:
        if self.equilibrated:
            return f"equilibrated by the criteria ({self.criteria})"
        return f"NOT EQUILIBRATED ({self.criteria}): " + "; ".join(self.failures)


def equilibration_verdict(round_trips, swap_rates, min_round_trips: int = 1,
                          min_swap_rate: float = 0.1) -> EquilibrationVerdict:
    """Verdict from per-walker round trips (K,) and per-pair swap rates (K−1,) (see EquilibrationVerdict)."""
    trips = np.asarray(round_trips, np.int64)
    rates = np.asarray(swap_rates, np.float64)
    criteria = f"≥ {min_round_trips} round trip per replica and every pair's swap rate ≥ {min_swap_rate:g}"
    failures = []
    short = np.flatnonzero(trips < min_round_trips)
    if short.size:
        failures.append(f"{short.size} of {trips.size} replicas made fewer than {min_round_trips} round trip "
                        f"(total {int(trips.sum())} round trips)")
    low = np.flatnonzero(~(rates >= min_swap_rate))
    if low.size:
        worst = int(low[np.argmin(rates[low])])
        failures.append(f"{low.size} of {rates.size} pairs swap less often than {min_swap_rate:g} "
                        f"(lowest {rates[worst]:.2f}, pair {worst}–{worst + 1})")
    return EquilibrationVerdict(not failures, criteria, tuple(failures))


@dataclass
class ReplicaExchangeResult(ExchangeStatistics):
    """Per (sweep, rung) energies and walker labels, saved frames per rung, swap and round-trip statistics."""

    temperatures: np.ndarray
    potential_energy: np.ndarray  # (n_sweeps, K)
    walker_at: np.ndarray  # (n_sweeps, K)
    accepted: np.ndarray  # (n_sweeps, K) HMC acceptance of each rung's last trajectory
    frames: np.ndarray  # (n_frames, K, N, 3)
    frame_sweep: np.ndarray
    swap_attempts: np.ndarray  # (K-1,)
    swap_accepts: np.ndarray
    round_trip_times: np.ndarray  # sweeps per completed round trip
    force_evaluations: int
    state: ReplicaExchangeState = field(repr=False)

    @property
    def walker_round_trips(self) -> np.ndarray:
        """(K,) completed round trips of each walker, indexed by its starting rung (:func:`walker_round_trips`)."""
        return walker_round_trips(self.walker_at)

    def verdict(self, min_round_trips: int = 1, min_swap_rate: float = 0.1) -> EquilibrationVerdict:
        """:func:`equilibration_verdict` of this run."""
        return equilibration_verdict(self.walker_round_trips, self.swap_rates, min_round_trips, min_swap_rate)

    def heat_capacity(self, kB: float = 1.0, n_atoms: int | None = None, discard: float = 0.2) -> np.ndarray:
        """C_V / k_B per rung from the energy fluctuations, Var(U) / (k_B T)², plus 3N/2 if ``n_atoms`` given."""
        u = self.potential_energy[int(discard * len(self.potential_energy)):]
        cv = u.var(axis=0, ddof=1) / (kB * self.temperatures) ** 2
        return cv + (1.5 * n_atoms if n_atoms else 0.0)

    def to_dataset(self, units: str = "lj", species=None) -> xr.Dataset:
        """As an xarray Dataset: per (sweep, rung) energies and walkers, per pair swap statistics, frames."""
        u = get_units(units)
        ds = xr.Dataset(
            {
                "potential_energy": (("sweep", "rung"), self.potential_energy),
                "walker": (("sweep", "rung"), self.walker_at),
                "accepted": (("sweep", "rung"), self.accepted),
                "temperature": (("rung",), self.temperatures),
                "acceptance_rate": (("rung",), self.acceptance_rates),
                "swap_attempts": (("pair",), self.swap_attempts),
                "swap_rate": (("pair",), self.swap_rates),
                "positions": (("frame", "rung", "atom", "xyz"), self.frames),
                "frame_sweep": (("frame",), self.frame_sweep),
                "round_trip_sweeps": (("round_trip",), self.round_trip_times),
                "walker_round_trips": (("walker",), self.walker_round_trips),
            },
            coords={"xyz": ["x", "y", "z"]},
            attrs={"schema": "pesflow.replica_exchange/1", "force_evaluations": int(self.force_evaluations)},
        )
        if species is not None:
            ds["species"] = (("atom",), np.asarray(species, np.int32))
        descriptions = {
            "potential_energy": (u.energy, "potential energy of the configuration on each rung after each sweep"),
            "walker": ("1", "index of the walker (its starting rung) on each rung"),
            "accepted": ("1", "1 if the rung's last HMC trajectory was accepted"),
            "temperature": (u.temperature, "rung temperatures (the ladder)"),
            "acceptance_rate": ("1", "HMC acceptance rate per rung"),
            "swap_attempts": ("count", "swap attempts between rungs k and k+1"),
            "swap_rate": ("1", "accepted fraction of swap attempts between rungs k and k+1"),
            "positions": (u.length, "saved configurations per rung"),
            "frame_sweep": ("count", "sweep index of each saved frame"),
            "round_trip_sweeps": ("count", "sweeps taken by each completed round trip (bottom → top → bottom)"),
            "walker_round_trips": ("count", "completed round trips bottom → top → bottom of each walker"),
            "species": ("1", "atomic number (1 = the single LJ species)"),
        }
        for name, (unit, text) in descriptions.items():
            if name in ds:
                ds[name].attrs.update(units=unit, long_name=text)
        return ds


class ReplicaExchange:
    """Parallel tempering over HMC chains.

    ``make_forcefield()`` builds one force field per rung (each keeps its own neighbour list);
    ``config`` is the HMC setting shared by all rungs (its temperature is replaced by the ladder's);
    ``swap_every``: HMC trajectories per rung between swap attempts; ``n_workers`` > 1 runs the rungs'
    trajectories in threads (the Numba kernels release the GIL).
    """

    def __init__(self, make_forcefield: Callable[[], ForceField], config: HMCConfig, temperatures,
                 masses=None, swap_every: int = 1, n_workers: int = 1):
        self.temperatures = validate_ladder(temperatures)
        if int(swap_every) != swap_every or swap_every < 1:
            raise ValueError(f"swap_every must be an integer ≥ 1, got {swap_every}")
        self.swap_every, self.n_workers = int(swap_every), int(n_workers)
        self.config = config
        self.kB = get_units(config.units).kB
        self.betas = 1.0 / (self.kB * self.temperatures)
        self.samplers = [HMCSampler(make_forcefield(), replace(config, temperature=float(t)), masses)
                         for t in self.temperatures]

    @property
    def n_replicas(self) -> int:
        return len(self.temperatures)

    @property
    def force_evaluations(self) -> int:
        return sum(s.ff.n_evaluations for s in self.samplers)

    def init(self, positions, seed: int = 0) -> ReplicaExchangeState:
        """positions: one (N, 3) start shared by all rungs or (K, N, 3), one per rung."""
        pos = np.asarray(positions, dtype=np.float64)
        k = self.n_replicas
        if pos.ndim == 2:
            pos = np.repeat(pos[None], k, axis=0)
        if pos.ndim != 3 or len(pos) != k:
            raise ValueError(f"give one (N, 3) start or {k} starts (one per rung), got shape {pos.shape}")
        seeds = np.random.SeedSequence(seed).spawn(k + 1)
        states = [s.init(p, sd) for s, p, sd in zip(self.samplers, pos, seeds[:k], strict=True)]
        return ReplicaExchangeState(states=states, walker_at=np.arange(k), last_end=np.full(k, -1),
                                    last_bottom_sweep=np.zeros(k, np.int64), attempts=np.zeros(k - 1, np.int64),
                                    accepts=np.zeros(k - 1, np.int64), rng=np.random.default_rng(seeds[k]))

    def warmup(self, state: ReplicaExchangeState) -> None:
        """Step-size adaptation on every rung (no swaps), then dt is frozen."""
        for sampler, s in zip(self.samplers, state.states, strict=True):
            sampler.warmup(s)

    def _advance(self, state: ReplicaExchangeState) -> list:
        def one(k):
            return [self.samplers[k].step(state.states[k]) for _ in range(self.swap_every)][-1]

        if self.n_workers > 1:
            with ThreadPoolExecutor(max_workers=self.n_workers) as pool:
                return list(pool.map(one, range(self.n_replicas)))
        return [one(k) for k in range(self.n_replicas)]

    def attempt_swaps(self, state: ReplicaExchangeState) -> None:
        """Try to exchange configurations of pairs (k, k+1), k even on even sweeps and odd on odd ones."""
        for k in range(state.n_sweeps % 2, self.n_replicas - 1, 2):
            a, b = state.states[k], state.states[k + 1]
            prob = float(swap_acceptance(self.betas[k], self.betas[k + 1], a.energy, b.energy))
            state.attempts[k] += 1
            if state.rng.uniform() < prob:
                state.accepts[k] += 1
                a.positions, b.positions = b.positions, a.positions
                a.energy, b.energy = b.energy, a.energy
                a.forces, b.forces = b.forces, a.forces
                a.virial, b.virial = b.virial, a.virial
                scale = math.sqrt(self.temperatures[k] / self.temperatures[k + 1])
                a.momenta, b.momenta = b.momenta * scale, a.momenta / scale
                state.walker_at[k], state.walker_at[k + 1] = state.walker_at[k + 1], state.walker_at[k]

    def _track_round_trips(self, state: ReplicaExchangeState) -> None:
        bottom, top = state.walker_at[0], state.walker_at[-1]
        if state.last_end[bottom] == 1:
            state.round_trip_times.append(int(state.n_sweeps - state.last_bottom_sweep[bottom]))
        if state.last_end[bottom] != 0:
            state.last_bottom_sweep[bottom] = state.n_sweeps
        state.last_end[bottom] = 0
        if state.last_end[top] == 0:
            state.last_end[top] = 1

    def sweep(self, state: ReplicaExchangeState) -> list:
        """One trajectory block on every rung, then one round of swap attempts; returns the TrajectoryInfos."""
        infos = self._advance(state)
        self.attempt_swaps(state)
        state.n_sweeps += 1
        self._track_round_trips(state)
        return infos

    def run(self, positions, n_sweeps: int, seed: int = 0, save_every: int = 1,
            callback: Callable[[int, ReplicaExchangeState], bool] | None = None) -> ReplicaExchangeResult:
        """Warm up, then ``n_sweeps`` production sweeps. ``callback(sweep, state)`` returning True stops early."""
        if n_sweeps < 1:
            raise ValueError(f"n_sweeps must be ≥ 1, got {n_sweeps}")
        if save_every < 1:
            raise ValueError(f"save_every must be ≥ 1, got {save_every}")
        state = self.init(positions, seed)
        self.warmup(state)
        n_eval0 = self.force_evaluations
        k = self.n_replicas
        energies = np.full((n_sweeps, k), np.nan)
        walkers = np.full((n_sweeps, k), -1, np.int64)
        accepted = np.zeros((n_sweeps, k), np.int8)
        frames, frame_sweep = [], []
        done = n_sweeps
        for s in range(n_sweeps):
            infos = self.sweep(state)
            energies[s] = [st.energy for st in state.states]
            walkers[s] = state.walker_at
            accepted[s] = [i.accepted for i in infos]
            if s % save_every == 0:
                frames.append(np.stack([st.positions.copy() for st in state.states]))
                frame_sweep.append(s)
            if callback is not None and callback(s, state):
                done = s + 1
                break
        return ReplicaExchangeResult(
            temperatures=self.temperatures, potential_energy=energies[:done], walker_at=walkers[:done],
            accepted=accepted[:done], frames=np.array(frames), frame_sweep=np.array(frame_sweep, np.int64),
            swap_attempts=state.attempts.copy(), swap_accepts=state.accepts.copy(),
            round_trip_times=np.array(state.round_trip_times, np.int64),
            force_evaluations=self.force_evaluations - n_eval0, state=state)


def auto_ladder(make_forcefield: Callable[[], ForceField], config: HMCConfig, positions, t_min: float,
                t_max: float, target: float = 0.3, n_pilot_rungs: int = 6, n_pilot: int = 200, masses=None,
                seed: int = 0) -> np.ndarray:
    """Ladder from (t_min, t_max) for a target swap rate, from ⟨U⟩ and Var U of short pilot HMC chains.

    Pilot chains run independently at a geometric ladder of ``n_pilot_rungs``; ⟨U⟩ and Var U are
    interpolated linearly in log T (second half of each pilot chain used).
    """
    pilot = geometric_ladder(t_min, t_max, n_pilot_rungs)
    means, variances = [], []
    for i, t in enumerate(pilot):
        sampler = HMCSampler(make_forcefield(), replace(config, temperature=float(t)), masses)
        u = run_chain(sampler, positions, n_pilot, seed=seed + i).potential_energy
        u = u[len(u) // 2:]
        means.append(float(np.mean(u)))
        variances.append(float(np.var(u, ddof=1)))
    log_t = np.log(pilot)

    def mean_fn(t):
        return float(np.interp(math.log(t), log_t, means))

    def var_fn(t):
        return float(np.interp(math.log(t), log_t, variances))

    return ladder_for_swap_rate(t_min, t_max, target, mean_fn, var_fn, kB=get_units(config.units).kB)
