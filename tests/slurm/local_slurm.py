"""A private one-node SLURM for tests and benches: :func:`local_slurm` runs ``tests/slurm/start.sh`` into a fresh
state directory, points ``SLURM_CONF`` at it for the block, and runs ``tests/slurm/stop.sh`` at the end (it stops
exactly the daemons it started). Helpers read the job completion log (``sacct --completion``) and ``squeue``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_FIX = ("install the Debian packages as root: `apt-get install slurm-wlm munge` (.ci/run does), or run "
               "`PESFLOW_SLURM_INSTALL=1 tests/slurm/start.sh`")
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "sacct")


def slurm_missing() -> str | None:
    """Why a local SLURM cannot start here (None: it can): missing binaries or not root."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    absent = [b for b in DAEMONS if shutil.which(b, path=path) is None]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} not found)"
    if os.geteuid() != 0:
        return "the local SLURM (munged, slurmctld, slurmd) must be started as root"
    return None


@contextlib.contextmanager
def local_slurm(base: str | os.PathLike | None = None):
    """Start the private SLURM; yields its state directory (``slurm.conf``, ``log/``) with ``SLURM_CONF`` set. The
    directory is made in ``base`` and kept (logs) when a base is given, else made in the system's temporary folder
    and removed at the end."""
    state = Path(tempfile.mkdtemp(prefix="pesflow-slurm.", dir=base))
    proc = subprocess.run([str(HERE / "start.sh"), str(state)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"tests/slurm/start.sh failed: {proc.stderr.strip()[-2000:]}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    try:
        yield state
    finally:
        subprocess.run([str(HERE / "stop.sh"), str(state), *([] if base else ["--remove"])], capture_output=True,
                       text=True, timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def finished_jobs(name: str | None = None) -> list[dict]:
    """Finished jobs from the job completion log (``sacct --completion``): JobID, JobName, State, Partition,
    NCPUS (as text); only those named ``name`` when given."""
    fields = ["JobID", "JobName", "State", "Partition", "NCPUS"]
    out = subprocess.run(["sacct", "--completion", "-n", "-P", "-o", ",".join(fields)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    rows = [dict(zip(fields, line.split("|"), strict=False)) for line in out.splitlines() if line.strip()]
    return [r for r in rows if name is None or r["JobName"] == name]


def running_jobs(name: str) -> list[str]:
    """Ids of the running jobs named ``name`` (``squeue``)."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return out.split()
