"""Secrets given to the ``chanjing`` command: from standard input, and warnings.

A secret on the command line (``--secret-key VALUE``, a ``--redis-url`` holding a password)
is visible to every user of the machine (``ps``, ``/proc/<pid>/cmdline``), lands in shell
history and is printed by CI systems that echo their commands. Such options still work, with
one warning line on stderr naming the safer ways:

- the environment: ``CHANJING_SECRET_KEY``, ``CHANJING_REDIS_URL``;
- ``~/.chanjing/config.json``, readable by its owner only (a file open to group or others
  is used, with a warning saying ``chmod 600``);
- standard input: ``--secret-key -`` reads one line (on a terminal: a prompt without echo).
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FROM_STDIN", "command_line_warnings", "config_file_warning", "read_secret_key"]

FROM_STDIN = "-"
"""The ``--secret-key`` value that reads the key from standard input."""

_SAFER = (
    "use CHANJING_SECRET_KEY, ~/.chanjing/config.json (chmod 600) or --secret-key - "
    "(reads standard input)"
)


def command_line_warnings(*, secret_key: str | None, redis_url: str | None) -> list[str]:
    """The warnings for secrets given on the command line (``redis_url``: as typed there)."""
    found = []
    if secret_key and secret_key != FROM_STDIN:
        found.append(
            "warning: --secret-key on the command line is visible to other users (ps) and in "
            f"shell history and CI logs; {_SAFER}"
        )
    if redis_url and _has_credentials(redis_url):
        found.append(
            "warning: --redis-url holds credentials, visible to other users (ps) and in shell "
            "history and CI logs; set CHANJING_REDIS_URL instead"
        )
    return found


def _has_credentials(url: str) -> bool:
    """``url`` names a user or a password (``redis://:pw@host``, ``?password=pw``), or may
    (it does not parse; the command then refuses it, see ``_redis.check_url``)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # its message quotes the URL: not kept, not shown
        return True
    names = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return "@" in parts.netloc or bool(names & {"password", "username"})


def read_secret_key() -> str:
    """The secret key from standard input: its first line (a prompt without echo on a
    terminal), surrounding whitespace removed.

    Raises:
        ConfigurationError: standard input is closed or its first line is empty.
    """
    if sys.stdin is None:
        raise ConfigurationError("--secret-key -: there is no standard input to read it from")
    if sys.stdin.isatty():
        try:
            line = getpass.getpass("secret key: ")
        except EOFError:
            line = ""
    else:
        line = sys.stdin.readline()
    key = line.strip()
    if not key:
        raise ConfigurationError(
            "--secret-key -: standard input gave no secret key (its first line is empty)"
        )
    return key


def config_file_warning(path: Path, mode: int) -> str | None:
    """The warning for a config file that group or others may read or change, else None."""
    if os.name == "nt" or not mode & 0o077:
        return None
    return (
        f"warning: {path} is open to group or others (mode {stat.S_IMODE(mode):04o}) and "
        f"may hold the secret key; make it yours alone: chmod 600 {path}"
    )
