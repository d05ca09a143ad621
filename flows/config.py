"""Campaign configuration: one TOML (or YAML) file, validated by typed, frozen pydantic models.

Sections (every key optional; defaults give a small, cheap campaign):

``name``, ``seed``, ``directory``
``[system]``     what to learn: a built-in molecule/cluster or a structure file (any ASE format), and how the
                 labeled starting set is made (random displacements of the structure)
``[potential]``  Moment Tensor Potential: level, cutoff (Å), radial basis, fit weights
``[hmc]``        exploration: temperatures (K), samples per chain, integrator steps, time step (fs)
``[selection]``  extrapolation-grade thresholds (select above ``threshold``, stop a chain above ``break_threshold``)
                 and the per-iteration label budget
``[labeling]``   PySCF method, basis, charge, spin, dispersion, workers
``[stopping]``   iteration budget, label budget, held-out force-error target
``[executor]``   ``default`` (Prefect's thread runner; labels in local processes) or ``dask`` (prefect-dask:
                 a local cluster, or the address of a running scheduler)

Unknown keys and bad values raise :class:`ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).with_name("default_campaign.toml")


class ConfigError(ValueError):
    """The campaign configuration is invalid; the message names key, value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SystemConfig(_Section):
    """What is learned: ``builtin`` (an ASE molecule name such as ``H2O``, ``CH4``, or ``ar13`` / ``h2o-dimer``)
    or ``structure`` (a file any ASE reader understands, relative paths from the config file's folder).

    The starting set: ``n_start`` configurations made by Gaussian random displacements of standard deviation
    ``rattle`` (Å) of the structure(s), rejecting any with two atoms closer than ``min_distance`` (Å);
    ``n_test`` more make the held-out test set (0 = none), displaced by ``test_rattle`` (Å; default ``rattle``;
    larger values test the potential beyond the starting set's reach)."""

    builtin: str | None = "H2O"
    structure: str | None = None
    index: str = ":"
    n_start: int = Field(8, ge=1, le=10_000)
    n_test: int = Field(8, ge=0, le=10_000)
    rattle: float = Field(0.08, ge=0, le=1.0)
    test_rattle: float | None = Field(None, ge=0, le=1.0)
    min_distance: PositiveFloat = 0.6

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("structure") and "builtin" not in data:
            data = {**data, "builtin": None}
        return data

    @model_validator(mode="after")
    def _check_source(self) -> SystemConfig:
        if (self.builtin is None) == (self.structure is None):
            raise ValueError("give exactly one of `builtin` (e.g. \"H2O\") or `structure` (a file path)")
        return self


class PotentialConfig(_Section):
    """MTP: ``level`` (MLIP levels, even numbers 2…28), ``cutoff`` = max_dist (Å), ``min_distance`` = min_dist
    (Å; omitted: 0.95 × the smallest distance in the labels), ``radial_basis_size`` (Chebyshev polynomials),
    ``energy_weight``/``force_weight`` and ``regularization`` (L2) of the least-squares fit, ``full_fit``
    (also optimise the radial coefficients, at most ``max_iter`` L-BFGS-B iterations)."""

    level: int = Field(8, ge=2, le=28)
    cutoff: PositiveFloat = 4.0
    min_distance: PositiveFloat | None = None
    radial_basis_size: int = Field(8, ge=2, le=32)
    energy_weight: float = Field(1.0, ge=0)
    force_weight: float = Field(0.01, ge=0)
    regularization: float = Field(1e-12, ge=0)
    full_fit: bool = True
    max_iter: int = Field(200, ge=0)

    @field_validator("level")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"MTP levels are even numbers 2…28 (got {v})")
        return v

    @model_validator(mode="after")
    def _range(self) -> PotentialConfig:
        if self.min_distance is not None and self.min_distance >= self.cutoff:
            raise ValueError(f"min_distance ({self.min_distance} Å) must be smaller than cutoff ({self.cutoff} Å)")
        if self.energy_weight + self.force_weight <= 0:
            raise ValueError("energy_weight and force_weight cannot both be 0")
        return self

    def fit_arguments(self, seed: int) -> dict:
        """Keyword arguments of ``tasks.fit.fit_potential``."""
        from hmc_core.mtp.fit import FitSettings

        return {"level": self.level, "min_dist": self.min_distance, "max_dist": self.cutoff,
                "radial_basis_size": self.radial_basis_size, "full": self.full_fit, "seed": seed,
                "settings": FitSettings(energy_weight=self.energy_weight, force_weight=self.force_weight,
                                        l2=self.regularization, max_iter=self.max_iter)}


class HMCSettings(_Section):
    """Exploration: one chain per (starting structure, temperature); ``n_starts`` starting structures drawn from
    the labeled set each iteration. Temperatures in K, ``dt`` in fs, ``n_steps`` integrator steps per trajectory."""

    temperatures: list[PositiveFloat] = Field(default_factory=lambda: [300.0, 600.0], min_length=1)
    n_starts: int = Field(2, ge=1, le=1000)
    n_samples: int = Field(60, ge=1, le=1_000_000)
    n_steps: int = Field(10, ge=1, le=10_000)
    dt: PositiveFloat = 0.5
    n_warmup: int = Field(20, ge=0)
    integrator: Literal["verlet", "omelyan"] = "verlet"
    save_every: int = Field(2, ge=1)


class SelectionConfig(_Section):
    """Extrapolation grade γ (MaxVol, per atomic environment): configurations with γ > ``threshold`` are
    candidates; a chain stops at γ > ``break_threshold``; at most ``budget`` labels per iteration."""

    threshold: float = Field(2.0, ge=1.0)
    break_threshold: float = Field(10.0, ge=1.0)
    budget: int = Field(8, ge=1, le=100_000)

    @model_validator(mode="after")
    def _order(self) -> SelectionConfig:
        if self.break_threshold <= self.threshold:
            raise ValueError(f"break_threshold ({self.break_threshold}) must exceed threshold ({self.threshold})")
        return self


class LabelingConfig(_Section):
    """PySCF settings (``tasks.label_settings.LabelSettings``): ``method`` (``hf``, ``dft``, ``mp2``),
    ``functional`` for DFT, ``basis``, total ``charge``, ``spin`` (2S = N_alpha − N_beta), ``dispersion``
    (``d3bj``, ``d3zero``, ``d4`` or none), ``density_fit``, ``n_workers`` parallel processes, ``max_memory`` (MB
    per worker), ``cache_dir`` (default: inside the campaign directory; set it to share a cache between
    campaigns on purpose). Method, functional and basis names are checked against PySCF on loading."""

    method: Literal["hf", "dft", "mp2"] = "hf"
    functional: str = "pbe"
    basis: str = "sto-3g"
    charge: int = 0
    spin: int = Field(0, ge=0)
    dispersion: Literal["d3bj", "d3zero", "d4"] | None = None
    density_fit: bool = False
    n_workers: int = Field(2, ge=1, le=1024)
    max_memory: int = Field(2000, ge=100)
    cache_dir: str | None = None

    def settings_fields(self) -> dict:
        """Keyword arguments of ``LabelSettings``."""
        return self.model_dump(exclude={"cache_dir"})

    @model_validator(mode="after")
    def _check_with_pyscf(self) -> LabelingConfig:
        try:
            from tasks.label_settings import LabelSettings
        except ImportError:  # the label stage is not installed: checked when it runs
            return self
        try:
            LabelSettings(**self.settings_fields())
        except ValidationError as exc:
            raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        return self


class StoppingConfig(_Section):
    """Stop when an iteration finds no candidate above the selection threshold, when the held-out force RMSE
    (eV/Å) reaches ``force_rmse_target``, after ``max_iterations`` label rounds, or at ``max_labels`` labels."""

    max_iterations: int = Field(3, ge=0, le=10_000)
    max_labels: int = Field(200, ge=1)
    force_rmse_target: PositiveFloat | None = None
    stop_when_no_candidates: bool = True


class ExecutorConfig(_Section):
    """``kind = "default"``: Prefect's thread-pool task runner (HMC chains in threads, labels in processes).
    ``kind = "dask"``: prefect-dask's DaskTaskRunner on ``address`` (a running scheduler, e.g.
    ``tcp://10.0.0.1:8786``; for SLURM start it with dask-jobqueue) or, without an address, a local cluster of
    ``n_workers`` processes × ``threads_per_worker`` whose dashboard binds ``dashboard_address``."""

    kind: Literal["default", "dask"] = "default"
    address: str | None = None
    n_workers: int = Field(2, ge=1, le=4096)
    threads_per_worker: int = Field(1, ge=1, le=256)
    dashboard_address: str | None = "127.0.0.1:0"

    @model_validator(mode="after")
    def _address(self) -> ExecutorConfig:
        if self.address is not None and self.kind != "dask":
            raise ValueError("`address` is only used with kind = \"dask\"")
        return self


class CampaignConfig(_Section):
    """A whole campaign (see the module docstring)."""

    name: str = Field("campaign", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    seed: int = Field(0, ge=0)
    directory: str | None = None
    system: SystemConfig = SystemConfig()
    potential: PotentialConfig = PotentialConfig()
    hmc: HMCSettings = HMCSettings()
    selection: SelectionConfig = SelectionConfig()
    labeling: LabelingConfig = LabelingConfig()
    stopping: StoppingConfig = StoppingConfig()
    executor: ExecutorConfig = ExecutorConfig()
    source_dir: str = Field(".", exclude=True, description="folder of the config file (for relative paths)")

    def structure_path(self) -> Path | None:
        """Absolute path of ``system.structure`` (relative paths are taken from the config file's folder)."""
        if self.system.structure is None:
            return None
        p = Path(self.system.structure).expanduser()
        return p if p.is_absolute() else (Path(self.source_dir) / p).resolve()

    def campaign_dir(self, override: str | Path | None = None) -> Path:
        """The campaign directory: ``override``, else ``directory``, else ``runs/<name>`` (from the current folder)."""
        return Path(override or self.directory or Path("runs") / self.name).expanduser().resolve()

    def to_toml(self) -> str:
        """The configuration as TOML text (all values explicit; ``None`` values omitted)."""
        return dump_toml(self.model_dump(exclude_none=True, exclude={"source_dir"}))


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model that holds the key at ``loc``."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [k for k in model.model_fields if k != "source_dir"]


def _key(loc: tuple) -> str:
    """``('hmc', 'temperatures', 0)`` → ``[hmc] temperatures[0]``."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    index = "".join(f"[{p}]" for p in loc if isinstance(p, int))
    if not names:
        return index
    return (f"[{'.'.join(names[:-1])}] " if len(names) > 1 else "") + names[-1] + index


def _describe(exc: ValidationError, model: type[BaseModel], where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        value = err.get("input")
        msg = " ".join(err["msg"].removeprefix("Value error, ").split())
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, loc))
            lines.append(f"unknown key {_key(loc)} = {value!r}; allowed keys: {allowed}")
        elif err["type"] == "missing":
            lines.append(f"missing key {_key(loc)}")
        elif isinstance(value, dict):  # a whole-section check
            lines.append(f"[{'.'.join(str(p) for p in loc)}]: {msg}" if loc else msg)
        else:
            lines.append(f"{_key(loc)} = {value!r}: {msg}")
    return f"{where}: " + "; ".join(lines)


def parse_config(data: dict, source: str | Path = "<config>") -> CampaignConfig:
    """Validate a nested dict (as read from TOML/YAML) into a :class:`CampaignConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a table of sections, got {type(data).__name__}")
    src_dir = str(Path(source).resolve().parent) if Path(str(source)).exists() else "."
    try:
        return CampaignConfig.model_validate({**data, "source_dir": src_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, CampaignConfig, str(source))) from None


def load_config(path: str | Path | None = None) -> CampaignConfig:
    """Read and validate a campaign file (``.toml``, ``.yaml``/``.yml``); ``None`` = the embedded default."""
    path = DEFAULT_CONFIG if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such campaign configuration: {path}")
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
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(data: dict) -> str:
    """Minimal TOML writer for a two-level dict of scalars/lists (what :class:`CampaignConfig` holds)."""
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    parts = ["\n".join(top)] if top else []
    for k, v in data.items():
        if isinstance(v, dict):
            parts.append(f"[{k}]\n" + "\n".join(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()))
    return "\n\n".join(parts) + "\n"
