"""Small helpers shared by the benchmark scripts: LAMMPS runs and JSON output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path


def find_lammps() -> str | None:
    """Path of the LAMMPS executable (Debian's ``lmp``), or None when not installed."""
    return shutil.which("lmp") or shutil.which("lmp_serial")


def lj_fcc_setup(n_cells: int, density: float, temperature: float, cutoff: float) -> str:
    """LAMMPS input lines for an FCC Lennard-Jones box in reduced units (as in LAMMPS' ``in.lj``)."""
    return textwrap.dedent(f"""
        units lj
        atom_style atomic
        lattice fcc {density}
        region box block 0 {n_cells} 0 {n_cells} 0 {n_cells}
        create_box 1 box
        create_atoms 1 box
        mass 1 1.0
        velocity all create {temperature} 87287 loop geom
        pair_style lj/cut {cutoff}
        pair_coeff 1 1 1.0 1.0 {cutoff}
    """)


def run_lammps(lmp: str, script: str) -> tuple[list[tuple[float, int, int]], str]:
    """Run ``script`` on one thread; returns [(loop seconds, steps, atoms)] per ``run`` and the log text."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.lmp").write_text(script)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        out = subprocess.run([lmp, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none"], cwd=tmp, env=env,
                             capture_output=True, text=True, check=False)
        log_path = Path(tmp) / "log.lammps"
        log = log_path.read_text() if log_path.exists() else out.stdout + out.stderr
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", log)
    return [(float(s), int(n), int(a)) for s, n, a in loops], log


def write_json(path: Path | None, figures: dict) -> None:
    """Write the benchmark's figures to ``path`` (folders created) when a path is given."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {path}")
