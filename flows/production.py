"""A campaign's ``[production]`` section: after the campaign stops, one phase study on its ``final.mtp``.

``[production]`` keys (:class:`ProductionConfig`, validated when the campaign file is loaded):

``flow``           ``"melt"`` (:func:`flows.phase.melting_curve`), ``"coexist"`` (:func:`flows.phase.coexistence`)
                   or ``"seed"`` (:func:`flows.phase.seeded_crystallisation`); ``"temper"`` and ``"sample"`` are
                   refused (command-line tools without a Prefect flow: run them with ``--potential final.mtp``)
``species``        optional: the element the study samples (symbol or Z); must be the campaign's one element
``pressure_unit``  ``"bar"`` (default) or ``"GPa"``: the unit of ``settings.pressure``
``settings``       the study's settings, the fields of :class:`tasks.phase_settings.MeltingCurveSettings`,
                   :class:`~tasks.phase_settings.CoexistenceSettings` or :class:`~tasks.phase_settings.SeededSettings`
                   less those the campaign fixes (``potential`` is always the campaign's ``final.mtp``, ``species``
                   is the key above, ``element``/``cutoff_sigma`` are Lennard-Jones only). Units follow the potential:
                   temperatures K (``temperatures`` required; ``melt_temperature`` too for ``seed``), pressure bar
                   (or GPa), ``lattice_constant`` Å (default: the final potential's 0 K fcc minimum).

At load every key is checked (types, ranges, required keys, seed structures and sizes); what depends on the fitted
potential itself (its element, the box against its cutoff) is checked by ``pesflow run`` before anything starts
(the campaign's element, :func:`check_elements`) and, for the box, when the study's settings are built on
``final.mtp``. :func:`run_production` runs the study as a Prefect sub-flow of the campaign's flow run, writing its
netCDF, PNG and ``summary.json`` into ``<campaign>/production/`` and ``production.json`` last (the final potential's
SHA-256, the section, the wall time): a rerun with the same ``final.mtp`` and section skips it. The section is not
compared on resume (:func:`flows.store._comparable`), so it may be added or corrected on a finished campaign.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

#: ``flow`` → (settings model path, Prefect flow path, main outputs)
FLOWS = {"melt": ("MeltingCurveSettings", "melting_curve", ("melting_curve.nc", "melting_curve.png")),
         "coexist": ("CoexistenceSettings", "coexistence", ("coexistence.nc", "coexistence.png")),
         "seed": ("SeededSettings", "seeded_crystallisation", ("seeded.nc", "seeded.png"))}
#: settings keys the campaign fixes, with the reason given when a user sets one
FIXED = {"potential": "the potential is always the campaign's final.mtp",
         "species": "give the element as [production] species",
         "element": "the element comes from the campaign's final.mtp (or [production] species)",
         "cutoff_sigma": "the Lennard-Jones cutoff does not apply; an MTP's cutoff is [potential] cutoff",
         "lattice_constant_source": "it is filled in by the study"}
#: the load-time check validates the settings on a stand-in Lennard-Jones system with this cutoff (σ): the settings
#: models are scale-free in σ except the coexistence box against the cutoff, which is left to final.mtp
_STAND_IN_CUTOFF = 2.5
_CUTOFF_CHECK = "twice the cutoff"
MARKER = "production.json"


def _settings_model(flow: str) -> type[BaseModel]:
    import tasks.phase_settings as ps

    return getattr(ps, FLOWS[flow][0])


def _errors(errors: list, model: type[BaseModel]) -> str:
    """pydantic's errors of a settings table as one line naming ``settings.<key>``."""
    parts = []
    for e in errors:
        names = [str(p) for p in e["loc"] if not isinstance(p, int)]
        key = "settings." + ".".join(names) + "".join(f"[{p}]" for p in e["loc"] if isinstance(p, int))
        msg = " ".join(e["msg"].removeprefix("Value error, ").split())
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(k for k in model.model_fields if k not in FIXED)
            parts.append(f"unknown key {key}; allowed keys: {allowed}")
        elif names:
            parts.append(f"{key} = {e.get('input')!r}: {msg}")
        else:
            parts.append(f"settings: {msg}")
    return "; ".join(parts)


class ProductionConfig(BaseModel):
    """The ``[production]`` section (see the module docstring). Raises ValueError (one line naming the key) on
    loading; :meth:`flow_settings` builds the study's settings on the final potential."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    flow: Literal["melt", "coexist", "seed", "temper", "sample"]
    species: str | int | None = None
    pressure_unit: Literal["bar", "GPa"] = "bar"
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_potential(cls, values):
        if isinstance(values, dict) and "potential" in values:
            raise ValueError(f"potential = {values['potential']!r} is not allowed: the production run always uses "
                             "the campaign's final.mtp; drop the key")
        return values

    @field_validator("species")
    @classmethod
    def _species(cls, v):
        if v is not None:
            atomic_number(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> ProductionConfig:
        if self.flow in ("temper", "sample"):
            raise ValueError(f'flow = "{self.flow}" is not available in [production] (a command-line tool, not a '
                             f'Prefect flow): choose "melt", "coexist" or "seed", or run `pesflow {self.flow} '
                             "--potential <campaign directory>/final.mtp` after the campaign")
        for key, why in FIXED.items():
            if key in self.settings:
                raise ValueError(f"settings.{key} is not allowed: {why}")
        needed = ("temperatures", "melt_temperature") if self.flow == "seed" else ("temperatures",)
        for key in needed:
            if key not in self.settings:
                raise ValueError(f"settings.{key} is required (K; the defaults are reduced Lennard-Jones "
                                 "temperatures, meaningless for a fitted potential)")
        model = _settings_model(self.flow)
        values = self._converted()
        errors = []
        if "lattice_constant" in values:  # a potential file's key: checked alone here
            field = model.model_fields["lattice_constant"]
            try:
                TypeAdapter(Annotated[field.annotation, field]).validate_python(values.pop("lattice_constant"))
            except ValidationError as exc:
                errors += [{**e, "loc": ("lattice_constant",)} for e in exc.errors()]
        try:
            model.model_validate({**values, "cutoff_sigma": _STAND_IN_CUTOFF})
        except ValidationError as exc:
            errors += [e for e in exc.errors() if e["loc"] or _CUTOFF_CHECK not in e["msg"]]  # see _STAND_IN_CUTOFF
        if errors:
            raise ValueError(_errors(errors, model))
        return self

    def _converted(self) -> dict:
        """The settings table with ``pressure`` in bar."""
        values = dict(self.settings)
        p = values.get("pressure")
        if isinstance(p, int | float) and not isinstance(p, bool):
            from hmc_core.units import pressure_in_bar

            values["pressure"] = pressure_in_bar(p, self.pressure_unit)
        return values

    def flow_settings(self, potential: str | Path, species: tuple[int, ...]):
        """The study's settings model on ``potential`` (the final ``.mtp``; ``species``: its atomic numbers).
        ValueError (one line) where the settings do not fit the potential (e.g. a box not twice its cutoff)."""
        model = _settings_model(self.flow)
        try:
            return model(**self._converted(), potential=str(potential), species=tuple(species))
        except ValidationError as exc:
            raise ValueError(f"[production] settings on {potential}: {_errors(exc.errors(), model)}") from None


def atomic_number(value: str | int) -> int:
    """Atomic number of an element symbol or number; ValueError otherwise."""
    from ase.data import atomic_numbers, chemical_symbols

    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an element")
    z = value if isinstance(value, int) else atomic_numbers.get(str(value)[:1].upper() + str(value)[1:].lower(), 0)
    if not 1 <= z < len(chemical_symbols):
        raise ValueError(f"{value!r} is not an element symbol or atomic number (e.g. \"Ar\" or 18)")
    return int(z)


def check_elements(production: ProductionConfig, elements) -> tuple[int, ...]:
    """The campaign's elements (atomic numbers of all its systems, or of final.mtp's species) against the study:
    the phase studies are one-component, and ``species`` (if given) must be that element. Returns ``(Z,)``;
    ValueError naming ``[production]`` otherwise."""
    from ase.data import chemical_symbols

    elements = sorted({int(z) for z in elements if int(z) > 0})
    names = ", ".join(chemical_symbols[z] for z in elements)
    if len(elements) != 1:
        raise ValueError(f"[production] flow = \"{production.flow}\" is a one-component study, but the campaign's "
                         f"potential has {len(elements)} elements ({names}); drop [production] or learn one element")
    if production.species is not None and atomic_number(production.species) != elements[0]:
        raise ValueError(f"[production] species = {production.species!r} is not the campaign's element {names}; "
                         "drop it or correct it")
    return (elements[0],)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def production_key(production: ProductionConfig, final: Path) -> dict:
    """What a finished study was run for: final.mtp's SHA-256 and the ``[production]`` section."""
    return {"final_mtp_sha256": file_sha256(final), "production": production.model_dump(mode="json")}


def finished_production(out: Path, key: dict) -> dict | None:
    """The marker of a study in ``out`` that finished for ``key`` (summary.json present), else None."""
    if (out / MARKER).exists() and (out / "summary.json").exists():
        done = json.loads((out / MARKER).read_text())
        if done.get("key") == key:
            return done
    return None


def production_pending(config, store) -> bool:
    """Whether a stopped campaign (``config``: :class:`flows.config.CampaignConfig`, ``store``: its
    :class:`flows.store.CampaignStore`) still has a ``[production]`` study to run for its current final.mtp."""
    if config.production is None:
        return False
    final = store.path("final.mtp")
    return not final.exists() or finished_production(store.root / "production",
                                                     production_key(config.production, final)) is None


def run_production(campaign) -> dict | None:
    """Run (or skip) the ``[production]`` study of a stopped campaign (:class:`flows.active_learning.Campaign`,
    after ``final.mtp`` and DONE.json are written): the Prefect flow of ``flow`` is called here, so inside the
    campaign's flow run it is a sub-flow. Outputs in ``<campaign>/production/``; ``production.json`` (written last)
    holds the key (final.mtp's SHA-256 and the section), the sub-flow's summary path and ``wall_s`` (s). Skipped
    when that key matches and summary.json exists; otherwise stale outputs are removed first. Returns the
    marker dict, or None without a ``[production]`` section. Raises ValueError where the settings do not fit the
    final potential; the flow's own errors propagate (the campaign's results stay complete)."""
    production = campaign.config.production
    if production is None:
        return None
    from hmc_core.mtp import read_mtp

    store, log = campaign.store, campaign.log
    out, final = store.root / "production", store.path("final.mtp")
    key = production_key(production, final)
    if (done := finished_production(out, key)) is not None:
        log.info("production %s already done (%s)", production.flow, out)
        return done
    species = check_elements(production, read_mtp(final).species)
    settings = production.flow_settings(final, species)
    if out.exists():
        shutil.rmtree(out)
    import flows.phase as phase
    from flows.store import write_text_atomic

    log.info("production: %s on %s → %s", production.flow, final.name, out)
    t0 = time.perf_counter()
    summary = getattr(phase, FLOWS[production.flow][1])(settings, run_dir=str(out))
    done = {"key": key, "flow": production.flow, "wall_s": campaign._timed("production", t0),
            "outputs": ["summary.json", *FLOWS[production.flow][2]],
            "bracket": summary.get("bracket")}
    write_text_atomic(out / MARKER, json.dumps(done, indent=1))
    log.info("production %s finished in %.1f s (results in %s)", production.flow, done["wall_s"], out)
    return done


def production_status(root: Path) -> str | None:
    """One line for ``pesflow status``: the production study's result, or that it has not finished; None when the
    campaign directory has no ``production/``."""
    out = Path(root) / "production"
    if not (out / MARKER).exists():
        return f"production: started, not finished ({out}); run the same command again" if out.exists() else None
    done = json.loads((out / MARKER).read_text())
    bracket = done.get("bracket")
    result = ""
    if bracket:
        lo, hi = ("?" if v is None or not math.isfinite(v) else f"{v:.4g}" for v in bracket)
        result = f"; melting bracket {lo} < T_m < {hi} K"
    return (f"production: {done['flow']} in {done['wall_s']:.1f} s → {out} ({', '.join(done['outputs'])})"
            f"{result}")
