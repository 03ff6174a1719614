"""``JobManagerStats``: what a JobManager has done, as counters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._poller import PollStats
    from ._submit import SubmitStats

__all__ = ["JobManagerStats"]


@dataclass
class JobManagerStats:
    """Counters of a manager: creates, polling, uploads and callbacks.

    Attributes:
        submit: creates sent, refused, requeued and reconciled.
        poll: list pages and detail reads.
        uploads: files uploaded (content shared by several jobs counts once).
        callbacks: callback requests by outcome (see ``CallbackReceiver.outcomes``).
    """

    submit: SubmitStats
    poll: PollStats
    uploads: int = 0
    callbacks: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain data, nested stats included: ready for ``json.dumps``.

        Example: ``{"submit": {"sent": 12, ...}, "poll": {"list_calls": 3, ...},
        "uploads": 2, "callbacks": {"accepted": 12}}``.
        """
        return dataclasses.asdict(self)
