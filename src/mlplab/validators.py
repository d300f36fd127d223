"""Value checks shared by the training config and the experiment specs.

Each check takes a value and returns ``None`` when it is fine, else the end of a sentence that
starts with the key's name (``"must be an integer >= 1"``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

Check = Callable[[Any], "str | None"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pos_int(v):
    return None if _is_int(v) and v >= 1 else "must be an integer >= 1"


def nonneg_int(v):
    return None if _is_int(v) and v >= 0 else "must be an integer >= 0"


def pos_float(v):
    return None if _is_num(v) and v > 0 else "must be a number > 0"


def nonneg_float(v):
    return None if _is_num(v) and v >= 0 else "must be a number >= 0"


def number(v):
    return None if _is_num(v) else "must be a number"


def fraction(v):
    return None if _is_num(v) and 0 <= v < 1 else "must be a number in [0, 1)"


def open_fraction(v):
    return None if _is_num(v) and 0 < v < 1 else "must be a number in (0, 1)"


def string(v):
    return None if isinstance(v, str) and v else "must be a non-empty string"


def boolean(v):
    return None if isinstance(v, bool) else "must be true or false"


def table(v):
    return None if isinstance(v, dict) else "must be a table"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def choice(*options: str) -> Check:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def list_of(check: Check, allow_empty: bool = True) -> Check:
    def _check(v):
        if not isinstance(v, list) or (not v and not allow_empty):
            return "must be a list" + ("" if allow_empty else " (non-empty)")
        for item in v:
            problem = check(item)
            if problem:
                return f"holds {item!r}, which {problem}"
        return None

    return _check


def name_or_table(v):
    if isinstance(v, str) and v:
        return None
    if isinstance(v, dict) and isinstance(v.get("name"), str):
        return None
    return "must be a name or a table with a 'name' key"
