"""Melting temperature where the Gibbs free energies of crystal and liquid cross, with a propagated error.

Route (issue 22 §2), all on pesflow's HMC samplers and any :class:`hmc_core.phase_system.PhaseModel`:

1. NPT HMC of the fcc crystal and of the liquid at ``n_temperatures`` temperatures around a guess T₀: the
   configurational enthalpy per atom h = ⟨U + PV⟩/N and the volume at each.
2. Absolute free energies at T₀ and the mean NPT volume of each phase (:mod:`hmc_core.free_energy`): the crystal by
   Frenkel–Ladd from the Einstein crystal, the liquid from the ideal gas (supercritical isotherm, then isochore);
   βG/N = βF/N + βP V̄/N.
3. Gibbs–Helmholtz at fixed P: ∂(βG/N)/∂β = h, so βG(β)/N = β₀G₀/N + ∫_{β₀}^{β} h dβ' (e.g. Frenkel & Smit 2nd
   ed. Eq. 2.1.24 rearranged; the reversible-scaling path of de Koning, Antonelli & Yip, Phys. Rev. Lett. 83, 3973
   (1999) integrates the same relation). h(T) of each phase is a weighted straight line in T over the sampled
   temperatures, integrated analytically: ∫ (c₀ + c₁T) dβ = c₀ (β − β₀) + (c₁/k_B) ln(β/β₀).
4. T_m: the root of βG_s − βG_l = 0 within the sampled range (slightly beyond allowed).

Error: parametric bootstrap over every sampled mean (the Frenkel–Ladd and liquid quadrature nodes, the enthalpies and
the volumes), each drawn from a normal with its block-averaged standard error; the interval is the percentile
interval of the re-computed roots (Efron & Tibshirani, *An Introduction to the Bootstrap*, ch. 13). Not included:
quadrature error (Frenkel–Ladd with λ = x⁴ nodes: 8 nodes gave ΔF = 0.592 ± 0.004 k_BT per atom for LJ argon at
83 K where 16 plain Gauss–Legendre nodes gave 0.595 ± 0.002; the liquid's excess free energy agreed with JZG's to
0.003 k_BT), finite-size effects of the N-atom boxes, and the nonlinearity of h(T) beyond the sampled range.
Units: T and P in the system's units (K and bar, or T* and P*), free energies per atom in k_B T.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq

from hmc_core.free_energy import Integral, frenkel_ladd, liquid_free_energy
from hmc_core.npt import NPTConfig, NPTSampler, block_standard_error, check_liquid, liquid_order, run_npt_chain
from hmc_core.phase_system import PhaseModel
from hmc_core.structures import lattice


def npt_enthalpy(system: PhaseModel, positions, cell, temperature: float, pressure: float, n_samples: int,
                 seed: int = 0, pressure_unit: str | None = None, n_steps: int = 20, n_warmup: int = 30) -> dict:
    """Isotropic NPT HMC at (T, P): {"enthalpy": ⟨U + PV⟩/N (energy), "enthalpy_se", "volume": ⟨V⟩ (length³),
    "volume_se", "positions"/"cell" of the last frame, "order": :func:`hmc_core.npt.liquid_order` of it}; the
    first third of the production sweeps is discarded (equilibration of the volume)."""
    x = np.asarray(positions, float)
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit)
    sampler = NPTSampler(system.force_field(len(x), cell), system.hmc_settings(temperature, n_steps, n_warmup), npt)
    res = run_npt_chain(sampler, x, n_samples, seed=seed, save_every=n_samples)
    keep = slice(n_samples // 3, None)
    p = npt.pressure_internal(system.units)
    h = (res.potential_energy[keep] + p * res.volume[keep]) / len(x)
    last = res.state
    return {"enthalpy": float(np.mean(h)), "enthalpy_se": block_standard_error(h),
            "volume": float(np.mean(res.volume[keep])), "volume_se": block_standard_error(res.volume[keep]),
            "positions": last.hmc.positions.copy(), "cell": last.cell.copy(),
            "order": liquid_order(last.hmc.positions, last.cell)}


def gibbs_curve(beta0: float, g0: float, temps, h, h_se, kB: float):
    """βG/N as a function of T from βG/N = ``g0`` at β₀ and a weighted straight line h(T) = c₀ + c₁ T through
    (``temps``, ``h`` ± ``h_se``) (energy per atom): returns callable(T) (module docstring, step 3)."""
    t, y, s = (np.asarray(a, float) for a in (temps, h, h_se))
    w = 1.0 / np.maximum(s, 1e-300) ** 2
    c1, c0 = np.polyfit(t, y, 1, w=np.sqrt(w))

    def g(temperature: float) -> float:
        beta = 1.0 / (kB * temperature)
        return g0 + c0 * (beta - beta0) + (c1 / kB) * math.log(beta / beta0)
    return g


def crossing(g_solid, g_liquid, t_lo: float, t_hi: float) -> float:
    """Root of g_solid − g_liquid in [t_lo, t_hi] (NaN when it does not change sign there)."""
    d = lambda t: g_solid(t) - g_liquid(t)  # noqa: E731
    a, b = d(t_lo), d(t_hi)
    if not (math.isfinite(a) and math.isfinite(b)) or a * b > 0:
        return float("nan")
    return float(brentq(d, t_lo, t_hi, xtol=1e-10 * t_hi))


def _resample(integral: Integral, rng) -> float:
    return float(integral.weights @ rng.normal(integral.means, integral.errors))


def free_energy_melting_point(system: PhaseModel, pressure: float, t_guess: float, n_cells: int = 5,
                              spread: float = 0.04, n_temperatures: int = 5, n_npt: int = 300, n_lambda: int = 8,
                              n_fl: int = 150, n_density: int = 8, n_beta: int = 5, n_liquid: int = 150,
                              t_high: float | None = None, n_melt: int = 100, n_bootstrap: int = 2000,
                              level: float = 0.95, seed: int = 0, pressure_unit: str | None = None,
                              progress: Callable[[str], None] | None = None) -> dict:
    """T_m at ``pressure`` where βG/N of the fcc crystal and of the liquid cross (module docstring), with a
    parametric-bootstrap interval at ``level``.

    t_guess: T₀, the reference temperature and the centre of the NPT temperatures t_guess × (1 ± spread);
    n_cells: fcc cells per edge (4 n³ atoms, both phases); n_npt sweeps per NPT run; n_lambda × n_fl the
    Frenkel–Ladd nodes × trajectories; n_density, n_beta × n_liquid the liquid's isotherm and isochore nodes ×
    trajectories; t_high the supercritical isotherm (default 2.5 T₀; it must exceed the critical temperature: LJ
    1.3 ε/k_B); the liquid is melted at ``system.default_melt_temperature`` for ``n_melt`` sweeps. Random streams
    from ``SeedSequence(seed)``.

    Returns a dict: "T_m", "ci" (low, high), "standard_error" (bootstrap), "level", per phase "solid"/"liquid"
    (free energy at T₀ with its parts, enthalpies and volumes per temperature), "temperatures", "delta_g" (βΔG/N at
    each temperature), "cpu_s" (process time of the whole route), "n_atoms". Raises RuntimeError when the liquid
    crystallised in an NPT run or ValueError for bad parameters.
    """
    if not (0 < spread < 0.5 and n_temperatures >= 2 and t_guess > 0 and 0 < level < 1):
        raise ValueError("need 0 < spread < 0.5, n_temperatures ≥ 2, t_guess > 0 and 0 < level < 1")
    say = progress or (lambda msg: None)
    cpu0 = time.process_time()
    streams = iter(np.random.SeedSequence(seed).spawn(2 * n_temperatures + 4))

    def next_seed() -> int:
        return int(next(streams).generate_state(1)[0])

    temps = t_guess * (1 + np.linspace(-spread, spread, n_temperatures))
    k0 = int(np.argmin(np.abs(temps - t_guess)))
    temps[k0] = t_guess
    kB = system.hmc_settings(1.0, 1, 0).kT
    p_internal = NPTConfig(pressure=pressure, pressure_unit=pressure_unit).pressure_internal(system.units)
    sites, cell = lattice("fcc", n_cells, 1.0 / system.sigma**3)
    n = len(sites)
    solid = [npt_enthalpy(system, sites, cell, t, pressure, n_npt, next_seed(), pressure_unit) for t in temps]
    for t, r in zip(temps, solid, strict=True):
        if r["order"]["solid_fraction"] < 0.5:
            raise RuntimeError(f"the crystal melted in NPT at T = {t:g} (solid fraction "
                               f"{r['order']['solid_fraction']:.2f}); lower spread or t_guess")
    say(f"crystal NPT at {len(temps)} temperatures: h = {[round(r['enthalpy'], 6) for r in solid]}")
    from hmc_core.free_energy import nvt_sampler
    from hmc_core.hmc import run_chain

    rho_l = system.liquid_density_guess(t_guess, pressure, n / abs(np.linalg.det(cell)), pressure_unit)
    s = (n / abs(np.linalg.det(cell)) / rho_l) ** (1 / 3)
    t_melt = system.default_melt_temperature(t_guess)
    melt = run_chain(nvt_sampler(system, system.potential(), n, cell * s, t_melt), sites * s, n_melt,
                     seed=next_seed())
    liquid_start, liquid_cell = melt.state.positions.copy(), cell * s
    liquid = [npt_enthalpy(system, liquid_start, liquid_cell, t, pressure, n_npt, next_seed(), pressure_unit)
              for t in temps]
    for t, r in zip(temps, liquid, strict=True):
        check_liquid(r["order"], f"after NPT at T = {t:g} (the supercooled liquid crystallised; lower spread)")
    say(f"liquid NPT at {len(temps)} temperatures: h = {[round(r['enthalpy'], 6) for r in liquid]}")
    # absolute free energies at T0 and each phase's mean volume there
    v_s, v_l = solid[k0]["volume"], liquid[k0]["volume"]
    fl = frenkel_ladd(system, sites * (v_s / abs(np.linalg.det(cell))) ** (1 / 3),
                      cell * (v_s / abs(np.linalg.det(cell))) ** (1 / 3), t_guess, n_lambda=n_lambda, n_samples=n_fl,
                      seed=next_seed())
    say(f"Frenkel–Ladd at T = {t_guess:g}: βF/N = {fl['free_energy']:.5f} ± {fl['standard_error']:.5f}")
    scale = (v_l / abs(np.linalg.det(liquid[k0]["cell"]))) ** (1 / 3)
    liq = liquid_free_energy(system, liquid[k0]["positions"] * scale, liquid[k0]["cell"] * scale, t_guess,
                             t_high or 2.5 * t_guess, n_density=n_density, n_beta=n_beta, n_samples=n_liquid,
                             seed=next_seed())
    say(f"liquid at T = {t_guess:g}: βF/N = {liq['free_energy']:.5f} ± {liq['standard_error']:.5f}")
    beta0 = 1.0 / (kB * t_guess)

    def evaluate(fs, fl_, hs, hl, vs, vl):
        g_s = gibbs_curve(beta0, fs + beta0 * p_internal * vs / n, temps, hs, [r["enthalpy_se"] for r in solid], kB)
        g_l = gibbs_curve(beta0, fl_ + beta0 * p_internal * vl / n, temps, hl, [r["enthalpy_se"] for r in liquid],
                          kB)
        lo, hi = temps[0] - 0.5 * (temps[-1] - temps[0]), temps[-1] + 0.5 * (temps[-1] - temps[0])
        return crossing(g_s, g_l, lo, hi), g_s, g_l

    hs = np.array([r["enthalpy"] for r in solid])
    hl = np.array([r["enthalpy"] for r in liquid])
    tm, g_s, g_l = evaluate(fl["free_energy"], liq["free_energy"], hs, hl, v_s, v_l)
    rng = np.random.default_rng(next(streams))
    draws = []
    for _ in range(n_bootstrap):
        fs = fl["free_energy"] - fl["delta"].value + _resample(fl["delta"], rng)
        fq = (liq["free_energy"] - liq["isotherm"].value - liq["isochore"].value + _resample(liq["isotherm"], rng)
              + _resample(liq["isochore"], rng))
        draws.append(evaluate(fs, fq, rng.normal(hs, [r["enthalpy_se"] for r in solid]),
                              rng.normal(hl, [r["enthalpy_se"] for r in liquid]),
                              rng.normal(v_s, solid[k0]["volume_se"]), rng.normal(v_l, liquid[k0]["volume_se"]))[0])
    draws = np.array(draws)
    ok = draws[np.isfinite(draws)]
    lo, hi = (np.quantile(ok, [0.5 - level / 2, 0.5 + level / 2]) if len(ok) > 0.9 * n_bootstrap
              else (float("nan"), float("nan")))
    say(f"T_m = {tm:.4g}, {100 * level:g} % interval [{lo:.4g}, {hi:.4g}]")

    def phase(r, free, name):
        return {"free_energy_T0": free["free_energy"], "free_energy_T0_se": free["standard_error"],
                "enthalpy": [x["enthalpy"] for x in r], "enthalpy_se": [x["enthalpy_se"] for x in r],
                "volume": [x["volume"] for x in r], "volume_se": [x["volume_se"] for x in r],
                "solid_fraction": [x["order"]["solid_fraction"] for x in r], "method": name}

    return {"T_m": tm, "ci": (float(lo), float(hi)), "standard_error": float(np.std(ok)) if len(ok) else float("nan"),
            "level": level, "n_bootstrap": n_bootstrap, "bootstrap_failures": int(n_bootstrap - len(ok)),
            "temperatures": [float(t) for t in temps], "T0": float(t_guess),
            "delta_g": [g_s(t) - g_l(t) for t in temps], "n_atoms": n, "pressure": float(pressure),
            "solid": {**phase(solid, fl, "Frenkel–Ladd (Einstein crystal, fixed centre of mass)"),
                      "spring": fl["spring"], "einstein": fl["einstein"], "lattice_energy": fl["lattice_energy"],
                      "frenkel_ladd_integral": fl["delta"].value},
            "liquid": {**phase(liquid, liq, "ideal gas → isotherm → isochore"), "t_high": liq["t_high"],
                       "isotherm_integral": liq["isotherm"].value, "isochore_integral": liq["isochore"].value,
                       "ideal": liq["ideal"]},
            "cpu_s": time.process_time() - cpu0}
