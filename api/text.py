"""String and id types of the API's inputs: what any database can store and any log can show.

PostgreSQL refuses NUL in text (a title with ``\\x00`` was a 500): control characters are
refused with a 422 before anything is stored. Free-form text keeps tab and newlines.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_BUT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

#: The largest id a BIGINT column holds.
MAX_INT64 = 2**63 - 1
#: Ids of novels and tasks in paths (uuids; the characters of ``progress.events.Identifier``).
ID_PATTERN = r"^[A-Za-z0-9_.@-]+$"


def _line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters (NUL, tab, newline...) are not allowed here")
    return value


def _text(value: str) -> str:
    if _CONTROL_BUT_WHITESPACE.search(value):
        raise ValueError("control characters other than tab and newline (NUL...) are not allowed")
    return value


#: One line: a title, a role, a scope.
Line = Annotated[str, AfterValidator(_line)]
#: Free-form text: a premise, a message, instructions.
Text = Annotated[str, AfterValidator(_text)]
#: A novel's or a task's id in a path; anything else is a 422, never a database error.
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
#: An audit row's id in a path (BIGINT).
PathRowId = Annotated[int, Path(ge=1, le=MAX_INT64)]
