"""Label worker processes die with the process that started them (``tasks.label_worker.die_with_parent``), even
when that process is SIGKILLed before any watchdog has seen the workers (issue 15 §5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from prefect_server import wait_for

PARENT = """
import multiprocessing as mp, sys, time
from tasks.label_worker import die_with_parent

def worker(path):
    die_with_parent()
    open(path, "w").write(str(__import__("os").getpid()))
    time.sleep(120)

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=worker, args=(sys.argv[1],))
    p.start()
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_worker_dies_when_its_parent_is_killed(tmp_path):
    script, marker = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(marker)], cwd=os.getcwd(),
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), 120, "the worker to start")
        worker = int(marker.read_text())
        assert _alive(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        t0 = time.monotonic()
        wait_for(lambda: not _alive(worker), 10, "the worker to die with its parent", every=0.1)
        assert time.monotonic() - t0 < 10
    finally:
        if parent.poll() is None:
            parent.kill()
