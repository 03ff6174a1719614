"""What the resources of a client (``client.files``, ``client.lip_sync``, ``client.voices``)
share: the open client's :class:`Api`, response parsing and the checks of their arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidInputError, ResponseValidationError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ._auth import TokenProvider
    from ._downloads import DownloadPolicy
    from ._endpoints import Endpoint
    from ._transport import Transport

M = TypeVar("M", bound=BaseModel)

# Buckets the lip-sync create accepts, with the formats its documentation lists for each.
LIP_SYNC_FORMATS: dict[str, frozenset[str]] = {
    "lip_sync_video": frozenset({".mp4", ".mov", ".webm"}),
    "lip_sync_audio": frozenset({".mp3", ".m4a", ".wav"}),
}


@dataclass(frozen=True)
class Api:
    """What a resource needs from an open client."""

    transport: Transport
    auth: TokenProvider
    downloads: DownloadPolicy

    async def call(
        self,
        endpoint: Endpoint,
        model: type[M],
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> M:
        """Call ``endpoint`` and parse its ``data`` as ``model``."""
        data = await self.transport.call(endpoint, params=params, json=json, auth=self.auth)
        return parse(endpoint, model, data)


def parse(endpoint: Endpoint, model: type[M], data: Any) -> M:
    """Validate a response's ``data``; the error names fields and rules, never values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'data'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
    # Raised outside the except block, with ``data`` dropped: a tracker recording this frame's
    # locals or the chained ValidationError would otherwise see the body (a token answer).
    data = None
    raise ResponseValidationError(endpoint.path, problems)


class Resource:
    """A resource of a client: it reaches the open client's :class:`Api` through ``api``."""

    def __init__(self, api: Callable[[], Api]) -> None:
        self._api = api


def unreadable(path: Path, exc: OSError) -> InvalidInputError:
    """The error for a local file that cannot be read (gone, a folder, no permission)."""
    reason = exc.strerror or type(exc).__name__
    return InvalidInputError("path", str(path), f"must be a readable file ({reason})")


def require_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field, value, "must be a non-empty string")
    return value
