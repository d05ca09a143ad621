"""A real two-iteration campaign (HF/STO-3G water, PySCF labels, MTP level 6, HMC, MaxVol selection) run once
per pytest session through ``pesflow run`` and shared by the tests that read its files (plots, units,
artifacts). About 50 s on 2 cores, most of it the Prefect server start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_campaign import TINY

BIN = Path(sys.executable).parent


def tiny_campaign(tmp_path_factory, name: str = "tiny") -> Path:
    """The directory of a finished tiny campaign (1 label round, 2 iterations), made on first use."""
    root = tmp_path_factory.getbasetemp() / f"shared-campaign-{name}"
    directory = root / "campaign"
    if (directory / "DONE.json").exists():
        return directory
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / f"{name}.toml"
    cfg.write_text(TINY.format(name=name, iterations=1, executor="default", workers=1))
    env = {**os.environ, "PESFLOW_HOME": str(root / "home")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "pesflow"), "run", str(cfg), "--dir", str(directory), "--no-plots"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return directory
