"""Resident memory of this process, from Linux's ``/proc/self/status``.

``reset_peak()`` sets the kernel's high-water mark (``VmHWM``) back to the current resident
size (``echo 5 > /proc/self/clear_refs``), so ``peak()`` afterwards is the highest resident
size since the reset: what a piece of work added, without sampling.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def available() -> bool:
    """Whether this system can measure and reset the peak (Linux with ``/proc``)."""
    try:
        reset_peak()
    except OSError:
        return False
    return True


def reset_peak() -> None:
    """Start a new peak at the current resident size.

    Raises:
        OSError: not Linux, or ``/proc`` is not writable.
    """
    _CLEAR_REFS.write_text("5")


def _status_bytes(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise OSError(f"{_STATUS} has no {field}")


def current() -> int:
    """The resident size now, in bytes."""
    return _status_bytes("VmRSS")


def peak() -> int:
    """The highest resident size since the last :func:`reset_peak`, in bytes."""
    return _status_bytes("VmHWM")
