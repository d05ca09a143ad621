"""Prefect deployments of pesflow, defined in Python (``pesflow deploy`` calls :func:`register`).

* ``active-learning/nightly-continuation``: every night (cron ``0 2 * * *``) the campaign in ``directory``
  continues by one more label round (``more_iterations = 1``); a campaign that converged stays converged.
  The schedule carries an explicit IANA time zone (``timezone``; default: this machine's local zone, found
  with ``tzlocal``, UTC when it cannot be determined): a cron without one runs at 02:00 **UTC** in Prefect.
* ``active-learning/on-demand``: no schedule; start it from the UI ("Run") or ``prefect deployment run``.

Both run on a **process work pool** (created if missing): the worker starts each flow run as a local
subprocess in this project folder (``flow.from_source(<project folder>, entrypoint)``: the code is read from
here, nothing is pushed). Start a worker with ``prefect worker start --pool pesflow-process``.
``deployments/prefect.yaml`` declares the same deployments for ``prefect deploy --all``.

On a SLURM cluster (``[executor] kind = "slurm"`` in the campaign file given as ``config``; :mod:`flows.slurm`):
the worker runs on the login node (it needs ``sbatch``), so do the flow runs it starts; they submit the labels
and HMC chains as SLURM jobs, whose Dask workers run on the compute nodes and report to the same Prefect server
(which both must reach). Register with ``pesflow deploy --config cluster.toml --dir runs/x --pool pesflow-login``
and start ``prefect worker start --pool pesflow-login`` on the login node.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/active_learning.py:active_learning"
NIGHTLY_CRON = "0 2 * * *"
DEFAULT_POOL = "pesflow-process"


class TimezoneError(ValueError):
    """A time zone name that is not an IANA zone this machine knows."""


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Berlin``, ``UTC``); else :class:`TimezoneError`."""
    name = name.strip()
    try:
        if not name or os.path.isabs(name):
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimezoneError(f"unknown time zone {name!r}: give an IANA name such as 'Europe/Berlin', "
                            "'America/New_York' or 'UTC' (all names: python -c \"import zoneinfo; "
                            "print(sorted(zoneinfo.available_timezones()))\")") from None
    return name


def local_timezone() -> tuple[str, str]:
    """This machine's IANA time zone and how it was found: ``(name, note)``.

    Uses ``tzlocal`` (``TZ``, /etc/timezone, /etc/localtime); falls back to ``"UTC"`` with a note saying so.
    """
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception as exc:  # tzlocal raises on inconsistent or missing zone settings
        return "UTC", f"the machine's time zone could not be determined ({exc}); using UTC (pass --timezone)"
    if not name:
        return "UTC", "the machine's time zone could not be determined; using UTC (pass --timezone)"
    try:
        return check_timezone(name), "the machine's local zone"
    except TimezoneError:
        return "UTC", f"the machine's time zone {name!r} is not an IANA name; using UTC (pass --timezone)"


def schedule_timezone(timezone: str | None) -> tuple[str, str]:
    """The zone of the nightly schedule and its origin: ``timezone`` (validated) or the local zone."""
    if timezone is not None:
        return check_timezone(timezone), "given with --timezone"
    return local_timezone()


def ensure_work_pool(name: str) -> None:
    """Create the process work pool ``name`` on the current Prefect server unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def register(pool: str = DEFAULT_POOL, cron: str | None = None, config_path: str | Path | None = None,
             directory: str | Path | None = None, more_iterations: int = 1,
             timezone: str | None = None) -> dict[str, str]:
    """Register the deployments on the server named by ``PREFECT_API_URL``; returns {name: deployment id}.

    config_path: campaign config (default: the embedded default); directory: the campaign directory the
    nightly run continues (default: ``<project>/runs/<campaign name>``); timezone: IANA zone of the cron
    schedule (default: :func:`local_timezone`).
    """
    from prefect.schedules import Cron

    from flows.active_learning import active_learning
    from flows.config import load_config

    zone, _ = schedule_timezone(timezone)

    cfg = load_config(config_path)
    config_arg = str(Path(config_path).resolve()) if config_path else None
    campaign_dir = str(Path(directory).resolve()) if directory else str(ROOT / "runs" / cfg.name)
    ensure_work_pool(pool)
    flow = active_learning.from_source(source=str(ROOT), entrypoint=ENTRYPOINT)
    ids = {}
    ids["nightly-continuation"] = str(flow.deploy(
        name="nightly-continuation", work_pool_name=pool,
        schedules=[Cron(cron or NIGHTLY_CRON, timezone=zone)],
        parameters={"config_path": config_arg, "directory": campaign_dir, "more_iterations": more_iterations},
        description="Continue the campaign by one label round every night.", tags=["pesflow", "nightly"],
        print_next_steps=False))
    ids["on-demand"] = str(flow.deploy(
        name="on-demand", work_pool_name=pool,
        parameters={"config_path": config_arg, "directory": campaign_dir},
        description="Run or resume the campaign now.", tags=["pesflow"], print_next_steps=False))
    return ids


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=DEFAULT_POOL)
    parser.add_argument("--cron", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--timezone", default=None, help="IANA zone of the cron (default: the machine's)")
    args = parser.parse_args()
    for name, dep in register(args.pool, args.cron, args.config, args.dir, timezone=args.timezone).items():
        print(f"{name}: {dep}")
