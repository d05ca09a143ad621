"""Isothermal–isobaric (NPT) Hybrid Monte Carlo: HMC moves of the atoms plus Monte Carlo cell moves.

One NPT sweep = one HMC trajectory at fixed cell (:class:`hmc_core.hmc.HMCSampler`) followed by
``volume_moves`` Metropolis moves of the cell. Positions move with the cell (fractional coordinates
fixed). A move proposes ``ln V' = ln V + δ u``, u ~ U(−1, 1), and is accepted with

    min(1, exp(−β [U(s, V') − U(s, V) + P (V' − V)] + (N + 1) ln(V'/V)))

the N·ln V Jacobian of scaled coordinates plus one for the ln V measure (Frenkel & Smit,
*Understanding Molecular Simulation*, 2nd ed., §5.4; Eppenga & Frenkel 1984). The stationary volume
density is V^N exp(−βPV), so an ideal gas has ⟨V⟩ = (N + 1) k_B T / P exactly.

Modes: ``isotropic`` scales the whole cell; ``anisotropic`` scales one random lattice vector k by
V'/V (the same acceptance rule holds: V ∝ |a_k| at fixed other vectors), which lets an orthorhombic
or hexagonal cell relax its aspect ratios — needed for hcp and for a crystal under a non-cubic strain;
``z`` scales only the third lattice vector (same rule, k = 3 always): the box length normal to a
solid–liquid interface in the xy plane relaxes while the crystal's lateral lattice stays as built
(two-phase coexistence runs, :func:`hmc_core.phase.run_coexistence`).

Units: ``HMCConfig.units`` "lj" (P* = Pσ³/ε) or "metal" (pressure in bar or GPa at the edge,
eV/Å³ inside, see :mod:`hmc_core.units`). Potentials must be periodic in all three directions and
should include the tail correction when truncated (its energy depends on V). A truncated but unshifted
pair energy is sampled exactly, but each pair crossing r_c during a trajectory is an energy jump the
forces do not see: in crystals with a neighbour shell near r_c this ruins acceptance; prefer an energy
shifted to zero at r_c for HMC (``LennardJones(shift=True, tail=True)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import xarray as xr

from hmc_core.hmc import DualAveraging, HMCConfig, HMCSampler, HMCState
from hmc_core.order import compute_order
from hmc_core.potentials.base import ForceField, Potential
from hmc_core.units import EV_PER_ANGSTROM3_IN_BAR, EV_PER_ANGSTROM3_IN_GPA, get_units

PRESSURE_UNITS = {"lj": {"P*": 1.0}, "metal": {"bar": 1.0 / EV_PER_ANGSTROM3_IN_BAR,
                                              "GPa": 1.0 / EV_PER_ANGSTROM3_IN_GPA,
                                              "eV/Å^3": 1.0}}
VOLUME_MODES = ("isotropic", "anisotropic", "z")


@dataclass(frozen=True)
class NPTConfig:
    """Settings of the cell moves (validated on construction).

    pressure: in ``pressure_unit`` ("P*" for lj; "bar" (default), "GPa" or "eV/Å^3" for metal).
    volume_moves: cell moves after each HMC trajectory. max_log_volume: δ, half-width of the
    uniform proposal in ln V (adapted during warm-up to ``target_volume_accept`` when
    ``adapt_volume``). mode: "isotropic", "anisotropic" or "z" (third lattice vector only).
    allow_negative_pressure: a negative P is accepted only when asked for (a stretched liquid or solid
    is metastable; the box may run away).
    """

    pressure: float
    pressure_unit: str | None = None
    volume_moves: int = 1
    max_log_volume: float = 0.01
    mode: str = "isotropic"
    adapt_volume: bool = True
    target_volume_accept: float = 0.4
    allow_negative_pressure: bool = False

    def __post_init__(self):
        if self.mode not in VOLUME_MODES:
            raise ValueError(f"NPTConfig.mode = {self.mode!r}; choose one of {VOLUME_MODES}")
        if not np.isfinite(self.pressure):
            raise ValueError(f"NPTConfig.pressure = {self.pressure!r} must be a finite number")
        if self.pressure < 0 and not self.allow_negative_pressure:
            raise ValueError(f"NPTConfig.pressure = {self.pressure} is negative; a stretched system is "
                             "metastable and its box can grow without bound. Pass allow_negative_pressure=True "
                             "(CLI: --allow-negative-pressure) if you mean it")
        checks = [(self.volume_moves >= 0, "volume_moves", "must be ≥ 0"),
                  (0 < self.max_log_volume < 1, "max_log_volume", "must be in (0, 1)"),
                  (0 < self.target_volume_accept < 1, "target_volume_accept", "must be in (0, 1)")]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"NPTConfig.{name} = {getattr(self, name)!r} {why}")

    def pressure_internal(self, units: str) -> float:
        """Pressure in energy/length³ of the unit system (ε/σ³ or eV/Å³)."""
        name = get_units(units).name
        table = PRESSURE_UNITS[name]
        unit = self.pressure_unit or ("P*" if name == "lj" else "bar")
        if unit not in table:
            raise ValueError(f"pressure unit {unit!r} does not fit {name!r} units; choose one of {sorted(table)}")
        return self.pressure * table[unit]


@dataclass
class NPTState:
    """An HMC state plus the cell and the volume-move bookkeeping."""

    hmc: HMCState
    cell: np.ndarray
    max_log_volume: float
    n_volume_moves: int = 0
    n_volume_accepted: int = 0
    window_moves: int = 0
    window_accepted: int = 0

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))


class NPTSampler:
    """NPT HMC on one system: ``init``, then ``step`` (one sweep) or :func:`run_npt_chain`.

    ``forcefield`` must be periodic in x, y and z; ``config`` holds temperature, dt and the HMC settings,
    ``npt`` the pressure and cell moves. The atoms are moved by an :class:`HMCSampler` (built here).
    """

    def __init__(self, forcefield: ForceField, config: HMCConfig, npt: NPTConfig, masses=None):
        if not forcefield.pbc.all():
            raise ValueError("NPT sampling needs a cell periodic in all three directions (pbc = True, True, True)")
        if not forcefield.volume > 0:
            raise ValueError("NPT sampling needs a non-degenerate cell (its volume is zero)")
        self.ff = forcefield
        self.config = config
        self.npt = npt
        self.hmc = HMCSampler(forcefield, config, masses)
        self.pressure = npt.pressure_internal(config.units)

    def init(self, positions, seed: int | np.random.SeedSequence | None = 0) -> NPTState:
        hmc_state = self.hmc.init(positions, seed)
        return NPTState(hmc_state, self.ff.cell.copy(), self.npt.max_log_volume)

    def volume_move(self, state: NPTState) -> bool:
        """One Metropolis cell move (in place); returns whether it was accepted."""
        hs, ff = state.hmc, self.ff
        rng = hs.rng
        n = ff.n_atoms
        cell0 = state.cell
        v0 = abs(np.linalg.det(cell0))
        d = state.max_log_volume * rng.uniform(-1.0, 1.0)
        cell1 = cell0.copy()
        if self.npt.mode == "isotropic":
            cell1 *= math.exp(d / 3.0)
        elif self.npt.mode == "z":
            cell1[2] *= math.exp(d)
        else:
            cell1[int(rng.integers(3))] *= math.exp(d)
        v1 = v0 * math.exp(d)
        frac = hs.positions @ np.linalg.inv(cell0)
        x1 = frac @ cell1
        snapshot = ff.nlist.snapshot()
        ff.set_cell(cell1)
        with np.errstate(all="ignore"):
            e1, f1 = ff.energy_forces(x1)
        log_acc = -(e1 - hs.energy + self.pressure * (v1 - v0)) / self.config.kT + (n + 1) * d
        accepted = bool(np.isfinite(log_acc) and math.log(max(rng.uniform(), 1e-300)) < min(0.0, log_acc))
        state.n_volume_moves += 1
        state.window_moves += 1
        if accepted:
            hs.positions, hs.energy, hs.forces, hs.virial = x1, e1, f1, ff.virial.copy()
            state.cell = cell1
            state.n_volume_accepted += 1
            state.window_accepted += 1
        else:
            ff.set_cell(cell0)
            ff.nlist.restore(snapshot)
        return accepted

    def step(self, state: NPTState, adapt: bool = False):
        """One sweep: an HMC trajectory at fixed cell, then the cell moves. Returns the HMC TrajectoryInfo."""
        info = self.hmc.step(state.hmc, adapt=adapt)
        for _ in range(self.npt.volume_moves):
            self.volume_move(state)
        if adapt and self.npt.adapt_volume and state.window_moves >= 10:
            rate = state.window_accepted / state.window_moves
            factor = 1.15 if rate > self.npt.target_volume_accept else 1 / 1.15
            state.max_log_volume = float(np.clip(state.max_log_volume * factor, 1e-5, 0.5))
            state.window_moves = state.window_accepted = 0
        return info

    def warmup(self, state: NPTState) -> None:
        """Warm-up sweeps (dt and δ adapted), then both are frozen."""
        for _ in range(self.config.n_warmup):
            self.step(state, adapt=True)
        self.hmc.finish_warmup(state.hmc)
        state.n_volume_moves = state.n_volume_accepted = 0


Analysis = Callable[[np.ndarray, np.ndarray], dict]
#: ``monitor(positions (N, 3), cell (3, 3)) -> float`` on each saved frame, e.g. an extrapolation grade
Monitor = Callable[[np.ndarray, np.ndarray], float]


@dataclass
class NPTChainResult:
    """Arrays of one production NPT chain: per sample (NaN after an early stop) and per saved frame.

    Per sample (n_samples,): ``potential_energy``, ``kinetic_energy`` (at the trajectory's start),
    ``delta_h`` (energy units), ``volume`` (length³), ``pressure_virial`` (energy/length³), ``accepted``,
    ``accept_prob``, ``n_steps``, ``dt`` (fs or τ). Per frame: ``frames`` (n_frames, N, 3), ``frame_cells``
    (n_frames, 3, 3), ``frame_sample``, ``monitor`` (NaN without a monitor), ``analysis``.
    """

    potential_energy: np.ndarray
    volume: np.ndarray
    pressure_virial: np.ndarray
    accepted: np.ndarray
    frames: np.ndarray
    frame_cells: np.ndarray
    frame_sample: np.ndarray
    analysis: dict
    volume_acceptance: float
    hmc_acceptance: float
    final_dt: float
    max_log_volume: float
    kinetic_energy: np.ndarray
    delta_h: np.ndarray
    accept_prob: np.ndarray
    n_steps: np.ndarray
    dt: np.ndarray
    monitor: np.ndarray
    force_evaluations: int
    stopped_early: bool
    state: NPTState = field(repr=False)


def run_npt_chain(sampler: NPTSampler, positions, n_samples: int, seed=0, save_every: int | None = None,
                  analyse: Analysis | None = None, state: NPTState | None = None,
                  warmup: bool = True, monitor: Monitor | None = None,
                  stop_above: float = np.inf) -> NPTChainResult:
    """Warm up (unless ``warmup=False``), then run ``n_samples`` NPT sweeps.

    ``analyse(positions, cell) -> dict of floats`` runs on each saved frame (every ``save_every``
    sweeps, default ``config.save_every``) and is stored per frame. ``monitor(positions, cell) -> float``
    too (e.g. an extrapolation grade at the frame's own cell); the chain stops after the first frame whose
    value exceeds ``stop_above`` (the per-sample arrays stay NaN after it). Pass ``state`` to continue a
    chain (e.g. along a temperature ladder); ``positions`` and ``seed`` are then ignored.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
    every = save_every or sampler.config.save_every
    if state is None:
        state = sampler.init(positions, seed)
    else:
        sampler.ff.set_cell(state.cell)
        state.hmc.energy, state.hmc.forces = sampler.ff.energy_forces(state.hmc.positions)
        state.hmc.virial = sampler.ff.virial.copy()
        if warmup and sampler.config.adapt_step_size and sampler.config.n_warmup > 0:
            log_dt = math.log(state.hmc.dt)
            state.hmc.adaptation = DualAveraging(log_dt=log_dt, mu=log_dt + math.log(10.0), log_dt_bar=log_dt)
    if warmup:
        sampler.warmup(state)
    n0_traj, n0_acc = state.hmc.n_trajectories, state.hmc.n_accepted
    nv0, nva0 = state.n_volume_moves, state.n_volume_accepted
    rec = {k: np.full(n_samples, np.nan) for k in
           ("potential_energy", "volume", "pressure_virial", "kinetic_energy", "delta_h", "accept_prob", "dt")}
    acc = np.zeros(n_samples, np.int8)
    n_steps = np.zeros(n_samples, np.int32)
    frames, cells, fs, rows, mon = [], [], [], [], []
    kT = sampler.config.kT
    n = sampler.ff.n_atoms
    to_internal = get_units(sampler.config.units).time_to_internal
    n_eval0 = sampler.ff.n_evaluations
    stopped = False
    for s in range(n_samples):
        info = sampler.step(state)
        rec["potential_energy"][s] = state.hmc.energy
        rec["volume"][s] = state.volume
        rec["pressure_virial"][s] = (n * kT + np.trace(state.hmc.virial) / 3.0) / state.volume
        rec["kinetic_energy"][s] = info.kinetic
        rec["delta_h"][s] = info.delta_h
        rec["accept_prob"][s] = info.accept_prob
        rec["dt"][s] = info.dt / to_internal
        acc[s] = info.accepted
        n_steps[s] = info.n_steps
        if s % every == every - 1 or s == n_samples - 1:
            frames.append(state.hmc.positions.copy())
            cells.append(state.cell.copy())
            fs.append(s)
            rows.append(analyse(state.hmc.positions, state.cell) if analyse is not None else {})
            mon.append(monitor(state.hmc.positions, state.cell) if monitor is not None else np.nan)
            stopped = bool(mon[-1] > stop_above)
        if stopped:
            break
    keys = sorted({k for r in rows for k in r})
    analysis = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in keys}
    n_traj = state.hmc.n_trajectories - n0_traj
    n_vol = state.n_volume_moves - nv0
    return NPTChainResult(
        accepted=acc, frames=np.array(frames), frame_cells=np.array(cells), frame_sample=np.array(fs, np.int32),
        analysis=analysis, volume_acceptance=(state.n_volume_accepted - nva0) / n_vol if n_vol else float("nan"),
        hmc_acceptance=(state.hmc.n_accepted - n0_acc) / max(n_traj, 1), final_dt=state.hmc.dt / to_internal,
        max_log_volume=state.max_log_volume, n_steps=n_steps, monitor=np.array(mon, float),
        force_evaluations=sampler.ff.n_evaluations - n_eval0, stopped_early=stopped, state=state, **rec)


def run_npt_chains(potential: Potential, species, starts, cell, config: HMCConfig, npt: NPTConfig,
                   n_samples: int, temperatures: Sequence[float] | None = None, masses=None, seed: int = 0,
                   n_workers: int = 1, analyse: Analysis | None = None) -> xr.Dataset:
    """Independent NPT chains (one per temperature and/or start) → xarray Dataset.

    ``starts``: (N, 3) positions or (n_chains, N, 3); ``cell`` (3, 3) starting cell, periodic.
    Chains run in threads when ``n_workers > 1`` (the Numba kernels release the GIL).
    Variables: per (chain, sample) ``potential_energy``, ``volume``, ``density`` (N/V), ``enthalpy``
    (U + PV + 3/2 N k_B T), ``pressure_virial``, ``accepted``; per (chain, frame) ``positions``,
    ``cell``, ``frame_sample`` and one variable per ``analyse`` key; per chain ``temperature``,
    ``acceptance_rate``, ``volume_acceptance``, ``final_dt``, ``max_log_volume``.
    """
    starts_arr = np.asarray(starts, dtype=np.float64)
    if starts_arr.ndim == 2:
        starts_arr = starts_arr[None]
    n_atoms = len(np.asarray(species))
    if starts_arr.shape[1:] != (n_atoms, 3):
        raise ValueError(f"starts must be ({n_atoms}, 3) or (n_chains, {n_atoms}, 3), got {starts_arr.shape}")
    temps = [config.temperature] if temperatures is None else [float(t) for t in temperatures]
    n_chains = max(len(temps), len(starts_arr))
    if len(temps) not in (1, n_chains) or len(starts_arr) not in (1, n_chains):
        raise ValueError(f"{len(temps)} temperatures and {len(starts_arr)} starts: give one per chain or one to share")
    temps = temps * n_chains if len(temps) == 1 else temps
    seeds = np.random.SeedSequence(seed).spawn(n_chains)

    def one(c: int) -> NPTChainResult:
        ff = ForceField(potential, species, cell, (True, True, True), skin=config.skin)
        sampler = NPTSampler(ff, replace(config, temperature=temps[c]), npt, masses)
        return run_npt_chain(sampler, starts_arr[c % len(starts_arr)], n_samples, seeds[c], analyse=analyse)

    if n_workers > 1 and n_chains > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(one, range(n_chains)))
    else:
        results = [one(c) for c in range(n_chains)]
    return npt_chains_to_dataset(results, temps, config, npt, potential, species, seed)


def npt_chains_to_dataset(results: list[NPTChainResult], temps, config: HMCConfig, npt: NPTConfig,
                          potential: Potential, species, seed=0) -> xr.Dataset:
    """Pack NPT chain results into one Dataset (see :func:`run_npt_chains`)."""
    units = get_units(config.units)
    n_atoms = len(species)
    p_int = npt.pressure_internal(config.units)

    def stack(name):
        return np.stack([getattr(r, name) for r in results])

    u, vol = stack("potential_energy"), stack("volume")
    kT = units.kB * np.asarray(temps, float)[:, None]
    data = {
        "potential_energy": (("chain", "sample"), u),
        "volume": (("chain", "sample"), vol),
        "density": (("chain", "sample"), n_atoms / vol),
        "enthalpy": (("chain", "sample"), u + p_int * vol + 1.5 * n_atoms * kT),
        "pressure_virial": (("chain", "sample"), stack("pressure_virial")),
        "accepted": (("chain", "sample"), stack("accepted")),
        "positions": (("chain", "frame", "atom", "xyz"), stack("frames")),
        "cell": (("chain", "frame", "cell_vector", "xyz"), stack("frame_cells")),
        "frame_sample": (("chain", "frame"), stack("frame_sample")),
        "species": (("atom",), np.asarray(species, np.int32)),
        "temperature": (("chain",), np.asarray(temps, float)),
        "acceptance_rate": (("chain",), np.array([r.hmc_acceptance for r in results])),
        "volume_acceptance": (("chain",), np.array([r.volume_acceptance for r in results])),
        "final_dt": (("chain",), np.array([r.final_dt for r in results])),
        "max_log_volume": (("chain",), np.array([r.max_log_volume for r in results])),
    }
    for key in results[0].analysis:
        data[key] = (("chain", "frame"), np.stack([r.analysis[key] for r in results]))
    ds = xr.Dataset(data, coords={"xyz": ["x", "y", "z"]})
    for name, unit in (("potential_energy", units.energy), ("enthalpy", units.energy),
                       ("volume", f"{units.length}³"), ("density", f"1/{units.length}³"),
                       ("pressure_virial", f"{units.energy}/{units.length}³"), ("positions", units.length),
                       ("cell", units.length), ("temperature", units.temperature), ("final_dt", units.time)):
        ds[name].attrs["units"] = unit
    ds.attrs.update({f"hmc_{k}": (int(v) if isinstance(v, bool) else v) for k, v in asdict(config).items()})
    ds.attrs.update({f"npt_{k}": (int(v) if isinstance(v, bool) else ("" if v is None else v))
                     for k, v in asdict(npt).items()})
    ds.attrs.update({f"potential_{k}": v for k, v in potential.describe().items()})
    ds.attrs.update({"pressure_internal": p_int, "seed": int(seed), "schema": "pesflow.npt_samples/1"})
    return ds


# Liquid criteria of :func:`check_liquid` (fractions of atoms), measured with the LJ 3σ+tail model, N = 500:
# the liquid NPT runs at T* = 0.85 and 0.9 (NIST pressures of ρ* = 0.82 and 0.86, started from a melt) have
# solid-like and a-CNA fcc/hcp/bcc fractions ≤ 0.002 in every frame, the T* = 2 melt ≤ 0.03; fcc superheated
# in NPT at the same (T*, P*) has solid-like fractions 0.87–0.99 and a-CNA crystal fractions 0.18–0.50 (thermal
# displacements hide part of the a-CNA order). 0.1 separates the two on both measures with a wide margin.
LIQUID_MAX_SOLID_FRACTION = 0.1
LIQUID_MAX_CRYSTAL_FRACTION = 0.1


def liquid_order(positions, cell) -> dict:
    """Order-parameter summary of one periodic frame, usable as ``analyse`` of :func:`run_npt_chain` /
    :func:`run_npt_chains`: the keys of :meth:`hmc_core.order.OrderParameters.summary` (mean q4, q6,
    ``solid_fraction`` of ten Wolde–Frenkel solid-like atoms, ``largest_cluster``, a-CNA ``fraction_*``)
    plus ``crystal_fraction`` = a-CNA fcc + hcp + bcc. Positions (N, 3) and cell (3, 3) in one length unit
    (Å or σ); the first-shell cutoff follows from N/V (:func:`hmc_core.order.shell_cutoff`).
    """
    summary = compute_order(positions, cell).summary()
    summary["crystal_fraction"] = sum(summary[f"fraction_{name}"] for name in ("fcc", "hcp", "bcc"))
    return summary


def check_liquid(summary: dict, where: str, max_solid_fraction: float = LIQUID_MAX_SOLID_FRACTION,
                 max_crystal_fraction: float = LIQUID_MAX_CRYSTAL_FRACTION) -> None:
    """Raise RuntimeError unless a frame summary of :func:`liquid_order` is liquid-like.

    Liquid: fewer than ``max_solid_fraction`` of the atoms solid-like (q6 bonds, ten Wolde et al. 1996)
    and fewer than ``max_crystal_fraction`` in an fcc/hcp/bcc a-CNA environment. ``where`` names the
    frame in the message (e.g. "after melting at T* = 2").
    """
    solid, crystal = summary["solid_fraction"], summary["crystal_fraction"]
    if solid >= max_solid_fraction or crystal >= max_crystal_fraction:
        raise RuntimeError(
            f"{where}: the system is not liquid (solid-like fraction {solid:.3f}, limit {max_solid_fraction}; "
            f"fcc/hcp/bcc fraction {crystal:.3f}, limit {max_crystal_fraction}; largest solid cluster "
            f"{summary['largest_cluster']:.0f} atoms). Melt longer or hotter (more sweeps or a higher melt "
            "temperature), or start from a liquid configuration")


def melt(potential: Potential, species, positions, cell, config: HMCConfig, melt_temperature: float,
         n_sweeps: int = 200, seed: int | np.random.SeedSequence = 0, masses=None) -> np.ndarray:
    """Melt a start structure at fixed cell and return liquid positions (N, 3) for an NPT liquid run.

    A perfect periodic crystal superheats: started from fcc at the NIST liquid pressures of
    (T*, ρ*) = (0.85, 0.82) and (0.9, 0.86), NPT HMC (500 atoms, 4000 sweeps) never melted and returned the
    crystal's density (0.938, 0.966). Here ``n_sweeps`` HMC trajectories run at ``melt_temperature``
    (K or T*, as ``config.units``; choose it well above the melting line at the start density, e.g.
    T* = 2 for ρ* ≤ 0.9) with the cell of ``cell`` held fixed and dt adapted throughout (dual averaging
    to ``config.target_accept``); the last frame must pass :func:`check_liquid`, else RuntimeError.
    The hot liquid is then the start of :func:`run_npt_chains` at the target temperature, whose warm-up
    re-adapts dt and relaxes the volume. Positions and cell in the length unit of ``config.units``.
    """
    if n_sweeps < 1:
        raise ValueError(f"n_sweeps must be ≥ 1, got {n_sweeps}")
    if not melt_temperature > 0:
        raise ValueError(f"melt_temperature must be > 0, got {melt_temperature}")
    ff = ForceField(potential, species, cell, (True, True, True), skin=config.skin)
    hot = replace(config, temperature=float(melt_temperature), n_warmup=n_sweeps, adapt_step_size=True)
    sampler = HMCSampler(ff, hot, masses)
    state = sampler.init(positions, seed)
    for _ in range(n_sweeps):
        sampler.step(state, adapt=True)
    x = state.positions.copy()
    check_liquid(liquid_order(x, cell), f"after {n_sweeps} HMC sweeps at T = {melt_temperature:g} (fixed cell)")
    return x


def block_standard_error(x: np.ndarray, n_blocks: int = 10) -> float:
    """Standard error of the mean of a correlated series by block averaging."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2 * n_blocks:
        return float(np.std(x, ddof=1) / np.sqrt(max(len(x) - 1, 1))) if len(x) > 1 else float("nan")
    means = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return float(means.std(ddof=1) / np.sqrt(n_blocks))
