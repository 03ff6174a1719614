"""``python -m chanjing_async.emulator``: serve the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
import threading

from ._banner import banner
from .server import serve
from .settings import FILE_STATUS_TWO, LIST_ORDERS, RATE_WINDOWS, EmulatorSettings

_DEFAULTS = EmulatorSettings()


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is no port: use 0 to 65535 (0: any free port)")
    return port


def build_parser(prog: str = "python -m chanjing_async.emulator") -> argparse.ArgumentParser:
    """The command-line parser; every settings flag defaults to the ``EmulatorSettings`` value."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Local emulator of the Chanjing lip-sync Open API. Once it listens it "
        "prints the credentials it accepts and the lines that point the chanjing command and "
        "the SDK at it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=_port, default=8080, help="port to bind (0: any free port)")
    parser.add_argument("--app-id", default=_DEFAULTS.app_id, help="accepted app id")
    # The built-in secret is a public test value, shown here and in the banner; a secret given
    # here is never printed.
    parser.add_argument("--secret-key", default=_DEFAULTS.secret_key, help="accepted secret key")
    parser.add_argument(
        "--voice",
        action="append",
        default=argparse.SUPPRESS,  # no "(default: [])" in the help
        metavar="ID",
        help="also accept this TTS voice id (e.g. your own customised voice), not listed; "
        "repeatable. The catalogue's voices (chanjing voices) are always accepted, others "
        "refused",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=_DEFAULTS.time_scale,
        help="K: every documented duration is divided by K (60: a minute lasts a second)",
    )
    parser.add_argument(
        "--task-seconds",
        type=float,
        default=_DEFAULTS.task_seconds,
        help="real-scale time from create to a terminal status",
    )
    parser.add_argument(
        "--file-ready-seconds",
        type=float,
        default=_DEFAULTS.file_ready_seconds,
        help="real-scale delay between upload and file readiness",
    )
    parser.add_argument(
        "--file-status-two",
        choices=FILE_STATUS_TWO,
        default=_DEFAULTS.file_status_two,
        help="file processing ends in status 2, read as ready or as failed (None: in 1)",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=_DEFAULTS.fail_rate,
        help="fraction of tasks that fail",
    )
    parser.add_argument(
        "--billing-fail-rate",
        type=float,
        default=_DEFAULTS.billing_fail_rate,
        help="fraction of tasks that fail on billing (蝉豆不足)",
    )
    parser.add_argument(
        "--result-url-ttl",
        type=float,
        default=_DEFAULTS.result_url_ttl_seconds,
        metavar="SECONDS",
        help="real-scale validity of result URLs, signed at each read (None: never expire)",
    )
    parser.add_argument(
        "--no-decode-check",
        action="store_true",
        help="let tasks succeed whatever bytes their video holds (not only MP4/MOV/WebM)",
    )
    parser.add_argument(
        "--rate-window",
        choices=RATE_WINDOWS,
        default=_DEFAULTS.rate_window,
        help="how the 40001 limits count arrivals",
    )
    parser.add_argument(
        "--list-order",
        choices=LIST_ORDERS,
        default=_DEFAULTS.list_order,
        help="task list order (random: a fresh shuffle on every call)",
    )
    parser.add_argument(
        "--latency-base",
        type=float,
        default=_DEFAULTS.latency_base_seconds,
        metavar="SECONDS",
        help="real-scale fixed part of each random one-way network trip (in and out)",
    )
    parser.add_argument(
        "--latency-mean",
        type=float,
        default=_DEFAULTS.latency_mean_seconds,
        metavar="SECONDS",
        help="real-scale mean of the exponential part added to --latency-base on each trip",
    )
    parser.add_argument(
        "--latency-tail-rate",
        type=float,
        default=_DEFAULTS.latency_tail_rate,
        metavar="RATE",
        help="probability (0 to 1) that a trip takes a tail delay instead",
    )
    parser.add_argument(
        "--latency-tail",
        type=float,
        nargs=2,
        default=_DEFAULTS.latency_tail_seconds,
        metavar=("LO", "HI"),
        help="real-scale uniform range of a tail delay",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=_DEFAULTS.clock_offset_seconds,
        metavar="SECONDS",
        help="server wall clock minus the real one, in wall seconds (not scaled; may be "
        "negative): shifts every create_time, expire_in, Expires and Date the server sends",
    )
    parser.add_argument("--no-callbacks", action="store_true", help="drop every callback")
    parser.add_argument("--seed", type=int, default=None, help="seed for task failures and latency")
    return parser


def settings_from_args(ns: argparse.Namespace) -> EmulatorSettings:
    """Build settings from parsed arguments.

    Args:
        ns: The namespace returned by ``build_parser().parse_args()``.

    Returns:
        The settings.

    Raises:
        ValueError: A value is out of range.
    """
    return EmulatorSettings(
        app_id=ns.app_id,
        secret_key=ns.secret_key,
        extra_voices=tuple(getattr(ns, "voice", ())),
        time_scale=ns.time_scale,
        task_seconds=ns.task_seconds,
        file_ready_seconds=ns.file_ready_seconds,
        file_status_two=ns.file_status_two,
        fail_rate=ns.fail_rate,
        billing_fail_rate=ns.billing_fail_rate,
        result_url_ttl_seconds=ns.result_url_ttl,
        decode_check=not ns.no_decode_check,
        rate_window=ns.rate_window,
        list_order=ns.list_order,
        latency_base_seconds=ns.latency_base,
        latency_mean_seconds=ns.latency_mean,
        latency_tail_rate=ns.latency_tail_rate,
        latency_tail_seconds=tuple(ns.latency_tail),
        callbacks=not ns.no_callbacks,
        seed=ns.seed,
        clock_offset_seconds=ns.clock_offset,
    )


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Parse ``argv``, print the listening line and serve until interrupted.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
        prog: The program name shown in help and errors (``chanjing emulator`` from the CLI).

    Returns:
        The exit status: 0 after Ctrl-C, 2 for bad flags or an address it cannot listen on
        (one line on stderr, no traceback).
    """
    parser = build_parser(prog) if prog else build_parser()
    ns = parser.parse_args(argv)
    try:
        settings = settings_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    listening = False

    def ready(base_url: str) -> None:
        nonlocal listening
        listening = True
        default_secret = settings.secret_key == _DEFAULTS.secret_key
        print(banner(settings, base_url, default_secret=default_secret), end="", flush=True)

    # Serve until Ctrl-C even when started with SIGINT ignored (a shell's background job
    # without job control): otherwise nothing but SIGKILL would stop it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, ns.host, ns.port, ready=ready))
    except OSError as exc:
        if listening:
            raise
        print(f"{parser.prog}: error: {_bind_problem(exc, ns.host, ns.port)}", file=sys.stderr)
        return 2
    return 0


def _bind_problem(exc: OSError, host: str, port: int) -> str:
    """One line saying why the emulator cannot listen on ``host:port``, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is in use: choose another with --port (0 picks a free one)"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port}: choose one above 1023 with --port"
    reason = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port}: {reason}: check --host and --port"


if __name__ == "__main__":
    raise SystemExit(main())
