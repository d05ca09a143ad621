"""Settings of the label stage: one typed, frozen model, validated where it enters.

:class:`LabelSettings` checks every field when built (method, functional and basis names against PySCF,
combinations PySCF cannot differentiate; for ASE labelers the calculator class and its parameters, through
:func:`tasks.ase_labeler.resolve`), so a bad setting fails before any SCF starts. This module
imports PySCF only inside validators, which keeps it cheap to unpickle in worker processes.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

LADDER_STEPS = ("more_cycles", "damping", "level_shift", "newton")
# Open shells: second-order (Newton) first. Measured on the (NH3)2+ doublet (PBE/def2-SVP): Newton alone
# converged in 22 s where damping → level shift → Newton took 154 s (shared/docs/pyscf-notes.md).
OPEN_SHELL_LADDER = ("newton", "more_cycles", "damping", "level_shift")
LadderStep = Literal["more_cycles", "damping", "level_shift", "newton"]
StabilityCheck = Literal["auto", "always", "never"]
ASE_ONLY = ("labeler", "calculator", "parameters")
PYSCF_ONLY = ("method", "functional", "basis", "density_fit", "dispersion", "charge", "spin", "conv_tol", "max_cycle",
              "scf_ladder", "stability_check", "grid_level", "grid_response", "max_memory", "warm_start",
              "warm_start_max_rmsd", "pbc_ke_cutoff")


class LabelSettings(BaseModel):
    """How configurations are labeled with PySCF or an ASE calculator (energies in eV, forces in eV/Å come out).

    Fields
        labeler              who computes the labels: ``"pyscf"`` (default; the fields below from ``method`` to
                             ``pbc_ke_cutoff`` apply), ``"ase:lj"``, ``"ase:emt"``, ``"ase:xtb"`` or ``"ase"``
                             with ``calculator`` (see :mod:`tasks.ase_labeler`). ASE labelers ignore the PySCF
                             fields and use ``n_workers``, ``threads_per_worker``, ``min_distance``,
                             ``position_tolerance``; ``charge``/``spin`` must stay 0 (xtb takes ``charge`` and
                             ``multiplicity`` in ``parameters``).
        calculator           ``"package.module:ClassName"`` of an ASE calculator, with ``labeler = "ase"`` only.
        parameters           keyword arguments of the ASE calculator (numbers, booleans, text, lists, tables);
                             ASE labelers only.
        method               ``"hf"``, ``"dft"`` (Kohn–Sham, ``functional``) or ``"mp2"`` (RHF/UHF reference).
                             Restricted when ``spin == 0``, unrestricted otherwise.
        functional           libxc name for ``method="dft"`` (e.g. ``"pbe"``, ``"b3lyp"``); ignored otherwise.
        basis                PySCF basis name (``"def2-svp"``, ``"sto-3g"``, ``"gth-szv"`` for periodic cells).
        density_fit          density fitting (RI-J/K) for molecules. MP2 gradients need exact integrals, so
                             ``method="mp2"`` requires ``density_fit=False``. Periodic cells always use FFTDF.
        dispersion           ``None``, ``"d3bj"``, ``"d3zero"`` or ``"d4"`` (pyscf-dispersion); HF and DFT only.
        charge               total charge (e).
        spin                 2S = N_alpha − N_beta (0 = closed shell).
        conv_tol             SCF energy convergence threshold, Hartree.
        max_cycle            SCF cycles of the first attempt.
        scf_ladder           what to try, in order, when the SCF does not converge (empty: give up at once);
                             each step runs up to max(2·max_cycle, 50) cycles ("more_cycles" twice that).
                             ``None`` (default) orders it by measured cost: closed shells more_cycles →
                             damping → level_shift → newton; open shells (spin > 0) newton first.
        stability_check      after convergence, test the SCF solution for internal instabilities
                             (PySCF ``stability()``: a lower solution of the same kind exists) and follow
                             them, re-converging until stable (at most 3 times). ``"auto"``: for open
                             shells (spin > 0) only; ``"always"``; ``"never"``. The outcome is recorded per
                             label (``stable``, ``unstable→reoptimised``, ``not checked``).
        grid_level           PySCF DFT integration grid level (0–9).
        grid_response        include the grid-weight derivatives in DFT forces, so forces are the exact
                             derivative of the energy (costs a little more per gradient).
        max_memory           PySCF memory bound per worker process, MB.
        n_workers            worker processes labeling in parallel (1 = in this process).
        threads_per_worker   OpenMP/BLAS threads per worker; ``None`` = cores // n_workers (at least 1).
        min_distance         smallest allowed interatomic distance, Å (closer atoms are refused before SCF).
        warm_start           start the SCF from the converged density of the nearest labeled geometry of the
                             same molecule (same species order, same method) when one is close enough.
        warm_start_max_rmsd  "close enough": RMS displacement over atoms, Å.
        position_tolerance   positions and cell are rounded to multiples of this (Å) for the cache key.
        pbc_ke_cutoff        plane-wave kinetic energy cutoff for periodic cells, eV (``None`` = PySCF's choice
                             from the basis and its precision).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    labeler: str = "pyscf"
    calculator: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    method: Literal["hf", "dft", "mp2"] = "dft"
    functional: str = "pbe"
    basis: str = "def2-svp"
    density_fit: bool = True
    dispersion: Literal["d3bj", "d3zero", "d4"] | None = None
    charge: int = 0
    spin: int = Field(0, ge=0)
    conv_tol: float = Field(1e-9, gt=0, lt=1e-3)
    max_cycle: int = Field(50, ge=1)
    scf_ladder: tuple[LadderStep, ...] | None = None
    stability_check: StabilityCheck = "auto"
    grid_level: int = Field(3, ge=0, le=9)
    grid_response: bool = True
    max_memory: int = Field(4000, ge=100)
    n_workers: int = Field(1, ge=1)
    threads_per_worker: int | None = Field(None, ge=1)
    min_distance: float = Field(0.5, gt=0)
    warm_start: bool = True
    warm_start_max_rmsd: float = Field(0.5, ge=0)
    position_tolerance: float = Field(1e-6, gt=0, le=0.01)
    pbc_ke_cutoff: float | None = Field(None, gt=0)

    @field_validator("functional", "basis")
    @classmethod
    def _lower(cls, value: str) -> str:
        value = value.strip().lower()
        if not value:
            raise ValueError("must not be empty")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Dumps leave out the keys the labeler does not use: the ASE keys of a PySCF labeler (so PySCF campaign
        files and label attributes read as before, and a campaign written before ASE labelers existed still
        resumes) and the PySCF keys of an ASE labeler."""
        data = handler(self)
        if isinstance(data, dict):
            unused = ASE_ONLY if self.labeler == "pyscf" else PYSCF_ONLY
            for key in unused:
                data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _check_labeler(self) -> LabelSettings:
        if self.labeler == "pyscf":
            if self.calculator is not None or self.parameters:
                raise ValueError("calculator and parameters are for ASE labelers; set labeler (e.g. \"ase:lj\", "
                                 "or \"ase\" with calculator = \"package.module:ClassName\")")
            return self._check_with_pyscf()
        from tasks.ase_labeler import resolve

        if self.charge or self.spin:
            raise ValueError(f"charge and spin are PySCF settings; labeler {self.labeler!r} does not use them (for "
                             "xtb give parameters = {charge = ..., multiplicity = ...})")
        resolve(self.labeler, self.calculator, self.parameters)
        return self

    def _check_with_pyscf(self) -> LabelSettings:
        if self.method == "dft":
            from pyscf.dft import libxc

            try:
                libxc.parse_xc(self.functional)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"unknown functional {self.functional!r} (libxc names, e.g. 'pbe', 'b3lyp', "
                                 f"'pbe0', 'r2scan'): {exc}") from None
        from pyscf import gto

        try:
            with warnings.catch_warnings():  # PySCF suggests installing basis-set-exchange; the error says enough
                warnings.simplefilter("ignore", UserWarning)
                gto.basis.load(self.basis, "H")
        except Exception as exc:  # PySCF raises BasisNotFoundError or others for unknown names
            if "not found for H" not in str(exc):
                raise ValueError(f"unknown basis {self.basis!r} (PySCF names such as 'sto-3g', 'def2-svp', "
                                 f"'cc-pvdz', 'gth-szv'): {exc}") from None
        if self.dispersion is not None and self.method != "mp2":
            self._check_dispersion_parameters()
        if self.method == "mp2":
            if self.density_fit:
                raise ValueError("PySCF has no analytic gradients for density-fitted MP2: set density_fit=False "
                                 "for method='mp2'")
            if self.dispersion is not None:
                raise ValueError("dispersion corrections are for HF and DFT; MP2 already has dispersion: "
                                 "set dispersion=None")
        return self

    def _check_dispersion_parameters(self) -> None:
        """pyscf-dispersion must have damping parameters for this functional (evaluated on H2, no SCF)."""
        from pyscf import dft, gto, scf
        from pyscf.scf import dispersion

        h2 = gto.M(atom="H 0 0 0; H 0 0 0.74", basis="sto-3g", verbose=0)
        mf = dft.RKS(h2, xc=self.functional) if self.method == "dft" else scf.RHF(h2)
        mf.disp = self.dispersion
        try:
            dispersion.get_dispersion(mf)
        except Exception as exc:  # the C libraries raise RuntimeError/ValueError with their own wording
            name = self.functional if self.method == "dft" else "hf"
            raise ValueError(f"dispersion {self.dispersion!r} has no parameters for {name!r} in pyscf-dispersion "
                             f"({exc}); choose another functional or dispersion=None") from None

    def ladder(self) -> tuple[str, ...]:
        """The SCF ladder in use: ``scf_ladder`` if given, else ordered by measured cost for this spin."""
        if self.scf_ladder is not None:
            return tuple(self.scf_ladder)
        return OPEN_SHELL_LADDER if self.spin > 0 else LADDER_STEPS

    def checks_stability(self) -> bool:
        """Whether converged SCF solutions are tested for instabilities (``stability_check``, spin)."""
        return self.stability_check == "always" or (self.stability_check == "auto" and self.spin > 0)

    def worker_threads(self, n_workers: int | None = None) -> int:
        """OpenMP/BLAS threads per worker so that workers × threads ≈ the cores this process may use."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // (n_workers or self.n_workers))

    def method_key(self) -> dict:
        """The settings that change the numbers (the cache key part); workers, memory, ladder do not.

        A stability check can move a label to a lower SCF solution, so whether it runs is part of the key.
        ASE labelers: labeler, calculator class and resolved parameters (:meth:`tasks.ase_labeler.AseSpec.method_key`).
        """
        if self.labeler != "pyscf":
            from tasks.ase_labeler import spec_of

            return spec_of(self).method_key()
        return {
            "method": self.method,
            "functional": self.functional if self.method == "dft" else None,
            "basis": self.basis,
            "density_fit": self.density_fit,
            "dispersion": self.dispersion,
            "charge": self.charge,
            "spin": self.spin,
            "conv_tol": self.conv_tol,
            "grid_level": self.grid_level if self.method == "dft" else None,
            "grid_response": self.grid_response if self.method == "dft" else None,
            "pbc_ke_cutoff": self.pbc_ke_cutoff,
            "stability_checked": self.checks_stability(),
        }
