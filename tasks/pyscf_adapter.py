"""PySCF adapter: one configuration → total energy (eV) and forces (eV/Å). The only place with Hartree and Bohr.

Molecules and clusters (open boundaries) use ``pyscf.gto.Mole`` with HF, Kohn–Sham DFT or MP2, optional
density fitting and D3/D4 dispersion (pyscf-dispersion). Fully periodic cells use ``pyscf.pbc`` at the
Γ point through the k-point classes (KRHF/KUHF/KRKS/KUKS with FFTDF and GTH pseudopotentials), the only
periodic combination for which PySCF 2.x has analytic nuclear gradients; anything else is refused by
:func:`check_supported` before an SCF starts.

The SCF ladder: a first attempt with ``max_cycle``; if it does not converge, each step of
``settings.ladder()`` is tried in turn (more cycles from the last density; damping; level shift;
second-order Newton solver; Newton first for open shells). A configuration that still fails comes back
with ``status="failed"``. A converged solution is then tested for internal instabilities when
``settings.checks_stability()`` (open shells by default) and re-converged from the lower solution PySCF
finds; :attr:`LabelResult.stability` records the outcome.

Basis sets that come with effective core potentials (def2 beyond Kr, LANL2DZ, SBKJC, CRENBL, Stuttgart,
cc-pVnZ-PP, …) get their ECP for every element whose definition has one (:func:`ecp_elements`); a basis
that lacks the core functions of an element and has no ECP for it is refused (:func:`check_elements`),
as are GTH bases on open boundaries (:func:`check_supported`): they are made for pseudopotentials in
periodic cells.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyscf
from pyscf import dft, gto, lib, mp, scf
from pyscf.data.elements import CONFIGURATION, ELEMENTS

from tasks.label_settings import LabelSettings

HARTREE_EV = 27.211386245988  # eV per Hartree, CODATA 2018 (NIST)
BOHR_ANGSTROM = 0.529177210903  # Å per Bohr, CODATA 2018 (NIST)
FORCE_EV_ANGSTROM = HARTREE_EV / BOHR_ANGSTROM  # eV/Å per Hartree/Bohr
PYSCF_VERSION = pyscf.__version__

_counters = {"scf_runs": 0}

_DAMPING = 0.5  # fraction of the previous Fock matrix mixed in
_LEVEL_SHIFT = 0.5  # Hartree added to virtual orbital energies
_LADDER_MIN_CYCLES = 50  # each ladder step may run at least this many cycles (or twice max_cycle)
_STABILITY_ROUNDS = 3  # instabilities followed (stability analysis + re-converged SCF) before giving up
_FLAT_HARTREE = 1e-6  # a last reoptimisation gaining less than this (Ha) means a flat direction, not a saddle
STABLE, REOPTIMISED, NOT_CHECKED = "stable", "unstable→reoptimised", "not checked"
_PERIODIC_PSEUDO = {"hf": "gth-hf-rev", "pbe": "gth-pbe", "lda": "gth-pade", "pade": "gth-pade", "blyp": "gth-blyp",
                    "bp86": "gth-bp", "pbesol": "gth-pbesol", "olyp": "gth-olyp"}


class UnsupportedLabelError(ValueError):
    """The chosen method cannot give energies and analytic forces for this kind of system in PySCF."""


def scf_run_count() -> int:
    """SCF kernels started in this process so far (tests use it to prove a cache hit computes nothing)."""
    return _counters["scf_runs"]


@dataclass
class LabelResult:
    """One label: ``energy`` eV and ``forces`` (n_atoms, 3) eV/Å (NaN when ``status == "failed"``).

    ``dm`` is the converged AO density matrix (for warm starts), ``scf_cycles`` the cycles of all attempts,
    ``ladder_step`` the ladder step that converged (``"none"`` = the first attempt), ``wall_time`` seconds,
    ``stability`` the outcome of the SCF stability check (``"stable"``, ``"unstable→reoptimised"``: the first
    solution was a saddle and the label is that of the lower, stable one; ``"not checked"``).
    """

    energy: float
    forces: np.ndarray
    status: str
    reason: str
    scf_cycles: int
    ladder_step: str
    wall_time: float
    dm: np.ndarray | None = None
    stability: str = NOT_CHECKED


def is_periodic(pbc: np.ndarray) -> bool:
    return bool(np.any(pbc))


def periodic_pseudo(settings: LabelSettings) -> str:
    """GTH pseudopotential family matching the method (periodic cells)."""
    name = "hf" if settings.method == "hf" else settings.functional
    return _PERIODIC_PSEUDO.get(name, "gth-pbe")


def check_supported(settings: LabelSettings, pbc: np.ndarray) -> None:
    """Raise :class:`UnsupportedLabelError` if PySCF cannot give energy and analytic forces for this system."""
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any():
        if is_gth(settings.basis):
            raise UnsupportedLabelError(
                f"basis {settings.basis!r} is a GTH valence basis for pseudopotentials in periodic cells "
                "(pyscf.pbc); on an open-boundary molecule or cluster it has no core and gives wrong energies "
                "and forces. Use an all-electron or ECP basis such as def2-svp (or sto-3g, cc-pvdz), or give "
                "the structure a periodic cell with pbc all True")
        return
    supported = ("supported for periodic cells: method 'hf' or 'dft' with an LDA/GGA functional without exact "
                 "exchange (pbe, lda, blyp, bp86, pbesol), a GTH basis (gth-szv, gth-dzvp, ...), no dispersion, "
                 "all three directions periodic (Γ point, FFTDF); or label the system as a cluster with pbc all False")
    if not pbc.all():
        raise UnsupportedLabelError(f"partly periodic cell (pbc={pbc.tolist()}): PySCF has no nuclear gradients for "
                                    f"1D/2D periodicity; {supported}")
    if settings.method == "mp2":
        raise UnsupportedLabelError(f"PySCF has no periodic MP2 nuclear gradients; {supported}")
    if settings.method == "dft":
        from pyscf.dft import libxc

        if libxc.is_hybrid_xc(settings.functional) or libxc.xc_type(settings.functional) not in ("LDA", "GGA"):
            raise UnsupportedLabelError(f"functional {settings.functional!r} has no periodic nuclear gradients in "
                                        f"PySCF; {supported}")
    if settings.dispersion is not None:
        raise UnsupportedLabelError(f"dispersion {settings.dispersion!r} is not wired for periodic cells; {supported}")
    if not settings.basis.startswith("gth"):
        raise UnsupportedLabelError(f"basis {settings.basis!r}: periodic gradients in PySCF need GTH "
                                    f"pseudopotentials and a GTH basis; {supported}")


def is_gth(basis: str) -> bool:
    """Whether ``basis`` names a GTH basis (valence-only, for GTH pseudopotentials in periodic cells)."""
    return basis.strip().lower().startswith("gth")


# Basis families whose ECP PySCF files under the family's name, not the basis's (e.g. ccECP-cc-pVDZ → ccECP).
_ECP_FAMILIES = (("ccecpccpv", "ccecp"), ("ccecpaugccpv", "ccecp"), ("bfdv", "bfd"))


def _load_ecp(name: str, symbol: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "ECP may be available in basis-set-exchange"
        try:
            return gto.basis.load_ecp(name, symbol)
        except Exception:  # PySCF raises for names it has no ECP file for; then there is none
            return None


def ecp_elements(basis: str, symbols) -> dict[str, str]:
    """``{symbol: ECP name}`` for each element whose definition of ``basis`` in PySCF comes with an ECP.

    E.g. ``lanl2dz``: Na and heavier; ``def2-*``: Rb and heavier; ``ccecp-cc-pvdz``: every element
    (ECP ``ccecp``); ``sto-3g``, ``cc-pvdz``: none.
    """
    if is_gth(basis):
        return {}
    compact = basis.lower().replace("-", "").replace("_", "").replace(" ", "")
    names = [basis] + [ecp for prefix, ecp in _ECP_FAMILIES if compact.startswith(prefix)]
    out = {}
    for symbol in sorted(set(symbols)):
        for name in names:
            if _load_ecp(name, symbol):
                out[symbol] = name
                break
    return out


def _contracted_per_l(shells) -> dict[int, int]:
    """Contracted functions per angular momentum of a PySCF basis definition ``[[l, (kappa,) [e, c…], …]``."""
    count: dict[int, int] = {}
    for shell in shells:
        rows = [r for r in shell[1:] if isinstance(r, list | tuple)]
        if rows:
            count[shell[0]] = count.get(shell[0], 0) + len(rows[0]) - 1
    return count


def _occupied_shells_per_l(z: int) -> dict[int, int]:
    """Occupied shells per angular momentum of the free atom's ground configuration (1s 2s 2p … for Z)."""
    return {lq: math.ceil(n / (2 * (2 * lq + 1))) for lq, n in enumerate(CONFIGURATION[z]) if n}


def check_elements(species: np.ndarray, settings: LabelSettings, periodic: bool) -> None:
    """Raise ValueError naming any element the basis (or, for cells, the pseudopotential) does not cover.

    On open boundaries an element without an ECP must also have core functions: at least as many contracted
    functions per angular momentum as the atom has occupied shells (a minimal basis). A valence-only basis
    (e.g. lanl2dz for I) without its ECP would put all electrons into valence functions: energies wrong by
    thousands of eV, no error from PySCF.
    """
    ecps = {} if periodic else ecp_elements(settings.basis, [ELEMENTS[int(z)] for z in species])
    for z in sorted({int(z) for z in species}):
        symbol = ELEMENTS[z]
        try:
            with warnings.catch_warnings():  # PySCF's hint to install basis-set-exchange; our error says more
                warnings.simplefilter("ignore", UserWarning)
                shells = gto.basis.load(settings.basis, symbol)
                if not shells:
                    raise KeyError(symbol)
        except Exception:
            raise ValueError(f"element {symbol} (Z={z}) is not covered by basis {settings.basis!r}; choose a basis "
                             f"that has it (e.g. def2-svp covers H–Rn)") from None
        if not periodic and symbol not in ecps:
            have, need = _contracted_per_l(shells), _occupied_shells_per_l(z)
            short = [lq for lq, n in need.items() if have.get(lq, 0) < n]
            if short:
                letters = "spdfg"
                raise ValueError(
                    f"basis {settings.basis!r} has no effective core potential for {symbol} (Z={z}) in PySCF and "
                    f"too few functions for its core ({', '.join(f'{have.get(lq, 0)} {letters[lq]}' for lq in short)}"
                    f" functions for {', '.join(f'{need[lq]} occupied {letters[lq]} shells' for lq in short)}): "
                    f"it is a valence basis whose ECP is missing, so the label would be wrong. Choose a basis that "
                    f"comes with an ECP for {symbol} (e.g. def2-svp, lanl2dz) or an all-electron one")
        if periodic:
            from pyscf.pbc.gto import pseudo

            try:
                pseudo.load(periodic_pseudo(settings), symbol)
            except Exception:
                raise ValueError(f"element {symbol} (Z={z}) has no pseudopotential {periodic_pseudo(settings)!r} "
                                 f"for periodic cells") from None


def build_system(species: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                 settings: LabelSettings):
    """A built ``Mole`` (open) or ``pbc.gto.Cell`` (periodic); ``positions``, ``cell`` in Å."""
    atoms = [(ELEMENTS[int(z)], tuple(p)) for z, p in zip(species, np.asarray(positions) / BOHR_ANGSTROM,
                                                          strict=True)]
    if is_periodic(pbc):
        from pyscf.pbc import gto as pbc_gto

        system = pbc_gto.Cell()
        system.a = np.asarray(cell) / BOHR_ANGSTROM
        system.pseudo = periodic_pseudo(settings)
        if settings.pbc_ke_cutoff is not None:
            system.ke_cutoff = settings.pbc_ke_cutoff / HARTREE_EV
    else:
        if is_gth(settings.basis):
            check_supported(settings, pbc)  # raises: GTH bases are for periodic cells
        system = gto.Mole()
        system.ecp = ecp_elements(settings.basis, [ELEMENTS[int(z)] for z in species])
    system.atom = atoms
    system.unit = "Bohr"
    system.basis = settings.basis
    system.charge = settings.charge
    system.spin = settings.spin
    system.max_memory = settings.max_memory
    system.verbose = 0
    system.build(dump_input=False)
    return system


def make_mean_field(system, settings: LabelSettings, step: str = "none"):
    """The SCF object for ``system`` (restricted when spin is 0), configured for ladder ``step``."""
    restricted = settings.spin == 0
    periodic = not isinstance(system, gto.Mole)
    if periodic:
        from pyscf.pbc import dft as pbc_dft
        from pyscf.pbc import scf as pbc_scf

        kpts = system.make_kpts([1, 1, 1])
        if settings.method == "dft":
            mf = (pbc_dft.KRKS if restricted else pbc_dft.KUKS)(system, kpts, xc=settings.functional)
        else:
            mf = (pbc_scf.KRHF if restricted else pbc_scf.KUHF)(system, kpts)
    else:
        if settings.method == "dft":
            mf = (dft.RKS if restricted else dft.UKS)(system, xc=settings.functional)
            mf.grids.level = settings.grid_level
        else:
            mf = (scf.RHF if restricted else scf.UHF)(system)
        if settings.dispersion is not None:
            mf.disp = settings.dispersion
        if settings.density_fit:
            mf = mf.density_fit()
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    mf.max_memory = settings.max_memory
    mf.verbose = 0
    budget = max(2 * settings.max_cycle, _LADDER_MIN_CYCLES)  # cycles of one ladder step
    if step == "more_cycles":
        mf.max_cycle = 2 * budget
    elif step == "damping":
        mf.damp = _DAMPING
        mf.diis_start_cycle = 4
        mf.max_cycle = budget
    elif step == "level_shift":
        mf.level_shift = _LEVEL_SHIFT
        mf.max_cycle = budget
    elif step == "newton":
        mf = mf.newton()
        mf.max_cycle = budget
    return mf


def _run_scf(mf, dm0):
    _counters["scf_runs"] += 1
    count = [0]

    def _count(_envs):
        count[0] += 1

    mf.callback = _count  # one call per SCF (or Newton macro) iteration; mf.cycles is 0 for Newton
    mf.kernel(dm0=dm0)
    return count[0], bool(mf.converged)


def converge(system, settings: LabelSettings, dm0: np.ndarray | None = None):
    """Run the SCF with the ladder. Returns ``(mf, cycles, step)``; ``step`` is None when nothing converged."""
    mf = make_mean_field(system, settings)
    cycles, ok = _run_scf(mf, dm0)
    if ok:
        return mf, cycles, "none"
    for step in settings.ladder():
        # "more cycles" and "newton" continue from the last density; damping and level shift restart
        # from the initial guess, since the last density may be the oscillation they are meant to stop.
        start = mf.make_rdm1() if step in ("more_cycles", "newton") else dm0
        mf = make_mean_field(system, settings, step)
        more, ok = _run_scf(mf, start)
        cycles += more
        if ok:
            return mf, cycles, step
    return mf, cycles, None


def _plain(mf):
    """The plain SCF object behind a Newton (second-order) wrapper."""
    return mf.undo_soscf() if hasattr(mf, "undo_soscf") else mf


def _internal_stability(mf) -> tuple[object, bool]:
    """``(mo, stable)`` of PySCF's internal stability analysis of a converged plain SCF object."""
    try:
        mo, _, stable, _ = mf.stability(internal=True, external=False, return_status=True)
    except TypeError:  # pyscf.pbc's KUHF/KUKS.stability has no return_status; it returns mf.mo_coeff when stable
        mo, _ = mf.stability(internal=True, external=False)
        stable = mo is mf.mo_coeff
    return mo, bool(stable)


def follow_instabilities(mf, system, settings: LabelSettings, cycles: int):
    """Test a converged ``mf`` for internal instabilities and re-converge from the lower solution.

    PySCF's ``stability(internal=True)`` diagonalises the orbital Hessian; an eigenvalue below −1e-5 means the
    solution is a saddle and ``mo`` points downhill. The SCF is re-run (with the ladder) from that density,
    up to 3 times. Returns ``(mf, cycles, outcome)`` with outcome ``"stable"`` or ``"unstable→reoptimised"``.
    A solution still reported unstable after the last round is accepted only if that round lowered the energy
    by less than 1e-6 Ha (a flat direction, e.g. rotations among degenerate orbitals, within grid noise);
    otherwise, or when a re-run does not converge, RuntimeError (the label then fails).
    """
    outcome = STABLE
    drop = np.inf  # Hartree gained by the last reoptimisation
    for _ in range(_STABILITY_ROUNDS):
        plain = _plain(mf)
        mo, stable = _internal_stability(plain)
        if stable:
            return mf, cycles, outcome
        before = float(plain.e_tot)
        mf, more, step = converge(system, settings, plain.make_rdm1(mo, plain.mo_occ))
        cycles += more
        if step is None:
            raise RuntimeError("the SCF solution is unstable and the SCF from the lower solution did not converge "
                               f"({more} cycles)")
        drop = before - float(mf.e_tot)
        outcome = REOPTIMISED
    if drop < _FLAT_HARTREE or _internal_stability(_plain(mf))[1]:
        return mf, cycles, outcome
    raise RuntimeError(f"the SCF solution is still unstable after {_STABILITY_ROUNDS} reoptimisations (the last one "
                       f"lowered the energy by {drop * HARTREE_EV * 1e3:.3g} meV)")


def _gradient(mf, system, settings: LabelSettings) -> tuple[float, np.ndarray]:
    """Total energy (Hartree) and its nuclear gradient (n, 3) Hartree/Bohr for a converged ``mf``."""
    mf = _plain(mf)  # the Newton wrapper's gradient object is the plain method's
    if settings.method == "mp2":
        pt = mp.MP2(mf)
        pt.verbose = 0
        pt.kernel()
        return float(pt.e_tot), np.asarray(pt.nuc_grad_method().kernel())
    grad = mf.nuc_grad_method()
    grad.verbose = 0
    if settings.method == "dft" and settings.grid_response and isinstance(system, gto.Mole):
        grad.grid_response = True
    return float(mf.e_tot), np.asarray(grad.kernel())


def run_label(species: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
              settings: LabelSettings, dm0: np.ndarray | None = None) -> LabelResult:
    """Energy (eV) and forces (eV/Å) of one configuration; never raises for SCF trouble (status says)."""
    start = time.perf_counter()
    n = len(species)
    nan_forces = np.full((n, 3), np.nan)
    cycles = 0
    try:
        system = build_system(species, positions, cell, pbc, settings)
        if dm0 is not None and np.shape(dm0)[-1] != system.nao_nr():
            dm0 = None
        mf, cycles, step = converge(system, settings, dm0)
        if step is None:
            tried = ", ".join(settings.ladder()) or "ladder disabled"
            return LabelResult(np.nan, nan_forces, "failed",
                               f"SCF not converged to {settings.conv_tol:g} Ha after {cycles} cycles ({tried})",
                               cycles, "failed", time.perf_counter() - start)
        stability = NOT_CHECKED
        if settings.checks_stability():
            mf, cycles, stability = follow_instabilities(mf, system, settings, cycles)
        energy, gradient = _gradient(mf, system, settings)
        dm = np.asarray(mf.make_rdm1())
    except Exception as exc:  # a PySCF failure of this one configuration is data, not a batch crash
        return LabelResult(np.nan, nan_forces, "failed", f"{type(exc).__name__}: {exc}", cycles, "failed",
                           time.perf_counter() - start)
    if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
        return LabelResult(np.nan, nan_forces, "failed", "non-finite energy or gradient from PySCF", cycles,
                           step, time.perf_counter() - start)
    return LabelResult(energy * HARTREE_EV, -gradient * FORCE_EV_ANGSTROM, "ok", "", cycles, step,
                       time.perf_counter() - start, dm, stability)


def set_threads(n: int) -> int:
    """Set PySCF's OpenMP threads; returns the previous count (restore it in a ``finally``)."""
    previous = lib.num_threads()
    lib.num_threads(n)
    return previous
