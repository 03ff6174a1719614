"""The callback receiver: an internet-facing HTTP endpoint that tells a manager a task ended.

Besides the receiver, what a relay implementation in another package needs: the
:class:`RelayLink` protocol, :func:`register_relay`, and the longest job key and task id a
callback can carry.
"""

from __future__ import annotations

from ._receiver import CallbackReceiver as CallbackReceiver
from ._receiver import Verdict as Verdict
from ._relays import RelayBackend as RelayBackend
from ._relays import RelayLink as RelayLink
from ._relays import register_relay as register_relay
from ._repeats import MAX_KEY as MAX_KEY
from ._repeats import MAX_TASK_ID as MAX_TASK_ID

__all__ = [
    "MAX_KEY",
    "MAX_TASK_ID",
    "CallbackReceiver",
    "RelayBackend",
    "RelayLink",
    "Verdict",
    "register_relay",
]
