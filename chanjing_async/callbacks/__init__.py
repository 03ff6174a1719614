"""The callback receiver: an internet-facing HTTP endpoint that tells a manager a task ended."""

from __future__ import annotations

from ._receiver import CallbackReceiver as CallbackReceiver
from ._receiver import Verdict as Verdict

__all__ = ["CallbackReceiver", "Verdict"]
