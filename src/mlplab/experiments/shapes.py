"""What finished cells return, so a cached result is checked before a report reads it.

A finished cell's cell.json caches its result dict (:mod:`mlplab.experiments.sweep`), and the
experiment report reads fields of it back: the runner's Cells table every cell's
``test_accuracy``, each protocol's report builder its own (snapshots, costs, curves, the
one-vs-rest models, ...). A cell.json can be valid JSON and still hold a result no finished
cell writes (edited by hand, restored in part from another copy): text where a number is
formatted, a list where a table is indexed, a missing key, NaN (cell.json is written without
NaN or infinities, so a non-finite number never comes from a cell). Read as it is, such a
result crashed the report with a traceback, or printed a wrong number in it.

So each protocol module declares ``RESULTS``: per cell function (the ``function`` of a cell
kind ``module:function``), the :class:`Record` its result is, with the types of the values the
reports read. :func:`mlplab.experiments.sweep.load_cached` checks a cached result against it
once, when the cell is loaded from the cache; a result that does not match makes the cell run
again, with a one-line warning naming its cell.json, as a cell whose files changed does.

Keys a report reads with a default (``result.get(...)``) may be absent, since cells cached by
earlier versions lack some, but hold the declared type when present; keys no shape declares may
hold anything but a non-finite number (the summary would not be valid JSON).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable


def describe(value: Any) -> str:
    """A value as a one-line message shows it: ``'abc'``, ``NaN``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def at(where: str, key: str) -> str:
    """The path of ``key`` inside ``where``: ``result.curve``, ``result.snapshots['3']``."""
    return f"{where}.{key}" if key.isidentifier() and len(key) <= 40 else f"{where}[{describe(key)}]"


def finite_problem(value: Any, where: str) -> str | None:
    """What no declared shape may hold either: a non-finite number anywhere inside ``value``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {describe(value)}, not a finite number"
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (float, dict, list)):
                problem = finite_problem(v, at(where, str(k)))
                if problem:
                    return problem
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (float, dict, list)):
                problem = finite_problem(v, f"{where}[{i}]")
                if problem:
                    return problem
    return None


class Shape:
    """What a value must be. ``text`` says it in messages (``a finite number``); ``container``
    is ``"object"``, ``"list"`` or ``""`` (a single value), which :class:`Either` dispatches on."""

    text = "a value"
    container = ""

    def problem(self, value: Any, where: str) -> str | None:
        """``"<where> is <value>, not <text>"`` (or what else is wrong), else ``None``."""
        raise NotImplementedError

    def wrong(self, value: Any, where: str) -> str:
        return f"{where} is {describe(value)}, not {self.text}"


class Leaf(Shape):
    """A single JSON value accepted by ``test``."""

    def __init__(self, text: str, test: Callable[[Any], bool]):
        self.text, self.test = text, test

    def problem(self, value: Any, where: str) -> str | None:
        return None if self.test(value) else self.wrong(value, where)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


NUMBER = Leaf("a finite number", _number)
INT = Leaf("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
TEXT = Leaf("text", lambda v: isinstance(v, str))
BOOL = Leaf("true or false", lambda v: isinstance(v, bool))
#: a diverged result's ``error`` (empty text would read as "not diverged")
MESSAGE = Leaf("a non-empty message", lambda v: isinstance(v, str) and v != "")


class Maybe(Shape):
    """``null`` or ``shape``."""

    def __init__(self, shape: Shape):
        self.shape, self.text, self.container = shape, f"null or {shape.text}", shape.container

    def problem(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if isinstance(self.shape, Leaf):
            return None if self.shape.test(value) else self.wrong(value, where)
        return self.shape.problem(value, where)


class ListOf(Shape):
    """A list of at least ``min_len`` items, each ``item``."""

    container = "list"

    def __init__(self, item: Shape, min_len: int = 0):
        self.item, self.min_len = item, min_len
        self.text = "a list" if not min_len else f"a list of at least {min_len} item{'s' if min_len > 1 else ''}"

    def problem(self, value: Any, where: str) -> str | None:
        if not isinstance(value, list) or len(value) < self.min_len:
            return self.wrong(value, where)
        for i, v in enumerate(value):
            problem = self.item.problem(v, f"{where}[{i}]")
            if problem:
                return problem
        return None


class Row(Shape):
    """A list of exactly ``len(items)`` values, the i-th ``items[i]`` (``[epoch, cost]``)."""

    container = "list"

    def __init__(self, *items: Shape):
        self.items, self.text = items, f"a list of {len(items)}"

    def problem(self, value: Any, where: str) -> str | None:
        if not isinstance(value, list):
            return self.wrong(value, where)
        if len(value) != len(self.items):
            return f"{where} is a list of {len(value)}, not {self.text}"
        for i, (shape, v) in enumerate(zip(self.items, value)):
            problem = shape.problem(v, f"{where}[{i}]")
            if problem:
                return problem
        return None


class MapOf(Shape):
    """An object whose every value is ``value``; its keys match ``keys`` (a regular expression,
    ``key_text`` saying what it asks) when given, e.g. epochs as the snapshots are keyed."""

    container = "object"
    text = "an object"

    def __init__(self, value: Shape, keys: str | None = None, key_text: str = ""):
        self.value, self.keys, self.key_text = value, None if keys is None else re.compile(keys), key_text

    def problem(self, value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return self.wrong(value, where)
        for k, v in value.items():
            if self.keys is not None and not self.keys.fullmatch(k):
                return f"{where} has the key {describe(k)}, not {self.key_text}"
            problem = self.value.problem(v, at(where, k))
            if problem:
                return problem
        return None


#: snapshot tables are keyed by epoch (``"3"``), which the reports read back with int()
EPOCH_KEYS = {"keys": r"[0-9]+", "key_text": "an epoch number"}


class Record(Shape):
    """An object with the ``fields`` given, ``{name: shape}``; a name ending in ``?`` may be
    absent (a later entry of the same name overrides an earlier one, so a record built on
    another may make one of its optional fields required). Other keys may hold anything finite."""

    container = "object"
    text = "an object"

    def __init__(self, fields: dict[str, Shape]):
        self.fields: dict[str, tuple[Shape, bool]] = {}
        for name, shape in fields.items():
            optional = name.endswith("?")
            self.fields[name.rstrip("?")] = (shape, optional)

    def extended(self, fields: "dict[str, Shape] | Record") -> "Record":
        """This record with ``fields`` (or another record's) added, or overriding its own."""
        out = Record({})
        out.fields = {**self.fields, **(fields if isinstance(fields, Record) else Record(fields)).fields}
        return out

    def problem(self, value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return self.wrong(value, where)
        for name, (shape, optional) in self.fields.items():
            if name not in value:
                if optional:
                    continue
                return f"{at(where, name)} is missing"
            problem = shape.problem(value[name], at(where, name))
            if problem:
                return problem
        for k, v in value.items():
            if k not in self.fields and isinstance(v, (float, dict, list)):
                problem = finite_problem(v, at(where, k))
                if problem:
                    return problem
        return None


class Either(Shape):
    """One of ``shapes``, at most one per container (object, list, single value): a value is
    checked against the one of its own container, so the message says what is wrong inside it."""

    def __init__(self, *shapes: Shape):
        self.shapes, self.text = shapes, " or ".join(s.text for s in shapes)

    def problem(self, value: Any, where: str) -> str | None:
        container = "object" if isinstance(value, dict) else "list" if isinstance(value, list) else ""
        for shape in self.shapes:
            if shape.container == container:
                return shape.problem(value, where)
        return self.wrong(value, where)


class Where(Shape):
    """``shape``, and ``test`` holds of the value (``text`` says what is wrong when it does not,
    after the value's path: ``"holds lists of different lengths"``)."""

    def __init__(self, shape: Shape, test: Callable[[Any], bool], text: str):
        self.shape, self.test, self.failed = shape, test, text
        self.text, self.container = shape.text, shape.container

    def problem(self, value: Any, where: str) -> str | None:
        problem = self.shape.problem(value, where)
        if problem is None and not self.test(value):
            return f"{where} {self.failed}"
        return problem


class OrDiverged(Shape):
    """``shape``, or, when its ``status`` is ``"diverged"``, a diverged record: ``error`` (the
    message) and the fields of ``common`` (a one-vs-rest model's digit, learning rate and init)."""

    container = "object"

    def __init__(self, shape: Shape, common: Record | None = None):
        self.shape, self.text = shape, shape.text
        self.diverged = (common or Record({})).extended({"error": MESSAGE})

    def problem(self, value: Any, where: str) -> str | None:
        if isinstance(value, dict) and value.get("status") == "diverged":
            return self.diverged.problem(value, where)
        return self.shape.problem(value, where)


#: what the runner reads of every cell's result, whatever its kind (the report's Cells table)
EVERY_RESULT = Record({"test_accuracy?": Maybe(NUMBER)})
