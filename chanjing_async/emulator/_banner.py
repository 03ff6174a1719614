"""What ``chanjing emulator`` prints once it listens: where, which credentials, how to use it."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ._voices import EXAMPLE_VOICE_ID

if TYPE_CHECKING:
    from .settings import EmulatorSettings

# Shown in place of a secret given with --secret-key: it may be a real one, never echoed.
_GIVEN_SECRET = "<the --secret-key you gave>"


def banner(settings: EmulatorSettings, base_url: str, *, default_secret: bool) -> str:
    """The lines printed at start: the listening line first (scripts read its URL), then how to
    point the command line and the SDK at the emulator, with its credentials and time scale.

    Args:
        settings: The running emulator's settings.
        base_url: Where it listens.
        default_secret: Whether the secret is the built-in one, which is printed; a secret
            given on the command line is not.

    Returns:
        The text, ending in a newline.
    """
    scale = settings.time_scale
    secret = settings.secret_key if default_secret else _GIVEN_SECRET
    env = {
        "CHANJING_APP_ID": settings.app_id,
        "CHANJING_SECRET_KEY": secret,
        "CHANJING_BASE_URL": base_url,
    }
    sdk_pacing = ""
    if scale != 1:
        env["CHANJING_TIME_SCALE"] = f"{scale:g}"  # the CLI's --time-scale
        sdk_pacing = f", limits=RateLimits().scaled({scale:g})"
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    origin = "the built-in test pair; --app-id and --secret-key change it"
    credentials = f"app id {settings.app_id!r} and secret key {secret!r}"
    sdk_args = f"{settings.app_id!r}, {secret!r}, base_url={base_url!r}{sdk_pacing}"
    lines = [
        f"Chanjing emulator listening on {base_url} "
        f"(app_id={settings.app_id}, time scale {scale:g})",
        f"It accepts {credentials} ({origin})." if default_secret else f"It accepts {credentials}.",
        "Point the command line at it (in another shell):",
        f"  export {exports}",
        "  chanjing voices",
        "or the SDK:",
        f"  AsyncChanjingClient({sdk_args})",
    ]
    if scale != 1:
        lines.append(
            f"Time scale {scale:g}: a documented minute lasts {60 / scale:g} s; clients pace "
            f"themselves alike: the command line with --time-scale {scale:g} (or "
            f"CHANJING_TIME_SCALE, set above), the SDK with RateLimits().scaled({scale:g})."
        )
    voices = f"TTS voices: the ids `chanjing voices` lists (e.g. {EXAMPLE_VOICE_ID})"
    if settings.extra_voices:
        voices += " and " + ", ".join(settings.extra_voices)
    lines += [voices + "; any other voice is refused.", "Ctrl-C stops it."]
    return "\n".join(lines) + "\n"
