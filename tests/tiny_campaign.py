"""A real two-iteration campaign (HF/STO-3G water, PySCF labels, MTP level 6, HMC, MaxVol selection) run once
per pytest session through ``pesflow run`` and shared by the tests that read its files (plots, units,
artifacts). About 50 s on 2 cores, most of it the Prefect server start."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from test_campaign import TINY

BIN = Path(sys.executable).parent


def tiny_campaign(tmp_path_factory, name: str = "tiny") -> Path:
    """The directory of a finished tiny campaign (1 label round, 2 iterations), made on first use; pytest-xdist
    workers share it (the first makes it under a lock, the others wait)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, common to all workers
    root = base / f"shared-campaign-{name}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _make(root, name)


def _make(root: Path, name: str) -> Path:
    directory = root / "campaign"
    if (directory / "DONE.json").exists():
        return directory
    cfg = root / f"{name}.toml"
    cfg.write_text(TINY.format(name=name, iterations=1, executor="default", workers=1))
    env = {**os.environ, "PESFLOW_HOME": str(root / "home")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "pesflow"), "run", str(cfg), "--dir", str(directory), "--no-plots"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return directory
