"""Owner-only files: the settings file, key files, policy files.

A file that group or others may read, or that another user owns, is refused
before it is read, so a secret never passes through a permissive file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kaitiaki.errors import ConfigError

__all__ = [
    "check_owner_only",
    "file_problem",
    "make_owner_only_dirs",
    "read_owner_only",
    "write_owner_only",
]


def file_problem(path: Path, *, uid: int | None = None) -> str | None:
    """Why ``path`` may not hold secrets, or None when it is owner-only."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    owner = os.geteuid() if uid is None else uid
    if info.st_uid != owner:
        return (
            f"is owned by uid {info.st_uid}, not by this user (uid {owner}); "
            f"run 'chown {owner} {path}'"
        )
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"has mode {mode:04o}: readable or writable by group or others; "
            f"run 'chmod 600 {path}'"
        )
    return None


def check_owner_only(path: Path, what: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is owner-only and ours."""
    problem = file_problem(path)
    if problem is not None:
        raise ConfigError(f"{what} {path} {problem}")


def read_owner_only(path: Path, what: str) -> str:
    """The text of an owner-only file; any other file is refused unread."""
    check_owner_only(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from exc


def make_owner_only_dirs(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700."""
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        candidate.mkdir(mode=0o700, exist_ok=True)


def write_owner_only(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600, directory 0700."""
    try:
        make_owner_only_dirs(path.parent)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        scratch.replace(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc}") from exc
