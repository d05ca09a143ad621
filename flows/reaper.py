"""A watchdog that takes a pesflow command's worker processes down with it, even on ``kill -9``.

A parent-death signal (``flows.server.die_with_parent``) covers the children pesflow starts itself. Worker
processes started by libraries (``ProcessPoolExecutor`` workers of the PySCF labels, Dask workers) have none:
after a ``kill -9`` of the command, idle spawned workers were found alive indefinitely, reparented to init.
:func:`watch_this_process` starts ``python -m flows.reaper PID START`` once per process, in its own session (a
Ctrl-C in the terminal does not reach it). It notes the process's descendants every second from ``/proc``; when
the process is gone (any exit: normal, exception, ``kill -9``) it sends SIGTERM to the descendants it last saw
that still run (same pid *and* start time, so a reused pid is never hit), SIGKILL after 5 s, and exits.
Standard library only, so that it starts in ~50 ms. Linux only (elsewhere :func:`watch_this_process` does
nothing)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 1.0
GRACE_S = 5.0
_started: int | None = None  # pid of the process whose watchdog runs (a forked child needs its own)


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` (clock ticks since boot, /proc/PID/stat field 22); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # from field 3 (state) on
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(pid: int, ticks: int | None) -> bool:
    """True if ``pid`` runs and is the process that started at ``ticks`` (not a reused pid)."""
    return ticks is not None and start_ticks(pid) == ticks


def descendants(root: int) -> dict[int, int]:
    """{pid: start ticks} of every running descendant of ``root`` (from the parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        ticks = start_ticks(pid)
        if ticks is not None and pid not in found:
            found[pid] = ticks
            todo.extend(children.get(pid, []))
    return found


def watch(parent: int, parent_ticks: int) -> list[int]:
    """Run until ``parent`` is gone, then end its last seen descendants; returns the pids that were signalled."""
    seen = {}
    while alive(parent, parent_ticks):
        seen = descendants(parent)
        time.sleep(POLL_S)
    hit = [p for p, t in seen.items() if alive(p, t)]
    for pid in hit:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(alive(p, seen[p]) for p in hit):
        time.sleep(0.1)
    for pid in hit:
        if alive(pid, seen[pid]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return hit


def watch_this_process() -> None:
    """Start this process's watchdog (once per process; no-op off Linux). It is started through a shell that
    exits at once, so it is no child of this process (nothing to reap, nothing left running at exit)."""
    global _started
    if _started == os.getpid() or not sys.platform.startswith("linux"):
        return
    me = os.getpid()
    subprocess.run(["/bin/sh", "-c", '"$0" -m flows.reaper "$1" "$2" </dev/null >/dev/null 2>&1 &',
                    sys.executable, str(me), str(start_ticks(me))], check=True, start_new_session=True)
    _started = me


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
