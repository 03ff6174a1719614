"""The fixed public-voice catalogue served by ``list_common_audio``.

A TTS create must name a voice the emulator knows: one of this catalogue, or one of
``EmulatorSettings.extra_voices`` (a user's own customised voices, which the live service lists
elsewhere). Anything else, a voice's *name* included, is refused as the live TTS endpoint
refuses it ("没有找到对应的声音ID"), so that tests catch a wrong voice.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The create page's example id, a customised voice ("C-" + 32 hex): listed first so that the
# documentation's own example works against the emulator.
EXAMPLE_VOICE_ID = "C-f2429d07554749839849497589199916"
EXAMPLE_VOICE_NAME = "示例声音"

# (name, gender, lang, grade, desc). A place name in `name` marks a dialect, as on the live list.
_VOICES: tuple[tuple[str, str, str, int, str], ...] = (
    (EXAMPLE_VOICE_NAME, "female", "zh", 0, "创建页示例 (the create page's example voice id)"),
    ("晓晓", "female", "zh", 0, "温柔女声"),
    ("云希", "male", "zh", 0, "阳光男声"),
    ("晓伊", "female", "zh", 0, "甜美少女"),
    ("云健", "male", "zh", 0, "体育解说"),
    ("晓辰", "female", "zh", 1, "知性女声"),
    ("云扬", "male", "zh", 1, "新闻播报"),
    ("晓涵", "female", "zh", 1, "情感电台"),
    ("云野", "male", "zh", 1, "成熟大叔"),
    ("晓墨", "female", "zh", 1, "故事讲述"),
    ("云枫", "male", "zh", 1, "广告配音"),
    ("晓秋", "female", "zh", 0, "亲切客服"),
    ("云皓", "male", "zh", 0, "科普讲解"),
    ("晓睿", "female", "zh", 1, "沉稳主持"),
    ("云泽", "male", "zh", 1, "纪录片旁白"),
    ("四川-晓贝", "female", "zh", 0, "四川话"),
    ("东北-云霄", "male", "zh", 0, "东北话"),
    ("粤语-晓曼", "female", "yue", 1, "粤语女声"),
    ("粤语-云龙", "male", "yue", 1, "粤语男声"),
    ("台湾-晓臻", "female", "zh", 0, "台湾腔"),
    ("陕西-晓妮", "female", "zh", 0, "陕西话"),
    ("Ava", "female", "en", 1, "warm narrator"),
    ("Andrew", "male", "en", 1, "confident presenter"),
    ("Emma", "female", "en", 0, "friendly assistant"),
    ("Brian", "male", "en", 0, "casual storyteller"),
    ("Nanami", "female", "ja", 0, "明るい女性"),
)


def _voice_id(name: str) -> str:
    """A catalogue voice's id: derived from its name, so the same in every emulator run."""
    if name == EXAMPLE_VOICE_NAME:
        return EXAMPLE_VOICE_ID
    return hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()


_IDS_BY_NAME = {entry[0]: _voice_id(entry[0]) for entry in _VOICES}
CATALOGUE_IDS = frozenset(_IDS_BY_NAME.values())


def unknown_voice_reason(value: str) -> str:
    """Why ``value`` is no voice id: the live message, and the id when a name was given.

    Args:
        value: The ``audio_man_id`` of a create that names no known voice.

    Returns:
        The reason for the 40000 message.
    """
    reason = f"没有找到对应的声音ID {value!r} (list_common_audio lists the voice ids)"
    known = _IDS_BY_NAME.get(value.strip())
    if known is not None:
        reason += f": {value.strip()!r} is a voice name, its id is {known}"
    return reason


def voice_catalogue(base_url: str) -> list[dict[str, Any]]:
    """Build the voice list, with audition URLs on ``base_url``.

    Args:
        base_url: Origin of the request, e.g. ``http://127.0.0.1:8080``.

    Returns:
        One voice object per catalogue entry, in a fixed order.
    """
    voices = []
    for name, gender, lang, grade, desc in _VOICES:
        voice_id = _IDS_BY_NAME[name]
        voices.append(
            {
                "id": voice_id,
                "grade": grade,
                "name": name,
                "gender": gender,
                "lang": lang,
                "desc": desc,
                "speed": 1,
                "pitch": 1,
                "audition": f"{base_url}/_emulator/voices/{voice_id}.mp3",
            }
        )
    return voices
