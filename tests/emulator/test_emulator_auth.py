"""The emulator's access tokens: issue, supersede, expire, refuse and revoke."""

from __future__ import annotations

import re
import time

import anyio
import pytest

from tests.support import APP_ID, SECRET_KEY
from tests.support.emulator_helpers import DETAIL, Api, detail_codes, running

pytestmark = pytest.mark.anyio


async def test_token_is_issued_with_an_absolute_expiry(api: Api) -> None:
    payload = await api.login()
    token, expire_in = payload["data"]["access_token"], payload["data"]["expire_in"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token)
    # 86400 s at K = 60 is 1440 s from now, as a Unix time, not a TTL.
    assert abs(expire_in - (time.time() + 1440)) <= 2
    assert api.emu.state.stats()["tokens_issued"] == 2


async def test_a_new_token_invalidates_the_previous_one(api: Api) -> None:
    superseded = {"access_token": str(api.token)}
    await api.login()
    assert (await api.detail("x"))["msg"] == "任务不存在"  # the new token works
    old = await api.call("GET", "/open/v1/list_common_audio", headers=superseded)
    assert (old["code"], old["msg"]) == (10400, "AccessToken验证失败")


@pytest.mark.parametrize("headers", [{}, {"access_token": "bogus"}, {"access_token": ""}])
async def test_missing_or_unknown_token_gives_10400(api: Api, headers: dict[str, str]) -> None:
    payload = await api.call("GET", "/open/v1/list_common_audio", headers=headers)
    assert (payload["code"], payload["msg"]) == (10400, "AccessToken验证失败")


async def test_token_expires_after_its_scaled_ttl() -> None:
    async with running(token_ttl_seconds=6.0) as api:  # 0.1 s at K = 60
        assert (await api.detail("x"))["code"] == 40000
        await anyio.sleep(0.15)
        assert (await api.detail("x"))["code"] == 10400


@pytest.mark.parametrize(
    ("body", "code", "msg"),
    [
        ({"app_id": APP_ID, "secret_key": "wrong"}, 40000, "参数错误: app_id 或 secret_key 错误"),
        (
            {"app_id": "other", "secret_key": SECRET_KEY},
            40000,
            "参数错误: app_id 或 secret_key 错误",
        ),
        ({"app_id": APP_ID}, 400, "传入参数格式错误"),
        ({"app_id": APP_ID, "secret_key": 1}, 400, "传入参数格式错误"),
        ([APP_ID, SECRET_KEY], 400, "传入参数格式错误"),
    ],
)
async def test_token_request_errors(api: Api, body: object, code: int, msg: str) -> None:
    payload = await api.call("POST", "/open/v1/access_token", body=body)
    assert (payload["code"], payload["msg"]) == (code, msg)


async def test_token_request_with_a_non_json_body(api: Api) -> None:
    url = api.emu.base_url + "/open/v1/access_token"
    async with api.http.post(url, data=b"app_id=x") as response:
        assert (await response.json())["code"] == 400


async def test_revoking_the_token_makes_the_next_call_answer_10400() -> None:
    async with running() as api:
        assert (await detail_codes(api, 1)) == [40000]
        assert api.emu.revoke_tokens() is True
        payload = await api.call("GET", DETAIL, params={"id": "x"})
        assert (payload["code"], payload["msg"]) == (10400, "AccessToken验证失败")
        assert api.emu.revoke_tokens() is False  # nothing left to revoke
        await api.login()
        assert (await detail_codes(api, 1)) == [40000]
        async with api.http.post(api.emu.base_url + "/_emulator/tokens/revoke") as response:
            assert (response.status, await response.json()) == (200, {"revoked": True})
        assert (await detail_codes(api, 1)) == [10400]
        stats = api.emu.state.stats()
    assert (stats["tokens_issued"], stats["tokens_revoked"]) == (2, 2)
    assert stats["faults_applied"] == {}
