"""The one check every numeric setting goes through, and the type and secret checks beside it.

A leaf: settings of every layer (limits, client, jobs, callbacks, Redis) are checked here when
they are made, so a bad one fails at once with its name, its value and the rule.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict, TypeVar

from pydantic import SecretStr

from .errors import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack


class NumberRule(TypedDict, total=False):
    """What a number must be (every key optional).

    Attributes:
        integer: an ``int`` (default: an ``int`` or a finite ``float``).
        minimum: the lowest value allowed (default 0).
        above: greater than ``minimum``, not equal to it (default False).
        maximum: the highest value allowed (default: none).
        unit: a word for the message, e.g. ``"seconds"``.
    """

    integer: bool
    minimum: float
    above: bool
    maximum: float | None
    unit: str


def check_setting(field: str, value: object, **rule: Unpack[NumberRule]) -> None:
    """Refuse a numeric setting that is not what it must be, naming it, its value and the rule.

    Every numeric setting is checked here when it is made, so that a bad one fails at once
    rather than as a TypeError, an OverflowError or a hang on first use.

    Args:
        field: the name shown, e.g. ``Timeouts.total``.
        value: the value given.
        rule: what is allowed (:class:`NumberRule`); by default a finite number >= 0.

    Raises:
        ConfigurationError: e.g. ``Timeouts.total='5': must be a finite number of seconds > 0``.
    """
    problem = number_problem(value, **rule)
    if problem is not None:
        raise ConfigurationError(f"{field}={value!r}: {problem}")


_K = TypeVar("_K")


def conceal(field: str, value: object, kind: type[_K]) -> tuple[SecretStr | _K | None, str | None]:
    """A secret setting hidden at once, and what is wrong with it (None: nothing).

    A str becomes a SecretStr; a SecretStr, a ``kind`` or None stays. Anything else is
    refused by a message naming its type only (a bytes secret or a RedisDsn is still a
    secret), and comes back as None: the caller rebinds its local to the first element before
    it raises, so no frame an error tracker records holds the value.
    """
    if value is None or isinstance(value, (SecretStr, kind)):
        return value, None
    if isinstance(value, str):
        return SecretStr(value), None
    allowed = " or ".join(dict.fromkeys(("str", "SecretStr", kind.__name__)))
    return None, f"{field}: must be a {allowed}, or None, not {type(value).__name__}"


def check_type(field: str, value: object, *kinds: type, optional: bool = True) -> None:
    """Refuse a setting that is none of ``kinds`` (nor None, when ``optional``).

    Raises:
        ConfigurationError: e.g. ``timeouts={'total': 5}: must be a Timeouts, or None``.
    """
    if (value is None and optional) or isinstance(value, kinds):
        return
    allowed = " or ".join(kind.__name__ for kind in kinds)
    raise ConfigurationError(f"{field}={value!r}: must be a {allowed}{', or None' * optional}")


def number_problem(value: object, **rule: Unpack[NumberRule]) -> str | None:
    """What is wrong with a number given as a setting or an argument (None if nothing).

    ``True`` is no number here (``bool`` is an ``int`` subclass, but ``max_retries=True`` is a
    mistake, not 1), nor is a string, NaN or an infinity.

    Returns:
        None, or the rule broken: ``"must be a finite number of seconds > 0"``.
    """
    integer = rule.get("integer", False)
    minimum = rule.get("minimum", 0)
    above = rule.get("above", False)
    maximum = rule.get("maximum")
    unit = rule.get("unit", "")
    if not isinstance(value, bool) and isinstance(value, int if integer else (int, float)):
        if (
            (isinstance(value, int) or math.isfinite(value))  # isfinite(10**400) overflows
            and (value > minimum if above else value >= minimum)
            and (maximum is None or value <= maximum)
        ):
            return None
    kind = "an integer" if integer else "a finite number"
    allowed = f"must be {kind}{f' of {unit}' if unit else ''} {'>' if above else '>='} {minimum:g}"
    return allowed if maximum is None else f"{allowed} and <= {maximum:g}"
