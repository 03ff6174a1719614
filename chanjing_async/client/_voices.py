"""``client.voices``: the public TTS voices."""

from __future__ import annotations

from ..models import Page, Voice, check_page
from . import _endpoints as ep
from ._resources import Resource

__all__ = ["Voices"]


class Voices(Resource):
    """Public TTS voices; a voice's ``id`` is the ``audio_man_id`` of a TTS request."""

    async def list(self, *, page: int = 1, size: int = 10) -> Page[Voice]:
        """One page of public voices."""
        check_page(page, size, size_field="size")
        return await self._api().call(
            ep.VOICES, Page[Voice], params={"page": str(page), "size": str(size)}
        )
