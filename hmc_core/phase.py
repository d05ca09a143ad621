"""Phase-transition studies with NPT HMC: lattices, defects, crystal seeds, heating/cooling ladders,
seeded crystallisation, and the melting-temperature bracket from hysteresis.

Everything works in the potential's units: reduced LJ (T*, P*, ρ*) or metal (K, bar, Å) for the
built-in rare gases (:func:`make_system`). Study functions return xarray Datasets; the Prefect
flows in ``flows/phase.py`` only wire them together.

Melting bracket: a crystal that melts on heating at T₊ proves T_m < T₊ (superheating only raises
T₊); a liquid that crystallises on cooling at T₋ proves T_m > T₋. The hysteresis estimate
T_m ≈ T₊ + T₋ − √(T₊ T₋) is from Luo, Strachan & Swift, JCP 120, 11640 (2004).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from hmc_core.hmc import HMCConfig
from hmc_core.npt import NPTConfig, NPTSampler, block_standard_error, run_npt_chain
from hmc_core.order import STRUCTURES, compute_order, shell_cutoff
from hmc_core.potentials.base import ForceField, Potential
from hmc_core.potentials.lennard_jones import RARE_GAS, LennardJones
from hmc_core.units import get_units

SEED_STRUCTURES = ("fcc", "hcp", "bcc", "ico")


@dataclass(frozen=True)
class PhaseSystem:
    """A one-component system: ``element`` "LJ" (reduced units) or a rare gas "Ne", "Ar", "Kr", "Xe"
    (metal units, ε and σ from :data:`hmc_core.potentials.lennard_jones.RARE_GAS`).

    cutoff_sigma: LJ cutoff in σ. The pair energy is shifted to zero at the cutoff and the analytic tail
    correction is added: HMC trajectories then see a continuous energy. With a truncated but unshifted
    energy, every pair crossing r_c is an energy jump u(r_c) that the forces ignore; in a crystal whose
    seventh fcc shell sits at 2.97σ (ρσ³ = 1) this gave ΔH ≈ 25 ε per trajectory, collapsed the adapted
    step size and "glued" that shell inside r_c, keeping a 500-atom crystal solid at T* = 1.54, P* = 1.
    The shift leaves forces and the virial unchanged; the tail correction includes the mean-field value of
    the shift (:mod:`hmc_core.potentials.lennard_jones`), so the sampled pressure is that of the full
    potential to the accuracy of the tail correction (checked against JZG in tests/test_npt.py).
    """

    element: str = "LJ"
    cutoff_sigma: float = 3.0

    def __post_init__(self):
        if self.element != "LJ" and self.element not in RARE_GAS:
            raise ValueError(f"unknown element {self.element!r}; choose LJ (reduced units) or one of "
                             f"{', '.join(RARE_GAS)} (built-in Lennard-Jones parameters)")
        if not self.cutoff_sigma >= 2.0:
            raise ValueError(f"cutoff_sigma = {self.cutoff_sigma} is too short for phase studies; use ≥ 2.5")

    @property
    def units(self) -> str:
        return "lj" if self.element == "LJ" else "metal"

    @property
    def species_label(self) -> int:
        return 1 if self.element == "LJ" else RARE_GAS[self.element][0]

    @property
    def sigma(self) -> float:
        """σ in length units (1 or Å)."""
        return 1.0 if self.element == "LJ" else RARE_GAS[self.element][2]

    @property
    def epsilon_over_kB(self) -> float:
        """ε / k_B in temperature units (1 or K)."""
        return 1.0 if self.element == "LJ" else RARE_GAS[self.element][1]

    def potential(self) -> Potential:
        if self.element == "LJ":
            return LennardJones(cutoff_sigma=self.cutoff_sigma, shift=True, tail=True)
        return LennardJones.rare_gas(self.element, cutoff_sigma=self.cutoff_sigma, shift=True, tail=True)

    def reduced_pressure_to_user(self, p_star: float) -> float:
        """P* → the user's pressure unit (P* itself, or bar)."""
        if self.element == "LJ":
            return p_star
        eps = self.epsilon_over_kB * get_units("metal").kB
        return p_star * eps / self.sigma**3 / get_units("metal").pressure_to_internal


def lattice(structure: str, n_cells: int | Sequence[int], density: float) -> tuple[np.ndarray, np.ndarray]:
    """Perfect crystal: positions (N, 3) and cell (3, 3) at number density ``density`` (1/length³).

    fcc and bcc: cubic cells (4 and 2 atoms per cell); hcp: orthohexagonal cells (4 atoms, ideal c/a).
    """
    reps = np.broadcast_to(np.asarray(n_cells, int), (3,))
    if np.any(reps < 1):
        raise ValueError(f"n_cells must be ≥ 1, got {n_cells}")
    if not density > 0:
        raise ValueError(f"density must be > 0, got {density}")
    if structure == "fcc":
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        shape = np.ones(3)
    elif structure == "bcc":
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
        shape = np.ones(3)
    elif structure == "hcp":
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 1 / 6, 0.5], [0, 2 / 3, 0.5]])
        shape = np.array([1.0, math.sqrt(3.0), math.sqrt(8.0 / 3.0)])
    else:
        raise ValueError(f"unknown lattice {structure!r}; choose fcc, hcp or bcc")
    per_cell = len(basis)
    a = (per_cell / (density * shape.prod())) ** (1.0 / 3.0)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    frac = (grid[:, None, :] + basis[None]).reshape(-1, 3)
    return frac * shape * a, np.diag(reps * shape * a)


def icosahedron(n_shells: int, nn_distance: float) -> np.ndarray:
    """Mackay icosahedron with ``n_shells`` shells (1, 13, 55, 147, …), centred at 0, nearest-neighbour
    distance ``nn_distance`` between shells."""
    phi = 0.5 * (1 + math.sqrt(5.0))
    verts = []
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            verts += [(0, s1, s2 * phi), (s1, s2 * phi, 0), (s2 * phi, 0, s1)]
    verts = np.array(verts, float)
    verts /= np.linalg.norm(verts[0])
    edges = [(i, j) for i in range(12) for j in range(i + 1, 12)
             if abs(np.linalg.norm(verts[i] - verts[j]) - np.linalg.norm(verts[0] - verts[1:], axis=1).min()) < 1e-9]
    faces = [(i, j, k) for i, j, k in ((a, b, c) for a in range(12) for b in range(a + 1, 12) for c in range(b + 1, 12))
             if (i, j) in edges and (j, k) in edges and (i, k) in edges]
    points = [np.zeros(3)]
    for s in range(1, n_shells):
        shell = [verts[i] * s for i in range(12)]
        for i, j in edges:
            shell += [verts[i] * s + (verts[j] - verts[i]) * s * t / s for t in range(1, s)]
        for i, j, k in faces:
            for a in range(1, s):
                for b in range(1, s - a):
                    shell.append(verts[i] * s + (verts[j] - verts[i]) * a + (verts[k] - verts[i]) * b)
        points += shell
    pts = np.array(points)
    # The shell radius r_s = s·R0 with vertex separation ≈ 1.0515 R0: scale so the separation is nn_distance.
    edge = np.linalg.norm(verts[0] - verts[1:], axis=1).min()
    return pts * nn_distance / edge


def crystal_seed(structure: str, n_atoms: int, density: float) -> np.ndarray:
    """The ``n_atoms`` lattice sites nearest a lattice site, centred at 0 (positions (n, 3), length units).

    ``density`` is the crystal's number density (it sets the nearest-neighbour distance; icosahedral
    seeds take the fcc nearest-neighbour distance at that density).
    """
    if structure not in SEED_STRUCTURES:
        raise ValueError(f"unknown seed structure {structure!r}; choose one of {', '.join(SEED_STRUCTURES)}")
    if n_atoms < 1:
        raise ValueError(f"the seed needs ≥ 1 atom, got {n_atoms}")
    if structure == "ico":
        shells = 1
        while (10 * shells**3 - 15 * shells**2 + 11 * shells - 3) // 3 < n_atoms:
            shells += 1
        pts = icosahedron(shells, (math.sqrt(2.0) / density) ** (1.0 / 3.0))
    else:
        reps = int(math.ceil((2 * n_atoms) ** (1.0 / 3.0) / 1.2)) + 2
        pos, cell = lattice(structure, reps, density)
        centre_site = pos[np.argmin(np.linalg.norm(pos - np.diag(cell) / 2, axis=1))]
        pts = pos - centre_site
    order = np.argsort(np.linalg.norm(pts, axis=1), kind="stable")
    return pts[order[:n_atoms]]


def add_defects(positions, cell, vacancy_fraction: float = 0.0, interstitial_fraction: float = 0.0,
                seed: int | np.random.Generator = 0) -> np.ndarray:
    """Remove a fraction of atoms at random (vacancies) and add a fraction at the emptiest of 64 random
    trial points each (interstitials). Returns the new positions (N', 3)."""
    for name, f in (("vacancy_fraction", vacancy_fraction), ("interstitial_fraction", interstitial_fraction)):
        if not 0 <= f < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {f}")
    rng = np.random.default_rng(seed)
    x = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    n = len(x)
    n_vac = int(round(vacancy_fraction * n))
    n_int = int(round(interstitial_fraction * n))
    keep = np.sort(rng.permutation(n)[n_vac:])
    x = x[keep]
    inv = np.linalg.inv(cell)
    for _ in range(n_int):
        trial = rng.uniform(size=(64, 3)) @ cell
        d = trial[:, None, :] - x[None, :, :]
        frac = d @ inv
        frac -= np.round(frac)
        dist = np.linalg.norm(frac @ cell, axis=2).min(axis=1)
        x = np.vstack([x, trial[np.argmax(dist)]])
    return x


def insert_seed(positions, cell, seed_positions, gap: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put a seed (centred at 0) at the centre of a periodic box, removing every atom closer than ``gap``
    to a seed atom (default 0.85 × the mean spacing (V/N)^(1/3)), so the liquid meets the seed without a void.

    Returns (positions (N', 3), is_seed (N',) bool). Raises ValueError when the seed does not fit.
    """
    x = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    seed = np.asarray(seed_positions, float)
    volume = abs(np.linalg.det(cell))
    heights = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    if gap is None:
        gap = 0.85 * (volume / len(x)) ** (1.0 / 3.0)
    radius = float(np.linalg.norm(seed, axis=1).max()) + gap
    if 2 * radius >= heights.min() - gap:
        raise ValueError(f"a seed of {len(seed)} atoms needs a box wider than {2 * radius + gap:.3g} (its diameter "
                         f"plus a liquid shell) but the box is {heights.min():.3g} across; use a smaller seed or "
                         "more atoms")
    centre = cell.sum(axis=0) / 2
    inv = np.linalg.inv(cell)
    placed = seed + centre
    keep = np.ones(len(x), bool)
    for k in range(0, len(x), 512):  # minimum-image distances to every seed atom, in blocks
        d = (x[k:k + 512, None, :] - placed[None, :, :]) @ inv
        d -= np.round(d)
        keep[k:k + 512] = np.linalg.norm(d @ cell, axis=2).min(axis=1) >= gap
    new = np.vstack([placed, x[keep]])
    is_seed = np.zeros(len(new), bool)
    is_seed[: len(seed)] = True
    return new, is_seed


class OrderAnalysis:
    """Per-frame analysis callable for :func:`hmc_core.npt.run_npt_chain`: order-parameter summary,
    plus the structure composition of the largest cluster and how many ``tracked`` atoms are solid."""

    def __init__(self, cutoff: float | None = None, tracked: np.ndarray | None = None):
        self.cutoff = cutoff
        self.tracked = tracked

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> dict:
        op = compute_order(positions, cell, cutoff=self.cutoff)
        out = op.summary()
        in_largest = op.cluster == 0
        n_largest = max(int(in_largest.sum()), 1)
        for k, name in enumerate(STRUCTURES):
            out[f"largest_{name}"] = float(np.sum(op.structure[in_largest] == k)) / n_largest
        if self.tracked is not None:
            out["seed_solid_fraction"] = float(op.solid[self.tracked].mean())
            out["seed_in_largest"] = float(in_largest[self.tracked].mean())
        return out


def _hmc_settings(system: PhaseSystem, dt: float | None, n_steps: int, n_warmup: int, temperature: float):
    if dt is None:
        dt = 0.005 if system.units == "lj" else 0.005 * _lj_time_in_fs(system)
    return HMCConfig(temperature=temperature, dt=dt, n_steps=n_steps, units=system.units, n_warmup=n_warmup,
                     target_accept=0.75, jitter_steps=0.2, skin=0.3 * system.sigma)


def _default_mass(system: PhaseSystem) -> float:
    """Atomic mass (amu) for metal units, 1 for reduced units."""
    if system.units == "lj":
        return 1.0
    from ase.data import atomic_masses

    return float(atomic_masses[system.species_label])


def _lj_time_in_fs(system: PhaseSystem) -> float:
    from ase.data import atomic_masses

    units = get_units("metal")
    eps = system.epsilon_over_kB * units.kB
    tau_internal = system.sigma * math.sqrt(atomic_masses[system.species_label] / eps)
    return tau_internal / units.time_to_internal


def run_ladder(system: PhaseSystem, positions, cell, temperatures: Sequence[float], pressure: float,
               n_samples: int = 200, n_warmup: int = 50, n_steps: int = 10, dt: float | None = None,
               analyse_every: int = 20, seed: int = 0, volume_mode: str = "isotropic",
               pressure_unit: str | None = None, allow_negative_pressure: bool = False) -> xr.Dataset:
    """Walk one NPT chain through ``temperatures`` in order (a heating or cooling ladder).

    At each temperature: ``n_warmup`` sweeps (dt and δ adapt), then ``n_samples`` production sweeps;
    order parameters every ``analyse_every`` sweeps. Temperatures in K or T*, pressure in bar or P*.
    Returns a Dataset over ``temperature`` with means and block standard errors of ``density``,
    ``enthalpy`` and ``potential_energy`` (per atom), ``solid_fraction``, ``largest_cluster``,
    structure fractions; traces ``density_trace`` (temperature, sample); the final configuration.
    """
    temps = [float(t) for t in temperatures]
    if not temps or min(temps) <= 0:
        raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {temperatures}")
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit, mode=volume_mode,
                    allow_negative_pressure=allow_negative_pressure)
    potential = system.potential()
    x = np.asarray(positions, float)
    n = len(x)
    species = np.full(n, system.species_label, np.int32)
    ff = ForceField(potential, species, cell, (True, True, True), skin=0.3 * system.sigma)
    analysis = OrderAnalysis()
    state, rows, traces = None, [], []
    for t in temps:
        cfg = _hmc_settings(system, dt, n_steps, n_warmup, t)
        sampler = NPTSampler(ff, cfg, npt)
        res = run_npt_chain(sampler, x, n_samples, seed=seed, save_every=analyse_every, analyse=analysis,
                            state=state)
        state = res.state
        p_int = sampler.pressure
        rho = n / res.volume
        h = (res.potential_energy + p_int * res.volume) / n + 1.5 * cfg.kT
        row = {"temperature": t, "density": rho.mean(), "density_se": block_standard_error(rho),
               "enthalpy": h.mean(), "enthalpy_se": block_standard_error(h),
               "potential_energy": res.potential_energy.mean() / n,
               "potential_energy_se": block_standard_error(res.potential_energy / n),
               "hmc_acceptance": res.hmc_acceptance, "volume_acceptance": res.volume_acceptance,
               "dt": res.final_dt}
        for key, values in res.analysis.items():
            row[key] = float(np.mean(values))
        row["solid_fraction_final"] = float(res.analysis["solid_fraction"][-1])
        rows.append(row)
        traces.append(rho)
    units = get_units(system.units)
    data = {key: ("temperature", np.array([r[key] for r in rows])) for key in rows[0] if key != "temperature"}
    data["density_trace"] = (("temperature", "sample"), np.array(traces))
    data["final_positions"] = (("atom", "xyz"), state.hmc.positions.copy())
    data["final_cell"] = (("cell_vector", "xyz"), state.cell.copy())
    ds = xr.Dataset(data, coords={"temperature": temps, "xyz": ["x", "y", "z"]})
    for name, unit in (("density", f"1/{units.length}³"), ("enthalpy", f"{units.energy}/atom"),
                       ("potential_energy", f"{units.energy}/atom")):
        ds[name].attrs["units"] = unit
    ds["temperature"].attrs["units"] = units.temperature
    ds.attrs.update({"element": system.element, "cutoff_sigma": system.cutoff_sigma, "units": system.units,
                     "pressure": pressure, "pressure_unit": npt.pressure_unit or ("P*" if system.units == "lj"
                                                                                    else "bar"),
                     "n_atoms": n, "n_samples": n_samples, "n_warmup": n_warmup, "seed": seed,
                     "schema": "pesflow.phase_ladder/1"})
    return ds


def melt(system: PhaseSystem, positions, cell, temperature: float, pressure: float, n_samples: int = 200,
         seed: int = 0, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Melt (or equilibrate) a configuration at one (T, P); returns its final positions and cell."""
    ds = run_ladder(system, positions, cell, [temperature], pressure, n_samples=n_samples, seed=seed, **kw)
    return ds["final_positions"].values, ds["final_cell"].values


def melting_bracket(heating: Sequence[xr.Dataset], cooling: Sequence[xr.Dataset], threshold: float = 0.5) -> dict:
    """Melting-temperature bracket from heating and cooling ladders (their ``solid_fraction_final``).

    T₊: lowest temperature at which a heated crystal ended below ``threshold`` solid (min over chains);
    T₋: highest temperature at which a cooled liquid ended above it (max over chains). Returns
    ``T_plus``, ``T_minus`` (NaN when not seen), ``bracket`` (T₋, T₊) and the Luo–Strachan–Swift
    estimate ``T_hysteresis`` = T₊ + T₋ − √(T₊ T₋).
    """
    def crossing(ds, melted: bool):
        t = ds["temperature"].values
        s = ds["solid_fraction_final"].values
        hit = (s < threshold) if melted else (s > threshold)
        return t[hit] if hit.any() else np.array([])

    plus = [crossing(ds, True) for ds in heating]
    minus = [crossing(ds, False) for ds in cooling]
    t_plus = min((float(v.min()) for v in plus if len(v)), default=float("nan"))
    t_minus = max((float(v.max()) for v in minus if len(v)), default=float("nan"))
    est = t_plus + t_minus - math.sqrt(t_plus * t_minus) if np.isfinite(t_plus + t_minus) else float("nan")
    return {"T_plus": t_plus, "T_minus": t_minus, "bracket": (t_minus, t_plus), "T_hysteresis": est}


def run_seeded(system: PhaseSystem, liquid_positions, cell, structure: str, n_seed: int, temperature: float,
               pressure: float, n_samples: int = 200, analyse_every: int = 5, seed_density: float | None = None,
               n_warmup: int = 20, n_steps: int = 10, dt: float | None = None, seed: int = 0,
               pressure_unit: str | None = None, n_hold: int = 0) -> xr.Dataset:
    """Insert a crystalline seed (fcc/hcp/bcc/ico, ``n_seed`` atoms) into a liquid and follow it by NPT HMC.

    ``seed_density``: the seed's number density (default 1.12 × the liquid's, ≈ ρ_s/ρ_l on the LJ
    melting line). ``n_hold``: sweeps with the seed atoms held in place (mass × 10¹⁰) while the liquid
    relaxes against it, before the followed run. Returns a Dataset over ``frame`` (``sweep``,
    ``largest_cluster``, ``solid_fraction``,
    ``seed_solid_fraction``, ``largest_fcc/hcp/bcc/ico/other`` composition, ``density``) with attrs
    ``outcome`` ("grew", "dissolved" or "undecided"), growth-mode statistics of the cluster-size
    increments, and the seed's initial and final composition.
    """
    x = np.asarray(liquid_positions, float)
    cell = np.asarray(cell, float)
    rho_liquid = len(x) / abs(np.linalg.det(cell))
    rho_seed = seed_density or 1.12 * rho_liquid
    seed_pos = crystal_seed(structure, n_seed, rho_seed)
    x, is_seed = insert_seed(x, cell, seed_pos)
    n = len(x)
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit)
    species = np.full(n, system.species_label, np.int32)
    ff = ForceField(system.potential(), species, cell, (True, True, True), skin=0.3 * system.sigma)
    cfg = _hmc_settings(system, dt, n_steps, n_warmup, temperature)
    cutoff = shell_cutoff(rho_liquid)
    analysis = OrderAnalysis(cutoff=cutoff, tracked=is_seed)
    state = None
    if n_hold > 0:
        masses = np.where(is_seed, 1e10, 1.0) * _default_mass(system)
        held = NPTSampler(ff, cfg, npt, masses=masses)
        state = run_npt_chain(held, x, n_hold, seed=seed + 1, save_every=n_hold).state
        x = state.hmc.positions
        cell = state.cell.copy()
    sampler = NPTSampler(ff, cfg, npt)
    initial = analysis(x, cell)
    res = run_npt_chain(sampler, x, n_samples, seed=seed, save_every=analyse_every, analyse=analysis, state=state)
    sweeps = np.concatenate([[-1], res.frame_sample]) + 1
    data = {key: ("frame", np.concatenate([[initial[key]], values])) for key, values in res.analysis.items()}
    ds = xr.Dataset(data, coords={"frame": np.arange(len(sweeps))})
    ds["sweep"] = ("frame", sweeps)
    volumes = np.concatenate([[abs(np.linalg.det(cell))], np.abs(np.linalg.det(res.frame_cells))])
    ds["density"] = ("frame", n / volumes)
    size = ds["largest_cluster"].values
    tail = size[-max(2, len(size) // 5):]
    if tail.mean() > 1.5 * n_seed and tail.mean() > n_seed + 10:
        outcome = "grew"
    elif tail.mean() < 0.5 * n_seed:
        outcome = "dissolved"
    else:
        outcome = "undecided"
    inc = np.diff(size)
    ds.attrs.update({
        "element": system.element, "units": system.units, "structure": structure, "n_seed": n_seed,
        "temperature": temperature, "pressure": pressure, "n_atoms": n, "cutoff": cutoff, "outcome": outcome,
        "initial_largest_cluster": float(size[0]), "final_largest_cluster": float(size[-1]),
        "mean_abs_increment": float(np.abs(inc).mean()) if len(inc) else 0.0,
        "max_increment": float(inc.max()) if len(inc) else 0.0,
        "fraction_small_increments": float(np.mean(np.abs(inc) <= 3)) if len(inc) else 1.0,
        "initial_composition": " ".join(f"{s}={initial[f'largest_{s}']:.2f}" for s in STRUCTURES),
        "final_composition": " ".join(f"{s}={res.analysis[f'largest_{s}'][-1]:.2f}" for s in STRUCTURES),
        "hmc_acceptance": res.hmc_acceptance, "volume_acceptance": res.volume_acceptance,
        "analyse_every": analyse_every, "n_hold": n_hold, "seed": seed, "schema": "pesflow.seeded_crystallisation/1",
    })
    return ds


def scan_temperatures(start: float, stop: float, n: int) -> list[float]:
    """``n`` equally spaced temperatures from ``start`` to ``stop`` (either order)."""
    if n < 1:
        raise ValueError(f"need ≥ 1 temperature, got {n}")
    return [float(t) for t in np.linspace(start, stop, n)]


def with_temperature(cfg: HMCConfig, t: float) -> HMCConfig:
    return replace(cfg, temperature=t)
