"""pesflow's own Prefect server: one per command that runs a flow, dying with it; and the ``pesflow ui`` server.

Why not Prefect's temporary ("ephemeral") server: it is a child process that outlives a ``kill -9`` of its
parent (found alive and listening 90 s later, ~220 MB), it shares ``~/.prefect`` with every other process, and
it must answer within ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` or the command dies. Here:

* :func:`flow_server` (a context manager around every flow call of a command) uses the user's server when
  ``PREFECT_API_URL`` is set; else a live ``pesflow ui`` server of the same Prefect home (the runs then show
  in that UI); else it starts ``prefect server start --host 127.0.0.1 --port <free port> --no-ui`` with
  ``PREFECT_HOME`` = :func:`prefect_home` (``$PESFLOW_HOME/prefect``, default ``~/.pesflow/prefect``),
  waits for ``/api/health`` for up to ``PESFLOW_SERVER_START_TIMEOUT`` seconds (default 600: a slow start on a
  loaded machine is waited for, not fatal), and stops it when the block ends.
* Every server is started with a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``): it dies
  with the pesflow process, even on ``kill -9``. It runs in its own session, so a Ctrl-C in the terminal
  reaches pesflow (which then stops the server in order) and not the server directly.
* Each server is recorded in ``<prefect home>/pesflow-servers/<pid>.json`` (pid, port, parent pid and both
  start times, which guard against reused pids). On every start, records of dead servers are removed and a
  server whose parent is gone (a platform without a parent-death signal) is killed.
* Every server is hardened with what Prefect offers (:func:`hardening`): CSRF protection on, CORS limited to
  the server's own origin; ``PREFECT_SERVER_API_AUTH_STRING`` (``user:password``, basic auth), if set, passes
  through. :func:`serve_ui` runs the ``pesflow ui`` server (with the UI; a command's own server has none);
  ``kill -TERM`` / ``kill -HUP`` / Ctrl-C of ``pesflow ui`` stop its server.

Worker processes that libraries start (label workers, Dask) are ended by :mod:`flows.reaper`. Cost, measured
with ``bench/server_startup.py`` (2-core machine, load average 9-15): a command running one trivial flow took
30 s (median of 5) with its own server against 43 s with Prefect's temporary server; the first command, which
creates the database, took 65 s against 49 s (once per Prefect home).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from flows.app import UserError, console
from flows.reaper import alive, start_ticks, watch_this_process

#: Environment defaults of every command, set before Prefect is imported (the user's own values win).
ENVIRONMENT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry (offline machines log errors otherwise)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",  # any temporary server still started is waited for
    "OMP_WAIT_POLICY": "PASSIVE",  # PySCF's OpenMP threads sleep instead of spinning (2-3x faster when busy)
    "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks,hmc_core",  # stage functions log with `logging`; runs show it
}
START_TIMEOUT_VARIABLE = "PESFLOW_SERVER_START_TIMEOUT"
DEFAULT_START_TIMEOUT_S = 600.0
TERM_GRACE_S = 20.0  # after SIGTERM: time for Prefect to record the crash and for the server to stop
USER_SERVER_WAIT_S = 15.0  # a server the user named is running already: it answers at once or is wrong
_PR_SET_PDEATHSIG = 1


def configure_environment() -> None:
    """Apply :data:`ENVIRONMENT_DEFAULTS` to ``os.environ`` (values the user set are kept)."""
    for key, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def pesflow_home() -> Path:
    """``$PESFLOW_HOME`` or ``~/.pesflow``: pesflow's per-user state (its Prefect home lives below it)."""
    return Path(os.environ.get("PESFLOW_HOME") or "~/.pesflow").expanduser()


def prefect_home() -> Path:
    """The Prefect home (database, logs) of pesflow's servers: ``pesflow_home()/prefect``, not ``~/.prefect``."""
    return pesflow_home() / "prefect"


def start_timeout() -> float:
    """Seconds to wait for a server's health endpoint: ``$PESFLOW_SERVER_START_TIMEOUT`` or 600."""
    raw = os.environ.get(START_TIMEOUT_VARIABLE)
    if raw is None or raw == "":
        return DEFAULT_START_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UserError(f"{START_TIMEOUT_VARIABLE}={raw!r} is not a positive number of seconds; "
                        f"unset it (default {DEFAULT_START_TIMEOUT_S:.0f} s) or set e.g. {START_TIMEOUT_VARIABLE}=900")
    return value


# -- processes --------------------------------------------------------------------------------------------------
def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child receive ``sig`` when the process
    that starts it dies (Linux ``PR_SET_PDEATHSIG``); None where prctl is not available.

    The signal fires when the *thread* that started the child ends: start children from the main thread."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl, parent = libc.prctl, os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no imports, no allocation-heavy work
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def stop_process(proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``deadline_s``; reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the record of running servers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerRecord:
    """One running pesflow server: ``kind`` is ``"flow"`` (a command's own) or ``"ui"`` (``pesflow ui``)."""

    pid: int
    ticks: int
    port: int
    parent: int
    parent_ticks: int
    kind: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def _records_dir(home: Path) -> Path:
    return home / "pesflow-servers"


def read_records(home: Path) -> list[ServerRecord]:
    records = []
    for path in sorted(_records_dir(home).glob("*.json")):
        try:
            records.append(ServerRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)  # unreadable (a kill while writing): worthless
    return records


def write_record(home: Path, record: ServerRecord) -> Path:
    path = _records_dir(home) / f"{record.pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)
    return path


def clean_stale(home: Path) -> list[str]:
    """Forget records of dead servers and kill servers whose pesflow parent is gone; returns what was done."""
    done = []
    for r in read_records(home):
        if not alive(r.pid, r.ticks):
            done.append(f"removed the record of server {r.pid} (port {r.port}; no longer running)")
        elif not alive(r.parent, r.parent_ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.pid, signal.SIGKILL)
            done.append(f"killed stale server {r.pid} on port {r.port} (its pesflow process {r.parent} is gone)")
        else:
            continue
        (_records_dir(home) / f"{r.pid}.json").unlink(missing_ok=True)
        (_records_dir(home) / f"{r.pid}.log").unlink(missing_ok=True)
    return done


def healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def answers(api_url: str, timeout_s: float = 5.0) -> bool:
    """True if anything answers HTTP at ``api_url``/health (a 401 of an authenticated server counts)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


# -- starting a server ------------------------------------------------------------------------------------------
@dataclass
class RunningServer:
    proc: subprocess.Popen
    record: ServerRecord
    log_path: Path

    def stop(self) -> None:
        stop_process(self.proc)
        self.log_path.with_name(f"{self.record.pid}.json").unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)


def start_server(home: Path, *, port: int | None = None, ui: bool = False, env: dict[str, str] | None = None,
                 timeout_s: float | None = None) -> RunningServer:
    """Start ``prefect server start`` on 127.0.0.1 with ``PREFECT_HOME=home``, dying with this process; return it
    once ``/api/health`` answers. ``port`` None: a free port (retried if taken meanwhile). ``env``: extra
    server settings. Raises :class:`UserError` (with the server log's tail) if it exits or does not answer."""
    timeout_s = start_timeout() if timeout_s is None else timeout_s
    _records_dir(home).mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        chosen = port or free_port()
        server_env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
        server_env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                           "PREFECT_SERVER_UI_ENABLED": str(ui).lower(), **hardening(chosen), **(env or {})})
        log_path = _records_dir(home) / f"starting-{os.getpid()}-{chosen}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                     "--port", str(chosen), "--ui" if ui else "--no-ui"],
                                    env=server_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent())
        record = ServerRecord(proc.pid, start_ticks(proc.pid) or 0, chosen, os.getpid(),
                              start_ticks(os.getpid()) or 0, "ui" if ui else "flow")
        final_log = log_path.with_name(f"{proc.pid}.log")
        log_path.replace(final_log)
        write_record(home, record)
        server = RunningServer(proc, record, final_log)
        try:
            if _wait_healthy(server, timeout_s):
                return server
        except BaseException:
            server.stop()
            raise
        text = final_log.read_text(errors="replace")
        server.stop()
        if "already in use" in text and port is None and attempt < 2:
            continue  # the free port was taken between the check and the bind
        raise UserError(f"the Prefect server (port {chosen}, PREFECT_HOME {home}) exited with code "
                        f"{proc.returncode} while starting: {_tail(text)}")
    raise AssertionError("unreachable")


def _wait_healthy(server: RunningServer, timeout_s: float) -> bool:
    """True once the server answers; False if it exited; UserError after ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if server.proc.poll() is not None:
            return False
        if healthy(server.record.api_url):
            return True
        time.sleep(0.25)
    raise UserError(f"the Prefect server on port {server.record.port} did not answer within {timeout_s:.0f} s "
                    f"(log: {_tail(server.log_path.read_text(errors='replace'))}); on a very loaded machine raise "
                    f"{START_TIMEOUT_VARIABLE}, or start one server (`pesflow ui`) and let the commands use it")


def _tail(text: str, n: int = 600) -> str:
    text = " ".join(text.split())
    return text[-n:] if text else "(no output)"


@contextlib.contextmanager
def _api_url(url: str, has_ui: bool = True) -> Iterator[None]:
    """Point this process (Prefect settings) and its children (environment) at ``url`` for the block; at its
    end, send what Prefect still queues (logs, events) there. ``has_ui`` False: no "View at <UI link>" lines
    (they would point at a server without UI that stops with the command)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url, **({} if has_ui else {PREFECT_UI_URL: ""})}):
            try:
                yield
            finally:
                _drain_prefect_workers()
    finally:
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old


@contextlib.contextmanager
def flow_server(announce: bool = True) -> Iterator[str]:
    """The Prefect API for the flow runs of one command (yields its URL); see the module docstring.

    Enter it from the main thread (the server's parent-death signal is bound to the starting thread). Inside,
    SIGTERM ends the command like Ctrl-C does: the flow run is marked Crashed and the server stopped in order
    (exit status 143; a command still running :data:`TERM_GRACE_S` seconds later exits at once)."""
    with _sigterm_as_exit(), _flow_server(announce) as url:
        yield url


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) in the main thread for the block (where SIGTERM has its default action)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def on_term(signum, frame):
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        deadline = threading.Timer(TERM_GRACE_S, os._exit, args=(128 + signum,))
        deadline.daemon = True
        deadline.start()  # worker threads still busy with a task must not keep the command alive
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _flow_server(announce: bool) -> Iterator[str]:
    configure_environment()
    watch_this_process()  # worker processes (labels, Dask) die with the command too
    if os.environ.get("PREFECT_API_URL"):
        url = os.environ["PREFECT_API_URL"].rstrip("/")
        t0 = time.monotonic()
        while not answers(url):
            if time.monotonic() - t0 > USER_SERVER_WAIT_S:
                raise UserError(f"PREFECT_API_URL={url} does not answer (no {url}/health within "
                                f"{USER_SERVER_WAIT_S:.0f} s): start that server (e.g. `pesflow ui`), or unset "
                                "PREFECT_API_URL and pesflow starts its own")
            time.sleep(0.5)
        yield url
        return
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    for line in clean_stale(home):
        console.print(f"[dim]{line}[/]")
    ui = next((r for r in read_records(home) if r.kind == "ui" and healthy(r.api_url)), None)
    if ui is not None:
        if announce:
            console.print(f"[dim]Prefect: the pesflow ui server at {ui.api_url}[/]")
        with _api_url(ui.api_url):
            yield ui.api_url
        return
    t0 = time.perf_counter()
    server = start_server(home)
    try:
        if announce:
            console.print(f"[dim]Prefect: own server at {server.record.api_url} (PREFECT_HOME {home}, started in "
                          f"{time.perf_counter() - t0:.1f} s; stops with this command)[/]")
        with _api_url(server.record.api_url, has_ui=False):
            yield server.record.api_url
    finally:
        server.stop()


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send the logs and events Prefect still queues in this process before their server stops (otherwise:
    "Error logging to API: All connection attempts failed" at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        chatty = logging.getLogger(worker.__name__)  # "Still processing items: 1 items remaining..." is expected
        level = chatty.level
        chatty.setLevel(logging.ERROR)
        try:
            worker.drain_all(timeout=timeout_s)
        except Exception as exc:  # a failed drain loses log lines, never the command's result
            console.print(f"[dim]Prefect {worker.__name__} not drained: {exc}[/]")
        finally:
            chatty.setLevel(level)


# -- pesflow ui -------------------------------------------------------------------------------------------------
def hardening(port: int) -> dict[str, str]:
    """Settings of every pesflow server: CSRF protection on, CORS limited to the server's own origin
    ``http://127.0.0.1:PORT`` (Prefect's defaults: off and ``*``); the UI's API URL on that origin."""
    origin = f"http://127.0.0.1:{port}"
    return {"PREFECT_UI_API_URL": f"{origin}/api", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
            "PREFECT_SERVER_CORS_ALLOWED_ORIGINS": origin}


class _Stop(Exception):
    pass


def serve_ui(port: int, home: Path | None = None) -> int:
    """Run the hardened Prefect server + UI on 127.0.0.1:``port`` until Ctrl-C, SIGTERM or SIGHUP; returns 0."""
    configure_environment()
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    home = (home or prefect_home()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    for line in clean_stale(home):
        console.print(f"[dim]{line}[/]")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UserError(f"port {port} on 127.0.0.1 is in use (another `pesflow ui` or Prefect server?); "
                            "stop it or choose another with --port") from None

    def on_signal(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    server = None
    try:
        console.print(f"starting the Prefect server (PREFECT_HOME {home}) …")
        server = start_server(home, port=port, ui=True)
        auth = " (basic auth: PREFECT_SERVER_API_AUTH_STRING)" if os.environ.get("PREFECT_SERVER_API_AUTH_STRING") \
            else ""
        console.print(f"Prefect UI: http://127.0.0.1:{port}{auth}; pesflow commands with the same PESFLOW_HOME "
                      f"report to it; other clients: export PREFECT_API_URL=http://127.0.0.1:{port}/api. "
                      "Ctrl-C stops it.")
        server.proc.wait()
        console.print(f"the Prefect server exited with code {server.proc.returncode}")
        return int(server.proc.returncode or 0)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        if server is not None:
            server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
