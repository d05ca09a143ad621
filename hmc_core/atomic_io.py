"""Durable atomic file writes and the clean-up of what a killed writer leaves behind (standard library only).

:func:`atomic_target` is the one way pesflow replaces a file: the content goes to a temporary file in the
same folder, which is flushed to disk (``fsync``), given the mode a plain ``open`` would give it (``0o666``
less the user's umask; ``tempfile.mkstemp`` alone creates ``0o600``, unreadable to colleagues), renamed over
the target (``os.replace``, atomic on POSIX) and the folder is ``fsync``-ed so the rename itself survives a
power cut. Readers therefore see the old file or the new one, never half of one.

A writer killed between creating and renaming leaves its temporary file. Its name records the writer,
``.<target name>~<host>~<pid>~<random>.tmp``, so :func:`remove_stale_temporaries` can remove exactly those
whose writer is gone: on this host a process that no longer exists (or is a zombie), on any host a file
older than ``max_age`` seconds (default one hour; a label or dataset write takes milliseconds to seconds).
The files of live writers (other worker processes labeling into the same cache) are left alone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STALE_AGE_S = 3600.0  # a temporary file this old (s) is stale whoever wrote it
_TMP_SUFFIX = ".tmp"
_SEP = "~"


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(old)
    return old


def default_file_mode() -> int:
    """Permission bits a plain ``open(path, "w")`` would give a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def _host() -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname()) or "host"


def fsync_directory(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename is still atomic
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it becomes ``path`` durably and atomically.

    Write the whole content to the yielded path (by name or by opening it). On an exception the temporary
    file is removed and ``path`` is untouched. The new file gets mode ``0o666 & ~umask``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}{_SEP}{_host()}{_SEP}{os.getpid()}{_SEP}"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        try:
            os.fchmod(fd, default_file_mode())
        finally:
            os.close(fd)
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the content is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def _writer(name: str) -> tuple[str, int] | None:
    """(host, pid) of the writer recorded in a temporary file's name, or None for other names."""
    if not (name.startswith(".") and name.endswith(_TMP_SUFFIX)):
        return None
    parts = name[: -len(_TMP_SUFFIX)].rsplit(_SEP, 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (a killed child not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: str | os.PathLike, max_age: float = STALE_AGE_S) -> list[Path]:
    """Remove temporary files in ``folder`` left by dead writers (see the module docstring); returns them.

    A file is stale when its writer ran on this host and is gone, or when it is older than ``max_age`` s
    (writers on other hosts, names without a writer, process ids reused since). Nothing else is touched.
    """
    removed = []
    host, now = _host(), time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX)) or not entry.is_file():
            continue
        writer = _writer(entry.name)
        try:
            old = now - entry.stat().st_mtime > max_age
        except FileNotFoundError:
            continue  # renamed by its writer meanwhile
        dead = writer is not None and writer[0] == host and writer[1] != os.getpid() and not process_alive(writer[1])
        if old or dead:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
