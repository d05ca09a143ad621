"""Hybrid (Hamiltonian) Monte Carlo for atomistic systems.

One HMC trajectory: draw momenta p ~ N(0, M k_B T) (or partially refresh them, generalised HMC),
integrate Hamilton's equations for L steps of size dt with a reversible, volume-preserving
integrator, and accept the end point with probability min(1, exp(−ΔH / k_B T)). A non-finite
energy is a rejection. During warm-up only, dt is adapted to a target acceptance by dual averaging
(Hoffman & Gelman 2014, Alg. 5); afterwards it is frozen, so the production chain satisfies
detailed balance. L or dt may be jittered at random per trajectory to avoid resonances.

Units: ``HMCConfig.units`` is "metal" (T in K, dt in fs, masses amu, energies eV) or "lj" (reduced).
Results: :func:`run_chains` returns an xarray Dataset with dims ``chain``, ``sample``, ``frame``,
``atom``, ``xyz`` (see :func:`run_chains` for variables); :func:`samples_to_configurations` turns
its frames into the common configurations schema.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import xarray as xr

from hmc_core.configurations import make_configurations
from hmc_core.integrators import get_integrator, kinetic_energy
from hmc_core.potentials.base import ForceField, Potential
from hmc_core.units import get_units


@dataclass(frozen=True)
class HMCConfig:
    """Settings of an HMC chain (validated on construction).

    temperature: K ("metal") or T* ("lj"). dt: fs or τ. n_steps: L, integrator steps per trajectory.
    jitter_steps / jitter_dt: relative half-width of uniform random jitter of L / dt (0 = none).
    persistence: α of the partial momentum refresh p ← α p + √(1−α²) ξ (0 = full refresh; > 0
    gives generalised HMC, where momenta are negated on rejection).
    n_warmup: trajectories with step-size adaptation (discarded); target_accept: its goal.
    save_every: keep positions every k production trajectories. skin: neighbour-list skin (length).
    metropolis: False drops the accept/reject step (unadjusted HMC, biased by O(dt²); see
    :mod:`hmc_core.unadjusted`): every end point is kept unless the trajectory diverged
    (non-finite, or ΔH > 1000 k_B T: an unstable dt, which would otherwise be kept silently).
    """

    temperature: float
    dt: float
    n_steps: int = 10
    integrator: str = "verlet"
    units: str = "metal"
    jitter_steps: float = 0.0
    jitter_dt: float = 0.0
    persistence: float = 0.0
    n_warmup: int = 0
    adapt_step_size: bool = True
    target_accept: float = 0.7
    save_every: int = 1
    skin: float = 0.3
    metropolis: bool = True

    def __post_init__(self):
        get_units(self.units)
        get_integrator(self.integrator)
        checks = [
            (self.temperature > 0, "temperature", "must be > 0"),
            (self.dt > 0, "dt", "must be > 0"),
            (self.n_steps >= 1, "n_steps", "must be ≥ 1"),
            (0 <= self.jitter_steps < 1, "jitter_steps", "must be in [0, 1)"),
            (0 <= self.jitter_dt < 1, "jitter_dt", "must be in [0, 1)"),
            (0 <= self.persistence < 1, "persistence", "must be in [0, 1)"),
            (self.n_warmup >= 0, "n_warmup", "must be ≥ 0"),
            (0 < self.target_accept < 1, "target_accept", "must be in (0, 1)"),
            (self.save_every >= 1, "save_every", "must be ≥ 1"),
            (self.skin >= 0, "skin", "must be ≥ 0"),
        ]
        for ok, name, why in checks:
            if not (ok and np.isfinite(getattr(self, name))):
                raise ValueError(f"HMCConfig.{name} = {getattr(self, name)!r} {why}")

    @property
    def kT(self) -> float:
        return get_units(self.units).kB * self.temperature

    @property
    def dt_internal(self) -> float:
        return self.dt * get_units(self.units).time_to_internal


@dataclass
class DualAveraging:
    """Step-size adaptation state (Hoffman & Gelman 2014); works on log(dt)."""

    log_dt: float
    mu: float
    h_bar: float = 0.0
    log_dt_bar: float = 0.0
    t: int = 0
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def update(self, accept_prob: float, target: float) -> float:
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (target - accept_prob)
        self.log_dt = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** (-self.kappa)
        self.log_dt_bar = eta * self.log_dt + (1 - eta) * self.log_dt_bar
        return math.exp(self.log_dt)


@dataclass
class HMCState:
    """Everything needed to continue a chain bit for bit."""

    positions: np.ndarray
    momenta: np.ndarray
    energy: float
    forces: np.ndarray
    dt: float  # internal time units
    rng: np.random.Generator
    n_trajectories: int = 0
    n_accepted: int = 0
    adaptation: DualAveraging | None = None
    virial: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))


@dataclass
class TrajectoryInfo:
    """What one HMC trajectory did."""

    accepted: bool
    accept_prob: float
    delta_h: float
    kinetic: float
    n_steps: int
    dt: float
    force_evaluations: int


def expand_inverse_mass(masses, n_atoms: int) -> np.ndarray:
    """(N, 3) inverse-mass array from per-atom (N,) or per-degree-of-freedom (N, 3) masses."""
    m = np.asarray(masses, dtype=np.float64)
    if m.shape == (n_atoms,):
        m = np.repeat(m[:, None], 3, axis=1)
    if m.shape != (n_atoms, 3):
        raise ValueError(f"masses must have shape ({n_atoms},) or ({n_atoms}, 3), got {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("masses must be positive and finite")
    return np.ascontiguousarray(1.0 / m)


def default_masses(species: np.ndarray, units: str) -> np.ndarray:
    """Atomic masses (amu) for ``metal`` units; 1 for reduced units."""
    if get_units(units).name == "lj":
        return np.ones(len(species))
    from ase.data import atomic_masses

    return atomic_masses[np.asarray(species)]


class HMCSampler:
    """HMC on one system: ``init`` a state, then ``step`` (one trajectory) or ``run``."""

    def __init__(self, forcefield: ForceField, config: HMCConfig, masses=None):
        self.ff = forcefield
        self.config = config
        if masses is None:
            masses = default_masses(forcefield.species, config.units)
        self.inv_mass = expand_inverse_mass(masses, forcefield.n_atoms)
        self.mass = 1.0 / self.inv_mass
        self.integrate = forcefield.fused_integrator(config.integrator) or get_integrator(config.integrator)

    def init(self, positions, seed: int | np.random.SeedSequence | None = 0) -> HMCState:
        x = np.array(positions, dtype=np.float64).reshape(self.ff.n_atoms, 3)
        if not np.all(np.isfinite(x)):
            raise ValueError("starting positions contain NaN or inf")
        e, f = self.ff.energy_forces(x)
        if not np.isfinite(e):
            raise ValueError("the potential energy of the starting structure is not finite")
        rng = np.random.default_rng(seed)
        p = rng.standard_normal(x.shape) * np.sqrt(self.mass * self.config.kT)
        dt = self.config.dt_internal
        adapt = None
        if self.config.adapt_step_size and self.config.n_warmup > 0:
            adapt = DualAveraging(log_dt=math.log(dt), mu=math.log(10 * dt), log_dt_bar=math.log(dt))
        return HMCState(x, p, e, f, dt, rng, adaptation=adapt, virial=self.ff.virial.copy())

    def refresh_momenta(self, state: HMCState) -> None:
        xi = state.rng.standard_normal(state.momenta.shape) * np.sqrt(self.mass * self.config.kT)
        a = self.config.persistence
        if a == 0.0:
            state.momenta = xi
        else:
            state.momenta = a * state.momenta + math.sqrt(1 - a * a) * xi

    def step(self, state: HMCState, adapt: bool = False) -> TrajectoryInfo:
        """One HMC trajectory (in place on ``state``)."""
        cfg = self.config
        self.refresh_momenta(state)
        n_steps = cfg.n_steps
        if cfg.jitter_steps > 0:
            lo = max(1, round(cfg.n_steps * (1 - cfg.jitter_steps)))
            hi = max(lo, round(cfg.n_steps * (1 + cfg.jitter_steps)))
            n_steps = int(state.rng.integers(lo, hi + 1))
        dt = state.dt
        if cfg.jitter_dt > 0:
            dt *= 1.0 + cfg.jitter_dt * state.rng.uniform(-1.0, 1.0)
        x0, p0, e0, f0 = state.positions.copy(), state.momenta.copy(), state.energy, state.forces
        nlist_snapshot = self.ff.nlist.snapshot()
        k0 = kinetic_energy(p0, self.inv_mass)
        x, p = state.positions, state.momenta
        n_eval0 = self.ff.n_evaluations
        with np.errstate(all="ignore"):
            e1, f1 = self.integrate(x, p, self.inv_mass, self.ff, dt, n_steps, e0, f0)
            k1 = kinetic_energy(p, self.inv_mass)
            delta_h = (e1 + k1) - (e0 + k0)
        if np.isfinite(delta_h) and np.all(np.isfinite(x)):
            accept_prob = math.exp(min(0.0, -delta_h / cfg.kT))
        else:
            accept_prob, delta_h = 0.0, float("inf")
        if cfg.metropolis:
            accepted = bool(state.rng.uniform() < accept_prob)
        else:  # unadjusted HMC: keep every end point except diverged ones
            accepted = bool(np.isfinite(delta_h) and delta_h < 1000.0 * cfg.kT)
        if accepted:
            state.energy, state.forces, state.virial = e1, f1, self.ff.virial.copy()
            state.n_accepted += 1
        else:
            state.positions, state.energy, state.forces = x0, e0, f0
            self.ff.nlist.restore(nlist_snapshot)
            state.momenta = -p0 if cfg.persistence > 0 else p0
        state.n_trajectories += 1
        if adapt and state.adaptation is not None:
            state.dt = state.adaptation.update(accept_prob, cfg.target_accept)
        return TrajectoryInfo(accepted, accept_prob, float(delta_h), float(k0), n_steps, dt,
                              self.ff.n_evaluations - n_eval0)

    def warmup(self, state: HMCState) -> None:
        """Run the warm-up trajectories, adapting dt if enabled, then freeze dt."""
        for _ in range(self.config.n_warmup):
            self.step(state, adapt=True)
        self.finish_warmup(state)

    def finish_warmup(self, state: HMCState) -> None:
        """Freeze the adapted dt and refresh energy/forces (for samplers that interleave other moves)."""
        if state.adaptation is not None:
            state.dt = math.exp(state.adaptation.log_dt_bar)
            state.adaptation = None
        # The neighbour-list state differs after warm-up; energies stay consistent.
        state.energy, state.forces = self.ff.energy_forces(state.positions)
        state.virial = self.ff.virial.copy()


Monitor = Callable[[np.ndarray], float]


@dataclass
class ChainResult:
    """Arrays of one production chain (per sample / per saved frame)."""

    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    delta_h: np.ndarray
    accepted: np.ndarray
    accept_prob: np.ndarray
    n_steps: np.ndarray
    dt: np.ndarray
    pressure: np.ndarray
    frames: np.ndarray
    frame_sample: np.ndarray
    monitor: np.ndarray
    force_evaluations: int
    final_dt: float
    stopped_early: bool
    state: HMCState = field(repr=False)


def run_chain(sampler: HMCSampler, positions, n_samples: int, seed=0,
              monitor: Monitor | None = None, stop_above: float = np.inf,
              progress: Callable[[int], None] | None = None) -> ChainResult:
    """Warm up, then run ``n_samples`` production trajectories.

    ``monitor(positions) -> float`` is evaluated on every saved frame (e.g. an extrapolation grade);
    the chain stops after the first frame whose value exceeds ``stop_above``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
    cfg = sampler.config
    state = sampler.init(positions, seed)
    sampler.warmup(state)
    ff = sampler.ff
    n_eval0 = ff.n_evaluations
    rec = {k: np.full(n_samples, np.nan) for k in
           ("potential_energy", "kinetic_energy", "delta_h", "accept_prob", "dt", "pressure")}
    accepted = np.zeros(n_samples, np.int8)
    n_steps = np.zeros(n_samples, np.int32)
    frames, frame_sample, mon = [], [], []
    volume = ff.volume
    stopped = False
    for s in range(n_samples):
        info = sampler.step(state)
        rec["potential_energy"][s] = state.energy
        rec["kinetic_energy"][s] = info.kinetic
        rec["delta_h"][s] = info.delta_h
        rec["accept_prob"][s] = info.accept_prob
        rec["dt"][s] = info.dt / get_units(cfg.units).time_to_internal
        accepted[s] = info.accepted
        n_steps[s] = info.n_steps
        if np.isfinite(volume):
            rec["pressure"][s] = (ff.n_atoms * cfg.kT + np.trace(state.virial) / 3.0) / volume
        if s % cfg.save_every == 0 or s == n_samples - 1:
            frames.append(state.positions.copy())
            frame_sample.append(s)
            value = monitor(state.positions) if monitor is not None else np.nan
            mon.append(value)
            if value > stop_above:
                stopped = True
        if progress is not None:
            progress(s)
        if stopped:
            for v in rec.values():
                v[s + 1:] = np.nan
            break
    return ChainResult(accepted=accepted, n_steps=n_steps, frames=np.array(frames),
                       frame_sample=np.array(frame_sample, np.int32), monitor=np.array(mon, float),
                       force_evaluations=ff.n_evaluations - n_eval0, final_dt=state.dt,
                       stopped_early=stopped, state=state, **rec)


def run_chains(
    potential: Potential,
    species,
    starts,
    config: HMCConfig,
    n_samples: int,
    temperatures: Sequence[float] | None = None,
    cell=None,
    pbc=(False, False, False),
    masses=None,
    seed: int = 0,
    n_workers: int = 1,
    monitor: Monitor | None = None,
    stop_above: float = np.inf,
) -> xr.Dataset:
    """Run several independent chains (one per temperature and/or starting structure).

    ``starts``: (N, 3) positions or a list of them (one per chain); ``temperatures``: one per chain
    (default: ``config.temperature`` for all). Chains get independent seeds spawned from ``seed``.
    With ``n_workers > 1`` chains run in threads (the Numba kernels release the GIL).

    Returns a Dataset: per (chain, sample) ``potential_energy``, ``kinetic_energy``, ``delta_H``,
    ``accepted``, ``accept_prob``, ``n_steps``, ``dt``, ``pressure``; per (chain, frame)
    ``positions`` (…, atom, xyz) and ``frame_sample``; per chain ``temperature``,
    ``acceptance_rate``, ``final_dt``, ``force_evaluations``, ``stopped_early``.
    """
    starts_arr = np.asarray(starts, dtype=np.float64)
    n_atoms = len(np.asarray(species))
    if starts_arr.ndim == 2:
        starts_arr = starts_arr[None]
    if starts_arr.ndim != 3 or starts_arr.shape[1:] != (n_atoms, 3):
        raise ValueError(f"starts must be ({n_atoms}, 3) or (n_chains, {n_atoms}, 3), got {starts_arr.shape}")
    temps = [config.temperature] if temperatures is None else [float(t) for t in temperatures]
    n_chains = max(len(temps), len(starts_arr))
    if len(temps) not in (1, n_chains) or len(starts_arr) not in (1, n_chains):
        raise ValueError(f"{len(temps)} temperatures and {len(starts_arr)} starts: give one of each per chain "
                         "or a single one to share")
    temps = temps * n_chains if len(temps) == 1 else temps
    starts_list = [starts_arr[0]] * n_chains if len(starts_arr) == 1 else list(starts_arr)
    seeds = np.random.SeedSequence(seed).spawn(n_chains)

    def one(c: int) -> ChainResult:
        ff = ForceField(potential, species, cell, pbc, skin=config.skin)
        sampler = HMCSampler(ff, replace(config, temperature=temps[c]), masses)
        return run_chain(sampler, starts_list[c], n_samples, seeds[c], monitor, stop_above)

    if n_workers > 1 and n_chains > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(one, range(n_chains)))
    else:
        results = [one(c) for c in range(n_chains)]
    return chains_to_dataset(results, temps, config, potential, species, cell, pbc, seed)


def chains_to_dataset(results: list[ChainResult], temps, config: HMCConfig, potential: Potential,
                      species, cell, pbc, seed) -> xr.Dataset:
    """Pack chain results into one Dataset (frames padded with NaN where a chain stopped early)."""
    units = get_units(config.units)
    n_frames = max(len(r.frames) for r in results)
    n_atoms = len(species)
    pos = np.full((len(results), n_frames, n_atoms, 3), np.nan)
    fs = np.full((len(results), n_frames), -1, np.int32)
    mon = np.full((len(results), n_frames), np.nan)
    for c, r in enumerate(results):
        pos[c, : len(r.frames)] = r.frames
        fs[c, : len(r.frames)] = r.frame_sample
        mon[c, : len(r.frames)] = r.monitor

    def per_sample(name):
        return (("chain", "sample"), np.stack([getattr(r, name) for r in results]))

    ds = xr.Dataset(
        {
            "potential_energy": per_sample("potential_energy"),
            "kinetic_energy": per_sample("kinetic_energy"),
            "delta_H": per_sample("delta_h"),
            "accepted": per_sample("accepted"),
            "accept_prob": per_sample("accept_prob"),
            "n_steps": per_sample("n_steps"),
            "dt": per_sample("dt"),
            "pressure": per_sample("pressure"),
            "positions": (("chain", "frame", "atom", "xyz"), pos),
            "frame_sample": (("chain", "frame"), fs),
            "monitor": (("chain", "frame"), mon),
            "species": (("atom",), np.asarray(species, np.int32)),
            "cell": (("cell_vector", "xyz"), np.zeros((3, 3)) if cell is None else np.asarray(cell, float)),
            "pbc": (("xyz",), np.asarray(pbc, dtype=np.int8)),
            "temperature": (("chain",), np.asarray(temps, float)),
            "acceptance_rate": (("chain",), np.array([r.accepted.mean() for r in results])),
            "final_dt": (("chain",), np.array([r.final_dt / units.time_to_internal for r in results])),
            "force_evaluations": (("chain",), np.array([r.force_evaluations for r in results])),
            "stopped_early": (("chain",), np.array([r.stopped_early for r in results], np.int8)),
        },
        coords={"xyz": ["x", "y", "z"]},
    )
    for name, unit in (("potential_energy", units.energy), ("kinetic_energy", units.energy),
                       ("delta_H", units.energy), ("positions", units.length), ("dt", units.time),
                       ("pressure", f"{units.energy}/{units.length}³"), ("temperature", units.temperature),
                       ("final_dt", units.time), ("cell", units.length)):
        ds[name].attrs["units"] = unit
    attrs = {f"hmc_{k}": (int(v) if isinstance(v, bool) else v) for k, v in asdict(config).items()}
    attrs.update({f"potential_{k}": v for k, v in potential.describe().items()})
    attrs.update({"seed": int(seed), "schema": "pesflow.hmc_samples/1"})
    ds.attrs.update(attrs)
    return ds


def samples_to_configurations(ds: xr.Dataset) -> xr.Dataset:
    """Saved frames of an HMC run as a configurations dataset (one config per chain × frame)."""
    pos, chain, frame = [], [], []
    for c in range(ds.sizes["chain"]):
        for f in range(ds.sizes["frame"]):
            if ds["frame_sample"].values[c, f] >= 0:
                pos.append(ds["positions"].values[c, f])
                chain.append(c)
                frame.append(f)
    n = len(pos)
    out = make_configurations(pos, [ds["species"].values] * n, [ds["cell"].values] * n,
                              [np.asarray(ds["pbc"].values, bool)] * n, attrs={"source": "hmc"})
    out["chain"] = ("config", np.array(chain, np.int32))
    out["frame"] = ("config", np.array(frame, np.int32))
    out["monitor"] = ("config", ds["monitor"].values[chain, frame] if n else np.zeros(0))
    return out
