"""Campaign configuration: one TOML (or YAML) file, validated by typed, frozen pydantic models.

Sections (every key optional; defaults give a small, cheap campaign):

``name``, ``seed``, ``directory``
``[system]``     what to learn: a built-in molecule/cluster/crystal/liquid or a structure file (any ASE format),
                 how its labeled starting set is made (random displacements of the structure) and its
                 exploration temperatures; ``[[system]]`` (an array of tables) for several named systems
                 (:class:`flows.system_config.SystemConfig`)
``[potential]``  the fit stage's settings, :class:`tasks.fit.MTPSettings` (level, cutoff Å, radial basis, weights)
``[hmc]``        the explore stage's settings, :class:`tasks.explore.ExploreSettings` (temperatures K, samples per
                 chain, integrator steps, time step fs)
``[selection]``  the select stage's settings, :class:`tasks.select.SelectionSettings` (candidates above
                 ``threshold``, chains stop above ``break_threshold``, per-iteration label budget)
``[labeling]``   the label stage's settings, :class:`tasks.label_settings.LabelSettings` (PySCF method, basis,
                 charge, spin, dispersion, workers; defaults: PBE/def2-SVP with density fitting; or ``labeler``
                 = ``"ase:lj"``/``"ase:emt"``/``"ase:xtb"``/``"ase"`` + ``calculator``, with ``parameters``,
                 :mod:`tasks.ase_labeler`) + ``cache_dir``
``[ensemble_test]`` optional: a test set drawn from HMC on the current potential at the systems' state points,
                 labeled by the reference method (:class:`tasks.ensemble_test.EnsembleTestSettings`)
``[stopping]``   iteration budget, label budget, held-out and ensemble force-error targets
``[executor]``   ``default`` (Prefect's thread runner; labels in local processes) or ``dask`` (prefect-dask:
                 a local cluster, or the address of a running scheduler)
``[production]`` optional: a phase study (melt, coexist, seed) run on ``final.mtp`` after the campaign stops
                 (:class:`flows.production.ProductionConfig`); absent, the saved configuration has no such section

Unknown keys and bad values raise :class:`ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.production import ProductionConfig
from flows.system_config import SystemConfig
from tasks.cluster_cuts import ClusterCutSettings
from tasks.ensemble_test import EnsembleTestSettings
from tasks.explore import ExploreSettings
from tasks.fit import MTPSettings
from tasks.label_settings import LabelSettings
from tasks.select import SelectionSettings

DEFAULT_CONFIG = Path(__file__).with_name("default_campaign.toml")
#: the campaign's random streams (:meth:`CampaignConfig.stream`); append new ones, never reorder
STREAMS = ("start_set", "test_set", "chain_starts", "chain", "select", "fit", "structure", "ensemble_chain",
           "ensemble_pick", "ensemble_cut")


class ConfigError(ValueError):
    """The campaign configuration is invalid; the message names key, value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LabelingConfig(LabelSettings):
    """The label stage's settings (:class:`tasks.label_settings.LabelSettings`: labeler, method, functional, basis,
    charge, spin, dispersion, workers, …; names checked against PySCF, or the ASE calculator class and its
    parameters, on loading) plus ``cache_dir``: the
    label cache (default: inside the campaign directory; set it to share a cache between campaigns on
    purpose), and ``cluster_cut``: label periodic candidates as open clusters cut around their uncertain atoms
    (:class:`tasks.cluster_cuts.ClusterCutSettings`, e.g. ``cluster_cut = {buffer = 4.0}``; MLIP-3, J. Chem.
    Phys. 159, 084112 (2023))."""

    cache_dir: str | None = None
    cluster_cut: ClusterCutSettings | None = None

    def label_settings(self) -> LabelSettings:
        """The settings without the campaign-only ``cache_dir`` and ``cluster_cut`` (what the label stage and its
        cache key see)."""
        return LabelSettings(**self.model_dump(exclude={"cache_dir", "cluster_cut"}))


class StoppingConfig(_Section):
    """Stop when an iteration finds no candidate above the selection threshold, when the held-out force RMSE
    (eV/Å) reaches ``force_rmse_target``, when the ensemble test set's force RMSE (eV/Å; needs
    ``[ensemble_test]``) reaches ``ensemble_force_rmse_target``, after ``max_iterations`` label rounds, or at
    ``max_labels`` labels."""

    max_iterations: int = Field(3, ge=0, le=10_000)
    max_labels: int = Field(200, ge=1)
    force_rmse_target: PositiveFloat | None = None
    ensemble_force_rmse_target: PositiveFloat | None = None
    stop_when_no_candidates: bool = True


class ExecutorConfig(_Section):
    """``kind = "default"``: Prefect's thread-pool task runner (HMC chains in threads, labels in processes).
    ``kind = "dask"``: prefect-dask's DaskTaskRunner on ``address`` (a running scheduler, e.g.
    ``tcp://10.0.0.1:8786``) or, without an address, a local cluster of ``n_workers`` processes ×
    ``threads_per_worker`` whose dashboard binds ``dashboard_address``.
    ``kind = "slurm"``: labels and HMC chains run in ``n_workers`` SLURM jobs (dask-jobqueue), the flow on the
    submitting host (:mod:`flows.slurm`). Per job: ``partition`` (default: the cluster's default partition),
    ``account``, ``cores`` (CPUs; one Dask worker running that many tasks at a time), ``memory`` (e.g. ``"4GB"``)
    and ``walltime`` (``[D-]HH:MM:SS``). Labels with at least ``big_label_basis`` basis functions (atoms for ASE
    labelers; None: no such split) run one at a time in jobs of ``big_label_cores`` CPUs with that many threads.
    A job pending longer than ``job_start_timeout_s`` s, a scheduler silent for ``scheduler_timeout_s`` s, or more
    than ``max_job_retries`` replaced jobs (killed by ``scancel``, walltime, node failure) stops the campaign
    with an error naming the setting. Unset (None): the defaults of :class:`flows.slurm.SlurmSettings` (1 core,
    2GB, 01:00:00, 4 big-label cores, 600 s, 30 s, 3 retries)."""

    kind: Literal["default", "dask", "slurm"] = "default"
    address: str | None = None
    n_workers: int = Field(2, ge=1, le=4096)
    threads_per_worker: int = Field(1, ge=1, le=256)
    dashboard_address: str | None = "127.0.0.1:0"
    partition: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    account: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    cores: int | None = Field(None, ge=1, le=1024)
    memory: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)? ?[KMGT]i?B$")
    walltime: str | None = Field(None, pattern=r"^([0-9]+-)?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]$")
    big_label_basis: int | None = Field(None, ge=1)
    big_label_cores: int | None = Field(None, ge=1, le=1024)
    job_start_timeout_s: PositiveFloat | None = None
    scheduler_timeout_s: PositiveFloat | None = None
    max_job_retries: int | None = Field(None, ge=0, le=1000)

    @model_validator(mode="after")
    def _address(self) -> ExecutorConfig:
        if self.address is not None and self.kind != "dask":
            raise ValueError("`address` is only used with kind = \"dask\"")
        slurm_only = [k for k in ("partition", "account", "cores", "memory", "walltime", "big_label_basis",
                                  "big_label_cores", "job_start_timeout_s", "scheduler_timeout_s", "max_job_retries")
                      if getattr(self, k) is not None]
        if slurm_only and self.kind != "slurm":
            raise ValueError(f"{', '.join(map(repr, slurm_only))} only apply to kind = \"slurm\"; set kind = "
                             "\"slurm\" or remove them")
        return self


class CampaignConfig(_Section):
    """A whole campaign (see the module docstring). ``systems``: one or more systems (TOML key ``system``: a
    table or an array of tables), names unique; :attr:`system` is the first (the only one of a one-system
    campaign)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field("campaign", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    seed: int = Field(0, ge=0)
    directory: str | None = None
    systems: tuple[SystemConfig, ...] = Field((SystemConfig(),), alias="system")
    potential: MTPSettings = MTPSettings()
    hmc: ExploreSettings = ExploreSettings()
    selection: SelectionSettings = SelectionSettings()
    labeling: LabelingConfig = LabelingConfig()
    ensemble_test: EnsembleTestSettings | None = None
    stopping: StoppingConfig = StoppingConfig()
    executor: ExecutorConfig = ExecutorConfig()
    production: ProductionConfig | None = None
    source_dir: str = Field(".", exclude=True, description="folder of the config file (for relative paths)")

    @field_validator("systems", mode="before")
    @classmethod
    def _table_or_array(cls, value: Any) -> Any:
        if isinstance(value, dict | SystemConfig):
            return [value]
        if isinstance(value, list | tuple) and not 1 <= len(value) <= 64:
            raise ValueError(f"give 1 to 64 systems ([[system]] tables), got {len(value)}")
        return value

    @model_validator(mode="after")
    def _budgets(self) -> CampaignConfig:
        names = [s.system_name() for s in self.systems]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"[[system]] names must be unique: {', '.join(map(repr, dup))} used more than once; "
                             "give each system its own `name`")
        n_start = sum(s.n_start for s in self.systems)
        if self.stopping.max_labels < n_start:
            raise ValueError(f"[stopping] max_labels ({self.stopping.max_labels}) is below [system] n_start "
                             f"({n_start}{' over all systems' if len(self.systems) > 1 else ''}): the starting "
                             "set alone would exceed the label budget; raise max_labels or lower n_start")
        if self.stopping.ensemble_force_rmse_target is not None and self.ensemble_test is None:
            raise ValueError("[stopping] ensemble_force_rmse_target needs an ensemble test set: add an "
                             "[ensemble_test] section (e.g. with `n_frames = 8`) or remove the target")
        return self

    @property
    def system(self) -> SystemConfig:
        """The first system (the only one of a one-system campaign)."""
        return self.systems[0]

    def system_names(self) -> list[str]:
        """The systems' names, in order (labels and samples carry them in their ``system`` variable)."""
        return [s.system_name() for s in self.systems]

    def explore_temperatures(self, k: int) -> tuple[float, ...]:
        """Exploration temperatures (K) of system ``k``: its own, else ``[hmc] temperatures``."""
        return self.systems[k].temperatures or self.hmc.temperatures

    def structure_path(self, k: int = 0) -> Path | None:
        """Absolute path of system ``k``'s ``structure`` (relative paths are taken from the config file's
        folder); None for a builtin."""
        structure = self.systems[k].structure
        if structure is None:
            return None
        p = Path(structure).expanduser()
        return p if p.is_absolute() else (Path(self.source_dir) / p).resolve()

    def campaign_dir(self, override: str | Path | None = None) -> Path:
        """The campaign directory: ``override``, else ``directory``, else ``runs/<name>`` (from the current folder)."""
        return Path(override or self.directory or Path("runs") / self.name).expanduser().resolve()

    def stream(self, purpose: str, *key: int) -> np.random.SeedSequence:
        """The random stream of one use of randomness: ``SeedSequence(seed, spawn_key=(purpose, *key))``.

        purpose: one of :data:`STREAMS` (start set, test set, chain starts, chain, select, fit); key: e.g.
        (iteration, system, start, temperature) for a chain. Distinct keys give independent streams that never
        collide, whatever the number of starts or temperatures (O'Neill's SeedSequence, NumPy ≥ 1.17)."""
        if purpose not in STREAMS:
            raise ValueError(f"unknown random stream {purpose!r}; streams are {STREAMS}")
        return np.random.SeedSequence(self.seed, spawn_key=(STREAMS.index(purpose), *(int(k) for k in key)))

    def with_overrides(self, **sections: dict) -> CampaignConfig:
        """A validated copy with some keys replaced, e.g. ``with_overrides(stopping={"max_iterations": 5})``
        (command-line overrides go through the same checks as the file). Raises :class:`ConfigError`."""
        data = self.model_dump(exclude_none=True, by_alias=True)
        for name, update in sections.items():
            data[name] = {**data.get(name, {}), **update}
        return parse_config(data, "command-line override", source_dir=self.source_dir)

    def to_toml(self) -> str:
        """The configuration as TOML text (all values explicit; ``None`` values omitted); one system is written
        as a ``[system]`` table (as campaign directories made before ``[[system]]`` hold it), several as
        ``[[system]]``."""
        data = self.model_dump(exclude_none=True, exclude={"source_dir"}, by_alias=True)
        if len(data["system"]) == 1:
            data["system"] = data["system"][0]
        return dump_toml(data)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model that holds the key at ``loc``."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is CampaignConfig and part == "system":
            model = SystemConfig
            continue
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if len(args := [a for a in typing.get_args(ann) if a is not type(None)]) == 1:  # an optional section
            ann = args[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [(f.alias or k) for k, f in model.model_fields.items() if k != "source_dir"]


def _key(loc: tuple, section: str | None = None) -> str:
    """``('hmc', 'temperatures', 0)`` → ``[hmc] temperatures[0]``; ``section`` replaces the ``[...]`` part."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    index = "".join(f"[{p}]" for p in loc if isinstance(p, int))
    if not names:
        return index
    head = section or (f"[{'.'.join(names[:-1])}]" if len(names) > 1 else "")
    return (f"{head} " if head else "") + names[-1] + index


def _system_section(loc: tuple, data: dict) -> tuple[tuple, str | None]:
    """An error inside ``system``: its location without the entry index and the section to name — ``[system]``
    for a single table, ``[[system]] #k (name)`` for an entry of an array of tables."""
    if len(loc) < 2 or loc[0] != "system" or not isinstance(loc[1], int):
        return loc, None
    entries = data.get("system")
    if isinstance(entries, dict):
        return ("system", *loc[2:]), "[system]"
    entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return ("system", *loc[2:]), f"[[system]] #{loc[1] + 1}" + (f" ({name!r})" if name else "")


def _describe(exc: ValidationError, model: type[BaseModel], where: str, data: dict | None = None) -> str:
    lines = []
    for err in exc.errors():
        loc, section = _system_section(tuple(err["loc"]), data or {})
        value = err.get("input")
        msg = " ".join(err["msg"].removeprefix("Value error, ").split())
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, loc))
            lines.append(f"unknown key {_key(loc, section)} = {value!r}; allowed keys: {allowed}")
        elif err["type"] == "missing":
            lines.append(f"missing key {_key(loc, section)}")
        elif isinstance(value, dict):  # a whole-section check
            head = section or (f"[{'.'.join(str(p) for p in loc)}]" if loc else "")
            lines.append(f"{head}: {msg}" if head else msg)
        else:
            lines.append(f"{_key(loc, section)} = {value!r}: {msg}")
    return f"{where}: " + "; ".join(lines)


def parse_config(data: dict, source: str | Path = "<config>", source_dir: str | None = None) -> CampaignConfig:
    """Validate a nested dict (as read from TOML/YAML) into a :class:`CampaignConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a table of sections, got {type(data).__name__}")
    src_dir = source_dir or (str(Path(source).resolve().parent) if Path(str(source)).exists() else ".")
    try:
        return CampaignConfig.model_validate({**data, "source_dir": src_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, CampaignConfig, str(source), data)) from None


def load_config(path: str | Path | None = None) -> CampaignConfig:
    """Read and validate a campaign file (``.toml``, ``.yaml``/``.yml``); ``None`` = the embedded default."""
    path = DEFAULT_CONFIG if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such campaign configuration: {path}")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give the campaign configuration file (TOML or YAML)")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # tomllib / yaml syntax errors → one line
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'TOML'}: "
                          f"{exc}") from None
    return parse_config(data, path)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. [labeling] parameters
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(data: dict) -> str:
    """Minimal TOML writer for a two-level dict of scalars, lists, inline tables and arrays of tables (what
    :class:`CampaignConfig` holds)."""
    def tables(v) -> bool:  # an array of tables, e.g. [[system]]
        return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, dict) for x in v)

    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and not tables(v)]
    parts = ["\n".join(top)] if top else []
    for k, v in data.items():
        if isinstance(v, dict):
            parts.append(f"[{k}]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()))
        elif tables(v):
            parts.extend(f"[[{k}]]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in x.items()) for x in v)
    return "\n\n".join(parts) + "\n"
