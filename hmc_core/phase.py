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
from collections.abc import Callable, Sequence
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
MIN_GAP = 0.7  # host atoms closer than this × the host spacing to a seed atom are always removed


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
        dist = np.linalg.norm(minimum_image(trial[:, None, :] - x[None, :, :], cell, inv), axis=2).min(axis=1)
        x = np.vstack([x, trial[np.argmax(dist)]])
    return x


def insert_seed(positions, cell, seed_positions, gap: float | None = None,
                seed_density: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put a seed (centred at 0) at the centre of a periodic box and remove host atoms around it.

    With ``gap`` given: every host atom closer than ``gap`` to a seed atom is removed. By default (``gap``
    None) the removal is density-matched: the k host atoms nearest the seed go, k = n_seed · ρ_host/ρ_seed
    (``seed_density``, default √2/d_nn³ from the seed's nearest-neighbour distance, the fcc value), and
    at least every atom closer than :data:`MIN_GAP` (0.7) × the host spacing (V/N)^(1/3). A fixed gap of
    0.85 × the spacing (the former default) removed 301 liquid atoms for a 250-atom seed at T* = 0.55
    where 229 fill its volume: a low-density shell around the seed (ρ 0.913 against the liquid's 0.937
    after insertion); the 0.7 floor removes 257 and leaves contacts ≥ 0.72σ. The remaining close contacts are relaxed by
    holding the seed while the host moves (``run_seeded(n_hold=…)``).

    Returns (positions (N', 3), is_seed (N',) bool). Raises ValueError when the seed does not fit.
    """
    x = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    seed = np.asarray(seed_positions, float)
    volume = abs(np.linalg.det(cell))
    spacing = (volume / len(x)) ** (1.0 / 3.0)
    min_gap = MIN_GAP * spacing if gap is None else gap
    radius = float(np.linalg.norm(seed, axis=1).max()) + min_gap
    if 2 * radius >= min_box_height(cell) - min_gap:
        raise ValueError(f"a seed of {len(seed)} atoms needs a box wider than {2 * radius + min_gap:.3g} (its "
                         f"diameter plus a liquid shell) but the box is {min_box_height(cell):.3g} across; use a "
                         "smaller seed or more atoms")
    centre = cell.sum(axis=0) / 2
    inv = np.linalg.inv(cell)
    placed = seed + centre
    dist = np.empty(len(x))
    for k in range(0, len(x), 512):  # minimum-image distance to the nearest seed atom, in blocks
        d = minimum_image(x[k:k + 512, None, :] - placed[None, :, :], cell, inv)
        dist[k:k + 512] = np.linalg.norm(d, axis=2).min(axis=1)
    if gap is not None:
        keep = dist >= gap
    else:
        if seed_density is None:
            if len(seed) > 1:
                from scipy.spatial import cKDTree

                d_nn = float(np.median(cKDTree(seed).query(seed, k=2)[0][:, 1]))
            else:
                d_nn = spacing
            seed_density = math.sqrt(2.0) / d_nn**3
        n_remove = int(round(len(seed) * len(x) / volume / seed_density))
        keep = np.ones(len(x), bool)
        keep[np.argsort(dist, kind="stable")[:n_remove]] = False
        keep &= dist >= min_gap
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
               pressure_unit: str | None = None, allow_negative_pressure: bool = False,
               progress: Callable[[str], None] | None = None) -> xr.Dataset:
    """Walk one NPT chain through ``temperatures`` in order (a heating or cooling ladder).

    At each temperature: ``n_warmup`` sweeps (dt and δ adapt), then ``n_samples`` production sweeps;
    order parameters every ``analyse_every`` sweeps. Temperatures in K or T*, pressure in bar or P*.
    Returns a Dataset over ``temperature`` with means and block standard errors of ``density``,
    ``enthalpy`` and ``potential_energy`` (per atom), ``solid_fraction``, ``largest_cluster``,
    structure fractions; traces ``density_trace`` (temperature, sample); the final configuration.
    ``progress(message)`` is called after each temperature (e.g. a logger's ``info``).
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
        if progress is not None:
            progress(f"ladder T={t:g} ({len(rows)}/{len(temps)}): density {row['density']:.4f}, solid fraction "
                     f"{row['solid_fraction_final']:.3f}")
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
               pressure_unit: str | None = None, n_hold: int = 0, gap: float | None = None,
               crystal: tuple[np.ndarray, np.ndarray] | None = None, n_settle: int = 50) -> xr.Dataset:
    """Insert a crystalline seed (fcc/hcp/bcc/ico, ``n_seed`` atoms) into a liquid and follow it by NPT HMC.

    ``crystal``: (positions, cell) of a bulk fcc crystal thermalised at (T, P) (:func:`bulk_crystal`);
    fcc seeds are carved from it (:func:`thermal_seed`) and other seeds take its density. Without it
    (and without ``seed_density``) such a crystal is made here. ``seed_density`` given alone: a perfect
    lattice at that density. The former default, a perfect lattice at 1.12 ρ_liquid, was 2.6 % too dense
    at T* = 0.55, P* = 1. Host atoms are removed by
    :func:`insert_seed` (density-matched unless ``gap`` is given). ``n_hold``: sweeps with the seed atoms
    held in place (mass × 10¹⁰) at fixed volume while the liquid relaxes against it, before the followed run.

    Returns a Dataset over ``frame`` (``sweep``, ``largest_cluster``, ``solid_fraction``,
    ``seed_solid_fraction``, ``largest_fcc/hcp/bcc/ico/other`` composition, ``density``) with attrs
    ``outcome`` (:func:`seeded_outcome`, after ``n_settle`` sweeps), growth-mode statistics and the seed's
    initial and final composition.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if n_hold < 0:
        raise ValueError(f"n_hold must be ≥ 0, got {n_hold}")
    x = np.asarray(liquid_positions, float)
    cell = np.asarray(cell, float)
    rho_liquid = len(x) / abs(np.linalg.det(cell))
    if crystal is None and seed_density is None:
        crystal = bulk_crystal(system, temperature, pressure, n_cells=max(5, math.ceil((n_seed / 4) ** (1 / 3)) + 3),
                               seed=seed + 11, pressure_unit=pressure_unit)[1:]
    if crystal is not None:
        c_pos, c_cell = np.asarray(crystal[0], float), np.asarray(crystal[1], float)
        rho_seed = len(c_pos) / abs(np.linalg.det(c_cell))
        seed_pos = (thermal_seed(c_pos, c_cell, n_seed) if structure == "fcc"
                    else crystal_seed(structure, n_seed, rho_seed))
    else:
        rho_seed = float(seed_density)
        seed_pos = crystal_seed(structure, n_seed, rho_seed)
    x, is_seed = insert_seed(x, cell, seed_pos, gap=gap, seed_density=rho_seed)
    n = len(x)
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit)
    species = np.full(n, system.species_label, np.int32)
    ff = ForceField(system.potential(), species, cell, (True, True, True), skin=0.3 * system.sigma)
    cfg = _hmc_settings(system, dt, n_steps, n_warmup, temperature)
    cutoff = shell_cutoff(rho_liquid)
    analysis = OrderAnalysis(cutoff=cutoff, tracked=is_seed)
    inserted = analysis(x, cell)
    state = None
    if n_hold > 0:
        # fixed volume while held: with cell moves the box expanded by up to 5 % (ρ 0.90 against the liquid's
        # 0.946 around a 321-atom seed) to relieve the seed–liquid contacts the frozen seed cannot relieve
        masses = np.where(is_seed, 1e10, 1.0) * _default_mass(system)
        held = NPTSampler(ff, cfg, replace(npt, volume_moves=0), masses=masses)
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
    n0 = float(size[0])
    outcome, n_ref = seeded_outcome(size, sweeps, n_settle)
    inc = np.diff(size)
    per_sweep = inc / np.maximum(np.diff(sweeps), 1)
    ds.attrs.update({
        "element": system.element, "units": system.units, "structure": structure, "n_seed": n_seed,
        "temperature": temperature, "pressure": pressure, "n_atoms": n, "cutoff": cutoff, "outcome": outcome,
        "seed_density": rho_seed, "liquid_density": rho_liquid,
        "inserted_largest_cluster": float(inserted["largest_cluster"]),
        "initial_largest_cluster": n0, "settled_largest_cluster": n_ref, "n_settle": n_settle,
        "final_largest_cluster": float(size[-1]),
        "max_largest_cluster": float(size.max()), "final_seed_solid_fraction": float(ds["seed_solid_fraction"][-1]),
        "mean_abs_increment": float(np.abs(inc).mean()) if len(inc) else 0.0,
        "max_increment": float(inc.max()) if len(inc) else 0.0,
        "mean_increment_per_sweep": float(per_sweep.mean()) if len(inc) else 0.0,
        "max_increment_per_sweep": float(per_sweep.max()) if len(inc) else 0.0,
        "fraction_small_increments": float(np.mean(np.abs(inc) <= 3)) if len(inc) else 1.0,
        "initial_composition": " ".join(f"{s}={initial[f'largest_{s}']:.2f}" for s in STRUCTURES),
        "final_composition": " ".join(f"{s}={res.analysis[f'largest_{s}'][-1]:.2f}" for s in STRUCTURES),
        "hmc_acceptance": res.hmc_acceptance, "volume_acceptance": res.volume_acceptance,
        "analyse_every": analyse_every, "n_hold": n_hold, "seed": seed, "schema": "pesflow.seeded_crystallisation/2",
    })
    return ds


def seeded_outcome(largest_cluster, sweeps, n_settle: int = 50) -> tuple[str, float]:
    """Classify a seeded run from its largest-cluster trace: (outcome, n_ref).

    n_ref is the median largest cluster over the frames with 0 < sweep ≤ ``n_settle``: a seed released after
    being held drops at once by ~30 % (its frozen surface atoms had ≥ 7 solid bonds, thermal ones do not:
    282 → 195 for a 321-atom seed at T* = 0.55 in 10 sweeps, which then grew back to 250), so the size at
    release is no reference. With n_end the mean of the last fifth of the frames and n₀ the size at release:
    "grew" when n_end − n_ref > max(20, n_ref / 4); "dissolved" when n_end < n_ref / 2, or when
    n_end < n₀ / 2 and n_end < n_ref (a small seed that dissolved within the settling window leaves the
    liquid's background clusters of 5–15 atoms as n_ref); else "undecided".
    """
    size = np.asarray(largest_cluster, float)
    sweeps = np.asarray(sweeps)
    settle = size[(sweeps > 0) & (sweeps <= n_settle)]
    n_ref = float(np.median(settle)) if len(settle) else float(size[0])
    n_end = float(size[-max(2, len(size) // 5):].mean())
    if n_end - n_ref > max(20.0, n_ref / 4):
        return "grew", n_ref
    if n_end < n_ref / 2 or (n_end < size[0] / 2 and n_end < n_ref):
        return "dissolved", n_ref
    return "undecided", n_ref


def scan_temperatures(start: float, stop: float, n: int) -> list[float]:
    """``n`` equally spaced temperatures from ``start`` to ``stop`` (either order)."""
    if n < 1:
        raise ValueError(f"need ≥ 1 temperature, got {n}")
    return [round(float(t), 10) for t in np.linspace(start, stop, n)]


def with_temperature(cfg: HMCConfig, t: float) -> HMCConfig:
    return replace(cfg, temperature=t)


def two_phase_box(n_cells: Sequence[int], solid_density: float, liquid_density: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elongated fcc box for a solid–liquid coexistence run: positions (N, 3), cell (3, 3), is_crystal (N,).

    ``n_cells`` = (nx, ny, nz) cubic fcc cells at ``solid_density``; the lower nz/2 cells (z < L_z/2 of the
    crystal) are the crystal, whose (100) faces are normal to z. The upper half is meant to be melted;
    with ``liquid_density`` it is stretched along z by solid_density / liquid_density (lateral spacing
    unchanged) so that, once melted, it has about the liquid's density and the box starts near the target
    pressure. nz must be even and ≥ 2.
    """
    reps = np.asarray(n_cells, int)
    if reps.shape != (3,) or np.any(reps < 1):
        raise ValueError(f"n_cells must be three positive integers (nx, ny, nz), got {n_cells}")
    if reps[2] < 2 or reps[2] % 2:
        raise ValueError(f"n_cells[2] = {reps[2]} must be even (half crystal, half liquid along z)")
    pos, cell = lattice("fcc", reps, solid_density)
    half = cell[2, 2] / 2
    a = cell[2, 2] / reps[2]
    is_crystal = pos[:, 2] < half - a / 8  # the planes z = 0, a/2, …, half − a/2
    if liquid_density is not None:
        if not liquid_density > 0:
            raise ValueError(f"liquid_density must be > 0, got {liquid_density}")
        stretch = solid_density / liquid_density
        liquid = ~is_crystal
        pos = pos.copy()
        pos[liquid, 2] = half + (pos[liquid, 2] - half) * stretch
        cell = cell.copy()
        cell[2, 2] = half + half * stretch
    return pos, cell, is_crystal


def minimum_image(d, cell, inv=None) -> np.ndarray:
    """Displacements ``d`` (..., 3) reduced to their minimum image in the periodic ``cell`` (3, 3)."""
    cell = np.asarray(cell, float)
    frac = np.asarray(d, float) @ (np.linalg.inv(cell) if inv is None else inv)
    frac -= np.round(frac)
    return frac @ cell


def min_box_height(cell) -> float:
    """Smallest distance between opposite faces of a cell (3, 3)."""
    cell = np.asarray(cell, float)
    volume = abs(np.linalg.det(cell))
    return float((volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)).min())


class SolidFraction:
    """Per-frame analysis for coexistence runs: ten Wolde–Frenkel solid-like fraction, largest cluster and
    the solid fraction per z slab (no CNA: it is the slow part at ~2000 atoms)."""

    def __init__(self, cutoff: float, n_slabs: int = 24):
        self.cutoff = cutoff
        self.n_slabs = n_slabs

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> dict:
        op = compute_order(positions, cell, cutoff=self.cutoff, structures=False)
        out = {"solid_fraction": float(op.solid.mean()), "largest_cluster": float(op.largest_cluster)}
        frac_z = (positions @ np.linalg.inv(cell))[:, 2] % 1.0
        slab = np.minimum((frac_z * self.n_slabs).astype(int), self.n_slabs - 1)
        counts = np.bincount(slab, minlength=self.n_slabs)
        solid = np.bincount(slab, weights=op.solid.astype(float), minlength=self.n_slabs)
        for k in range(self.n_slabs):
            out[f"slab_{k:02d}"] = float(solid[k] / counts[k]) if counts[k] else float("nan")
        return out


def _reduced_state(system: PhaseSystem, temperature: float, pressure: float, pressure_unit: str | None):
    """(T*, P*) of a state given in the system's units."""
    t_star = temperature / system.epsilon_over_kB
    if system.units == "lj":
        return t_star, pressure
    p_bar = NPTConfig(pressure=pressure, pressure_unit=pressure_unit).pressure_internal("metal")
    p_bar /= NPTConfig(pressure=1.0, pressure_unit="bar").pressure_internal("metal")
    return t_star, p_bar / system.reduced_pressure_to_user(1.0)


def bulk_crystal(system: PhaseSystem, temperature: float, pressure: float, n_cells: int | Sequence[int] = 5,
                 n_samples: int = 60,
                 n_warmup: int = 30, seed: int = 0, pressure_unit: str | None = None,
                 n_steps: int = 20) -> tuple[float, np.ndarray, np.ndarray]:
    """A periodic fcc crystal (``n_cells`` cubic cells, one number or three) at (T, P) by isotropic NPT HMC:
    (mean number density over the second half, final positions, final cell); atoms in the order of
    :func:`lattice`. Raises ValueError when the crystal melted (beyond superheating)."""
    rho0 = 1.0 / system.sigma**3
    pos, cell = lattice("fcc", n_cells, rho0)
    ff = ForceField(system.potential(), np.full(len(pos), system.species_label, np.int32), cell,
                    (True, True, True), skin=0.3 * system.sigma)
    sampler = NPTSampler(ff, _hmc_settings(system, None, n_steps, n_warmup, temperature),
                         NPTConfig(pressure=pressure, pressure_unit=pressure_unit))
    res = run_npt_chain(sampler, pos, n_samples, seed=seed, save_every=n_samples,
                        analyse=lambda x, c: {"solid": float(compute_order(x, c, structures=False).solid.mean())})
    if res.analysis["solid"][-1] < 0.5:
        raise ValueError(f"the bulk fcc crystal melted at T = {temperature:g} (beyond its superheating limit), so it "
                         "gives no crystal density there; use lower temperatures or pass the crystal density")
    rho = float(np.mean(len(pos) / res.volume[n_samples // 2:]))
    return rho, res.state.hmc.positions.copy(), res.state.cell.copy()


def thermal_seed(crystal_positions, crystal_cell, n_atoms: int) -> np.ndarray:
    """The ``n_atoms`` atoms of a thermalised periodic crystal nearest (minimum image) to its atom closest to
    the cell centre, centred at that atom: a seed with the crystal's thermal displacements, so that holding
    it fixed does not present the liquid a perfect (T = 0) lattice whose surface atoms all count as solid."""
    x = np.asarray(crystal_positions, float)
    cell = np.asarray(crystal_cell, float)
    if not 1 <= n_atoms <= len(x):
        raise ValueError(f"a thermal seed of {n_atoms} atoms needs a crystal with at least that many; it has {len(x)}")
    inv = np.linalg.inv(cell)
    centre = cell.sum(axis=0) / 2
    c = int(np.argmin(np.linalg.norm(minimum_image(x - centre, cell, inv), axis=1)))
    rel = minimum_image(x - x[c], cell, inv)
    order = np.argsort(np.linalg.norm(rel, axis=1), kind="stable")[:n_atoms]
    radius = float(np.linalg.norm(rel[order], axis=1).max())
    if 2 * radius >= min_box_height(cell):
        raise ValueError(f"the crystal ({len(x)} atoms) is too small to carve a seed of {n_atoms} atoms from it")
    return rel[order]


def _liquid_density_guess(system: PhaseSystem, temperature: float, pressure: float, solid_density: float,
                          pressure_unit: str | None) -> float:
    """Liquid density at (T, P) from the JZG equation of state where it applies, else ρ_s / 1.13."""
    from hmc_core.lj_reference import jzg_density

    t_star, p_star = _reduced_state(system, temperature, pressure, pressure_unit)
    try:
        return jzg_density(max(t_star, 0.7), p_star) / system.sigma**3
    except ValueError:
        return solid_density / 1.13


def run_coexistence(system: PhaseSystem, temperature: float, pressure: float, n_cells: Sequence[int] = (6, 6, 12),
                    n_samples: int = 1000, analyse_every: int = 20, n_melt: int = 150, n_hold: int = 30,
                    n_bulk: int = 60, melt_temperature: float | None = None, solid_density: float | None = None,
                    n_steps: int = 20, n_warmup: int = 30, threshold: float = 0.03, seed: int = 0,
                    pressure_unit: str | None = None, progress: Callable[[str], None] | None = None
                    ) -> xr.Dataset:
    """Two-phase (solid | liquid) NPT HMC run at one (T, P): does the crystal grow or melt?

    1. ρ_s: a bulk fcc crystal of nx × ny × nz/2 cells at (T, P) by isotropic NPT HMC (``n_bulk`` sweeps; or
       give ``solid_density``). It sets the crystal's lattice, including its lateral spacing, which stays
       fixed afterwards, and its last frame's thermal displacements are put on the crystal half (a held
       T = 0 lattice templated ~4 extra solid-like layers into the liquid during the hold, even at T ≫ T_m).
    2. :func:`two_phase_box` with the upper half stretched to the liquid density (JZG estimate).
    3. Melt that half at ``melt_temperature`` (default max(2 T, 2 ε/k_B)) at fixed volume for ``n_melt``
       sweeps while the crystal atoms are held (mass × 10¹⁰).
    4. ``n_hold`` sweeps at T with the crystal still held and z-only volume moves: the liquid cools and
       L_z relaxes to the pressure.
    5. ``n_samples`` free sweeps at (T, P), volume moves on L_z only (NPTConfig mode "z"): the lateral box
       keeps the bulk crystal's lattice spacing so the crystal is not strained; the liquid transmits the
       pressure along z. Order parameters every ``analyse_every`` sweeps.

    Outcome from the change Δφ of the solid-like fraction (ten Wolde–Frenkel, shell cutoff at ρ_s) from the
    release of the crystal (frame 0) to the mean of the last fifth of the analysed frames: "grew"
    (Δφ > ``threshold``: T < T_m), "melted" (Δφ < −threshold: T > T_m) or "undecided". One (100) layer
    is 1/(2 nz) of the atoms (0.042 at nz = 12).

    Returns a Dataset: per ``sample`` (sweep) ``potential_energy`` (per atom) and ``box_z``; per ``frame``
    ``sweep``, ``solid_fraction``, ``largest_cluster``, ``solid_profile`` (frame, slab); the final
    configuration; attrs with the outcome, Δφ, ΔU per atom (last fifth − first 20 sweeps), densities and
    acceptances.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if melt_temperature is not None and not melt_temperature > temperature:
        raise ValueError(f"melt_temperature = {melt_temperature} must exceed the temperature {temperature}")
    for name, v in (("n_samples", n_samples), ("analyse_every", analyse_every), ("n_steps", n_steps)):
        if v < 1:
            raise ValueError(f"{name} must be ≥ 1, got {v}")
    for name, v in (("n_melt", n_melt), ("n_hold", n_hold), ("n_bulk", n_bulk)):
        if v < 0:
            raise ValueError(f"{name} must be ≥ 0, got {v}")
    say = progress or (lambda msg: None)
    label = f"T={temperature:g}"
    if len(n_cells) != 3:
        raise ValueError(f"n_cells must be three cell counts (nx, ny, nz), got {n_cells}")
    displacements = None
    if solid_density is None:
        if n_bulk < 10:
            raise ValueError(f"n_bulk = {n_bulk}: give ≥ 10 sweeps for the bulk crystal density or pass solid_density")
        half = (int(n_cells[0]), int(n_cells[1]), max(1, int(n_cells[2]) // 2))
        solid_density, c_pos, c_cell = bulk_crystal(system, temperature, pressure, n_cells=half, n_samples=n_bulk,
                                                    seed=seed + 7, pressure_unit=pressure_unit)
        # thermal displacements of the final bulk frame from its lattice sites (centre-of-mass drift removed)
        ideal = lattice("fcc", half, len(c_pos) / abs(np.linalg.det(c_cell)))[0]
        displacements = minimum_image(c_pos - ideal, c_cell)
        displacements -= displacements.mean(axis=0)
        say(f"{label}: bulk fcc density {solid_density:.4f}")
    rho_l = _liquid_density_guess(system, temperature, pressure, solid_density, pressure_unit)
    x, cell, is_crystal = two_phase_box(n_cells, solid_density, rho_l)
    if displacements is not None:  # the crystal half starts thermal, not as a T = 0 lattice
        sites = lattice("fcc", half, solid_density)[0]
        x = np.vstack([sites + displacements, x[~is_crystal]])
        is_crystal = np.arange(len(x)) < len(sites)
    cutoff = system.cutoff_sigma * system.sigma
    width = min_box_height(lattice("fcc", n_cells, solid_density)[1])
    if width <= 2 * cutoff:
        raise ValueError(f"the box {tuple(int(c) for c in n_cells)} fcc cells is {width:.3g} "
                         f"{'σ' if system.units == 'lj' else 'Å'} across at its thinnest, not more than twice the "
                         f"cutoff {cutoff:.3g}: atoms would see their own periodic images; use more cells "
                         "(e.g. 6 × 6 × 12 at r_c = 3σ) or a shorter cutoff")
    n = len(x)
    species = np.full(n, system.species_label, np.int32)
    ff = ForceField(system.potential(), species, cell, (True, True, True), skin=0.3 * system.sigma)
    masses = np.where(is_crystal, 1e10, 1.0) * _default_mass(system)
    order_cutoff = shell_cutoff(solid_density)
    analysis = SolidFraction(order_cutoff, n_slabs=2 * int(n_cells[2]))
    state, melted_solid = None, float("nan")
    if n_melt > 0:
        t_melt = melt_temperature or max(2.0 * temperature, 2.0 * system.epsilon_over_kB)
        melt_sampler = NPTSampler(ff, _hmc_settings(system, None, n_steps, n_warmup, t_melt),
                                  NPTConfig(pressure=pressure, pressure_unit=pressure_unit, volume_moves=0),
                                  masses=masses)
        state = run_npt_chain(melt_sampler, x, n_melt, seed=seed + 1, save_every=n_melt).state
        melted_solid = float(compute_order(state.hmc.positions, state.cell, cutoff=order_cutoff,
                                           structures=False).solid[~is_crystal].mean())
        say(f"{label}: melted the upper half at T={t_melt:g} (solid-like fraction there {melted_solid:.3f})")
        if melted_solid > 0.2:
            raise ValueError(f"the upper half did not melt at T = {t_melt:g} in {n_melt} sweeps (solid-like fraction "
                             f"{melted_solid:.2f}); raise melt_temperature or n_melt")
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit, mode="z")
    cfg = _hmc_settings(system, None, n_steps, n_warmup, temperature)
    if n_hold > 0:
        held = NPTSampler(ff, cfg, npt, masses=masses)
        state = run_npt_chain(held, x, n_hold, seed=seed + 2, save_every=n_hold, state=state).state
        say(f"{label}: liquid relaxed against the held crystal ({n_hold} sweeps)")
    start_x = x if state is None else state.hmc.positions.copy()
    start_cell = cell if state is None else state.cell.copy()
    initial = analysis(start_x, start_cell)
    sampler = NPTSampler(ff, cfg, npt)
    chunks, results = max(1, min(5, n_samples // max(analyse_every, 1))), []
    bounds = np.linspace(0, n_samples, chunks + 1).astype(int)
    for k in range(chunks):
        m = int(bounds[k + 1] - bounds[k])
        res = run_npt_chain(sampler, start_x, m, seed=seed, save_every=analyse_every, analyse=analysis,
                            state=state, warmup=k == 0)
        state = res.state
        results.append((int(bounds[k]), res))
        say(f"{label}: sweep {bounds[k + 1]}/{n_samples}, solid fraction {res.analysis['solid_fraction'][-1]:.3f}")
    u = np.concatenate([r.potential_energy for _, r in results]) / n
    area = float(np.linalg.norm(np.cross(start_cell[0], start_cell[1])))  # lateral cell is never changed
    box_z = np.concatenate([r.volume for _, r in results]) / area
    frame_sweeps = np.concatenate([[0]] + [off + r.frame_sample + 1 for off, r in results])
    keys = ["solid_fraction", "largest_cluster"]
    series = {k: np.concatenate([[initial[k]]] + [r.analysis[k] for _, r in results]) for k in keys}
    slabs = sorted(k for k in initial if k.startswith("slab_"))
    profile = np.array([[initial[k] for k in slabs]]
                       + [[r.analysis[k][f] for k in slabs] for _, r in results for f in range(len(r.frame_sample))])
    phi = series["solid_fraction"]
    fifth = max(1, len(phi) // 5)
    d_phi = float(phi[-fifth:].mean() - phi[0])
    s_fifth = max(1, len(u) // 5)
    d_u = float(u[-s_fifth:].mean() - u[:min(20, s_fifth)].mean())
    outcome = "grew" if d_phi > threshold else ("melted" if d_phi < -threshold else "undecided")
    say(f"{label}: {outcome} (Δφ = {d_phi:+.3f}, ΔU = {d_u:+.4f} per atom)")
    units = get_units(system.units)
    ds = xr.Dataset(
        {"potential_energy": ("sample", u), "box_z": ("sample", box_z), "sweep": ("frame", frame_sweeps),
         "solid_fraction": ("frame", series["solid_fraction"]),
         "largest_cluster": ("frame", series["largest_cluster"]),
         "solid_profile": (("frame", "slab"), profile),
         "final_positions": (("atom", "xyz"), state.hmc.positions.copy()),
         "final_cell": (("cell_vector", "xyz"), state.cell.copy()),
         "initial_crystal": ("atom", is_crystal)},
        coords={"sample": np.arange(1, len(u) + 1), "frame": np.arange(len(frame_sweeps)),
                "xyz": ["x", "y", "z"]})
    ds["potential_energy"].attrs["units"] = f"{units.energy}/atom"
    ds["box_z"].attrs["units"] = units.length
    hmc_acc = float(np.mean([r.hmc_acceptance for _, r in results]))
    vol_acc = float(np.nanmean([r.volume_acceptance for _, r in results]))
    ds.attrs.update({
        "element": system.element, "units": system.units, "cutoff_sigma": system.cutoff_sigma,
        "potential": "LJ truncated at cutoff_sigma, shifted to zero there, analytic tail correction",
        "temperature": float(temperature), "pressure": float(pressure),
        "pressure_unit": pressure_unit or ("P*" if system.units == "lj" else "bar"),
        "n_atoms": n, "n_cells": " ".join(str(int(c)) for c in n_cells), "solid_density": solid_density,
        "liquid_density_guess": rho_l, "melted_half_solid_fraction": melted_solid,
        "order_cutoff": order_cutoff, "volume_mode": "z",
        "outcome": outcome, "delta_solid_fraction": d_phi, "delta_potential_energy": d_u, "threshold": threshold,
        "initial_solid_fraction": float(phi[0]), "final_solid_fraction": float(phi[-1]),
        "final_density": float(n / abs(np.linalg.det(state.cell))), "hmc_acceptance": hmc_acc,
        "volume_acceptance": vol_acc, "dt": float(results[-1][1].final_dt), "n_samples": n_samples,
        "n_melt": n_melt, "n_hold": n_hold, "n_steps": n_steps, "seed": seed,
        "schema": "pesflow.coexistence/1"})
    return ds


def coexistence_bracket(runs: Sequence[xr.Dataset]) -> dict:
    """Melting bracket from coexistence runs: T_grew = highest T whose crystal grew (T_m > T_grew),
    T_melted = lowest T whose crystal melted (T_m < T_melted). ``consistent`` is False when a melted run
    lies below a grown one (too short runs or too small a threshold). NaN where not seen."""
    grew = [ds.attrs["temperature"] for ds in runs if ds.attrs["outcome"] == "grew"]
    melted = [ds.attrs["temperature"] for ds in runs if ds.attrs["outcome"] == "melted"]
    lo = max(grew, default=float("nan"))
    hi = min(melted, default=float("nan"))
    consistent = not (grew and melted and min(melted) < max(grew))
    mid = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else float("nan")
    return {"T_grew": lo, "T_melted": hi, "bracket": (lo, hi), "T_mid": mid, "consistent": consistent}
