"""Prefect deployments of pesflow, defined in Python (``pesflow deploy`` calls :func:`register`).

* ``active-learning/nightly-continuation``: every night (cron ``0 2 * * *``, local time of the server) the
  campaign in ``directory`` continues by one more label round (``more_iterations = 1``); a campaign that
  converged stays converged.
* ``active-learning/on-demand``: no schedule; start it from the UI ("Run") or ``prefect deployment run``.

Both run on a **process work pool** (created if missing): the worker starts each flow run as a local
subprocess in this project folder (``flow.from_source(<project folder>, entrypoint)``: the code is read from
here, nothing is pushed). Start a worker with ``prefect worker start --pool pesflow-process``.
``deployments/prefect.yaml`` declares the same deployments for ``prefect deploy --all``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/active_learning.py:active_learning"
NIGHTLY_CRON = "0 2 * * *"
DEFAULT_POOL = "pesflow-process"


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
             directory: str | Path | None = None, more_iterations: int = 1) -> dict[str, str]:
    """Register the deployments on the server named by ``PREFECT_API_URL``; returns {name: deployment id}.

    config_path: campaign config (default: the embedded default); directory: the campaign directory the
    nightly run continues (default: ``<project>/runs/<campaign name>``).
    """
    from flows.active_learning import active_learning
    from flows.config import load_config

    cfg = load_config(config_path)
    config_arg = str(Path(config_path).resolve()) if config_path else None
    campaign_dir = str(Path(directory).resolve()) if directory else str(ROOT / "runs" / cfg.name)
    ensure_work_pool(pool)
    flow = active_learning.from_source(source=str(ROOT), entrypoint=ENTRYPOINT)
    ids = {}
    ids["nightly-continuation"] = str(flow.deploy(
        name="nightly-continuation", work_pool_name=pool, cron=cron or NIGHTLY_CRON,
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
    args = parser.parse_args()
    for name, dep in register(args.pool, args.cron, args.config, args.dir).items():
        print(f"{name}: {dep}")
