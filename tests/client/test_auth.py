"""Tokens: one fetch for many callers, early refresh, one forced refresh on 10400, no races."""

from __future__ import annotations

import logging

import anyio
import pytest

from chanjing_async import AsyncChanjingClient, AuthenticationError
from chanjing_async.emulator import EmulatorServer, Fault
from tests.support import SECRET_KEY, emulator_settings, make_client

pytestmark = pytest.mark.anyio


def stats(emulator: EmulatorServer) -> dict[str, int]:
    data = emulator.state.stats()
    return {
        "tokens": data["tokens_issued"],
        "token_calls": data["endpoints"]["access_token"]["requests"],
        "voices": data["endpoints"]["voices"]["requests"],
        "voice_errors": data["endpoints"]["voices"]["errors"],
    }


async def test_concurrent_first_calls_share_one_token(
    client: AsyncChanjingClient, emulator: EmulatorServer
) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(client.voices.list)
    assert stats(emulator)["tokens"] == 1
    assert client.token_refreshes == 1


async def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    client: AsyncChanjingClient, emulator: EmulatorServer
) -> None:
    await client.voices.list()
    emulator.inject(Fault(endpoint="voices", kind="code", code=10400, msg="AccessToken已失效"))
    assert (await client.voices.list()).items
    assert stats(emulator) == {"tokens": 2, "token_calls": 2, "voices": 3, "voice_errors": 1}


@pytest.mark.parametrize("code", [10400, 10401])
async def test_a_second_refusal_raises_authentication_error(
    client: AsyncChanjingClient, emulator: EmulatorServer, code: int
) -> None:
    emulator.inject(Fault(endpoint="voices", kind="code", code=code, count=2))
    with pytest.raises(AuthenticationError) as caught:
        await client.voices.list()
    assert caught.value.code == code
    assert stats(emulator)["tokens"] == 2
    assert stats(emulator)["voices"] == 2


async def test_many_callers_refused_together_trigger_a_single_refresh(
    client: AsyncChanjingClient, emulator: EmulatorServer
) -> None:
    await client.voices.list()
    # Invalidate the client's token behind its back, as another process fetching one would.
    async with make_client(emulator.base_url) as other:
        await other.voices.list()
    async with anyio.create_task_group() as group:
        for _ in range(15):
            group.start_soon(client.voices.list)
    # One token each for the two clients, plus exactly one refresh for the 15 refused calls.
    assert stats(emulator)["tokens"] == 3
    assert client.token_refreshes == 2


@pytest.mark.parametrize("offset", [0.0, -600.0, 600.0])
async def test_a_token_is_renewed_early_without_ever_being_refused(offset: float) -> None:
    # Tokens live 120 s at real scale: 2 s here, announced as an expire_in truncated to whole
    # seconds, so the client sees 1-2 s of life and renews 0.9 s early (at most half of it):
    # at the latest 1.1 s after issue, while the server still accepts the old token.
    # With the server's clock ten minutes off, expire_in (absolute, server time) is turned
    # into our time with the offset its Date headers show, so the token is renewed early all
    # the same, instead of being taken for a lifetime (behind) or kept too long (ahead).
    settings = emulator_settings(token_ttl_seconds=120, clock_offset_seconds=offset)
    async with (
        EmulatorServer(settings) as emulator,
        make_client(emulator.base_url, token_refresh_early=0.9) as client,
    ):
        await client.voices.list()
        await anyio.sleep(1.15)
        await client.voices.list()
        assert stats(emulator)["tokens"] == 2
        assert stats(emulator)["voice_errors"] == 0


async def test_an_expired_token_is_replaced_before_sending() -> None:
    # refresh_early=0: the client trusts expire_in to the second (an absolute Unix time).
    async with (
        EmulatorServer(emulator_settings(token_ttl_seconds=60)) as emulator,
        make_client(emulator.base_url, token_refresh_early=0) as client,
    ):
        await client.voices.list()
        await anyio.sleep(1.05)  # past the 1 s lifetime
        assert (await client.voices.list()).items
        assert stats(emulator)["tokens"] == 2
        assert stats(emulator)["voice_errors"] == 0


async def test_secrets_stay_out_of_logs_and_errors(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chanjing_async")
    async with make_client(emulator.base_url) as client:
        emulator.inject(Fault(endpoint="voices", kind="code", code=10400, count=2))
        with pytest.raises(AuthenticationError) as caught:
            await client.voices.list()
        token = emulator.state.current_token()
    text = caplog.text + str(caught.value) + repr(caught.value) + repr(client)
    assert caplog.records
    assert SECRET_KEY not in text
    assert token is not None
    assert token not in text
