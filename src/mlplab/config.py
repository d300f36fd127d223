"""Training configuration: defaults, TOML files, command-line overrides, validation.

A config is three sections (``data``, ``model``, ``training``) of typed keys. Every value a
user gives, from a file or a flag, goes through :func:`resolve`, which rejects unknown keys,
wrong types and out-of-range values with a message naming the file (or option) and the key.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from mlplab.errors import ConfigError
from mlplab.registry import short_repr
from mlplab.validators import (
    Check, boolean, choice, fraction, nonneg_float, nonneg_int, open_fraction, optional, pos_float,
    pos_int, string, table,
)


#: the largest layer a config or a flag may ask for: a larger one does not fit in memory
MAX_LAYER_SIZE = 1_000_000
#: the most BLAS threads a config may ask for (the BLAS takes a C int; no machine has more cores)
MAX_THREADS = 4096


def sizes_problem(sizes: list[Any], what: str = "hidden size") -> str | None:
    """Why a list of layer sizes is refused (the end of a sentence), or ``None``: every size an
    integer from 1 to :data:`MAX_LAYER_SIZE`. Shared by the config files and the flags."""
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
        return f"every {what} must be an integer >= 1 (a size of 0 is not a layer)"
    if any(s > MAX_LAYER_SIZE for s in sizes):
        return f"a {what} above {MAX_LAYER_SIZE:,} does not fit in memory"
    return None


def _hidden(v):
    if not isinstance(v, list):
        return "must be a list of integers >= 1 (empty for no hidden layer)"
    return sizes_problem(v)


def _threads(v):
    problem = pos_int(v)
    return problem or (None if v <= MAX_THREADS else f"must be at most {MAX_THREADS:,}")


def _folder(v):
    problem = string(v)
    if problem:
        return problem
    try:
        ok = Path(v).expanduser().is_dir()
    except (OSError, ValueError, RuntimeError):  # a name too long, or ~user of no user
        ok = False
    return None if ok else "must name an existing directory"


SCHEMA: dict[str, dict[str, tuple[Any, Check]]] = {
    "data": {
        "dataset": ("digits", string),
        "data_dir": (None, optional(_folder)),
        "split": ("canonical", choice("canonical", "stratified", "sklearn", "textbook")),
        "test_fraction": (0.3, open_fraction),
        "split_seed": (123, nonneg_int),
        "scaling": ("unit", choice("unit", "symmetric", "standard", "none")),
        "validation_fraction": (0.0, fraction),
        "max_train_samples": (None, optional(pos_int)),
        "max_test_samples": (None, optional(pos_int)),
    },
    "model": {
        "hidden": ([100], _hidden),
        "hidden_activation": ("sigmoid", string),
        "output_activation": ("softmax", string),
        "loss": ("cross_entropy", string),
        "init": ("glorot", string),
        "init_params": ({}, table),
        "dropout": (0.0, fraction),
        "l2": (0.0, nonneg_float),
        "dtype": ("float32", choice("float32", "float64")),
    },
    "training": {
        "optimizer": ("sgd", string),
        "optimizer_params": ({}, table),
        "lr": (0.1, pos_float),
        "momentum": (0.0, fraction),
        "nesterov": (False, boolean),
        "weight_decay": (0.0, nonneg_float),
        "batch_size": (100, nonneg_int),
        "epochs": (20, pos_int),
        "schedule": ("constant", string),
        "schedule_params": ({}, table),
        "early_stopping_patience": (None, optional(nonneg_int)),
        "seed": (0, nonneg_int),
        "threads": (None, optional(_threads)),
        "train_metrics": ("running", choice("running", "full", "none")),
        "checkpoint_seconds": (30.0, pos_float),
    },
}


#: the origin :func:`resolve`'s errors name for a layer of ``mlplab train``'s flags
COMMAND_LINE = "command line"

#: ``mlplab train``'s flag of each key whose flag is not ``--<key with dashes>``
_OPTIONS = {"early_stopping_patience": "--early-stopping", "init_params": "--init-param",
            "optimizer_params": "--optimizer-param", "schedule_params": "--schedule-param"}

#: each settings table and the key naming what it configures: the table belongs to that name
PARAMS_OF = {("model", "init_params"): "init", ("training", "optimizer_params"): "optimizer",
             ("training", "schedule_params"): "schedule"}


def option_name(key: str) -> str:
    """The ``mlplab train`` flag that sets config key ``key`` (``"lr"`` -> ``"--lr"``)."""
    return _OPTIONS.get(key, "--" + key.replace("_", "-"))


def _registries() -> dict[tuple[str, str], Any]:
    """The registry of each key that holds a registered name (imported when a config is resolved)."""
    from mlplab.activations import ACTIVATIONS
    from mlplab.initializers import INITIALIZERS
    from mlplab.losses import LOSSES
    from mlplab.optimizers import OPTIMIZERS
    from mlplab.schedules import SCHEDULES

    return {("model", "hidden_activation"): ACTIVATIONS, ("model", "output_activation"): ACTIVATIONS,
            ("model", "loss"): LOSSES, ("model", "init"): INITIALIZERS,
            ("training", "optimizer"): OPTIMIZERS, ("training", "schedule"): SCHEDULES}


def defaults() -> dict[str, dict[str, Any]]:
    return {sec: {k: _copy(v[0]) for k, v in keys.items()} for sec, keys in SCHEMA.items()}


def _copy(v):
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; every failure is a ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a TOML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > 4 * 1024 * 1024:
        raise ConfigError(f"{path}: too large for a config file ({len(raw)} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValueError:  # an integer longer than Python converts from text (4,300 digits)
        key = _huge_integer_key(text)
        raise ConfigError(f"{path}: {key or 'a value'} holds an integer of more than "
                          f"{sys.get_int_max_str_digits():,} digits, far too large for any setting") from None


_TOO_LONG = "(an integer too long to read)"


def _huge_integer_key(text: str) -> str | None:
    """The dotted key of the first integer in ``text`` too long to convert (``None`` if it
    cannot be told): found by reading the text again with such integers as a marker string."""
    long_int = re.compile(r"(?<![\w.])[+-]?[1-9](?:_?[0-9]){%d,}(?![\w.])" % sys.get_int_max_str_digits())
    try:
        data = tomllib.loads(long_int.sub(f'"{_TOO_LONG}"', text))
    except ValueError:  # the marker landed where a string cannot go
        return None
    return next(_paths_to(data, _TOO_LONG, ""), None)


def _paths_to(obj: Any, target: Any, path: str):
    if obj == target:
        yield path
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths_to(v, target, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths_to(v, target, f"{path}[{i}]")


def resolve(*layers: tuple[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge ``(origin, partial config)`` layers over the defaults and validate every value.

    ``origin`` names where a layer came from (a file path, or :data:`COMMAND_LINE`) for errors.
    A ``None`` value leaves the key as the layers before set it (a flag not given: TOML has no
    null). Registered names (activations, loss, init, optimizer, schedule) become the name they
    are registered under (``"Adam"`` -> ``"adam"``), so the resolved config says, and everything
    later compares, one spelling. A settings table (``optimizer_params``, ...) merges key by key
    into the earlier layers' table, which is dropped first when the layer changes the name it
    belongs to (``optimizer``, ...): its settings were the old name's.
    """
    cfg = defaults()
    registries = _registries()
    table_of = {(sec, name): table for (sec, table), name in PARAMS_OF.items()}  # name key -> its table
    for origin, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{origin}: expected a table of sections")
        for section, values in layer.items():
            if section not in SCHEMA:
                raise ConfigError(f"{origin}: unknown section {section!r}; valid: {', '.join(SCHEMA)}")
            if not isinstance(values, dict):
                raise ConfigError(f"{origin}: section {section!r} must be a table")
            # a name before its settings table: changing the name drops the earlier table
            for key, value in sorted(values.items(), key=lambda kv: (section, kv[0]) in PARAMS_OF):
                if key not in SCHEMA[section]:
                    raise ConfigError(f"{origin}: unknown key {key!r} in [{section}]; valid: "
                                      f"{', '.join(SCHEMA[section])}")
                if value is None:
                    continue
                value, problem = _checked(section, key, value, registries.get((section, key)))
                if problem:
                    raise ConfigError(_problem(origin, section, key, value, problem))
                if (section, key) in PARAMS_OF:
                    value = {**cfg[section][key], **value}
                elif (section, key) in table_of and value != cfg[section][key]:
                    cfg[section][table_of[section, key]] = {}
                cfg[section][key] = value
    return cfg


def _checked(section: str, key: str, value: Any, registry: Any) -> tuple[Any, str | None]:
    """``(value as stored, problem or None)``: ints become floats where the default is a float,
    registered names their registered name."""
    default, check = SCHEMA[section][key]
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, float):
        try:
            value = float(value)
        except OverflowError:
            return value, "is too large for a number"
    problem = check(value)
    if problem is None and registry is not None:
        if value not in registry:
            return value, f"is not a known {registry.kind}; valid: {', '.join(registry.names())}"
        value = registry.canonical(value)
    return value, problem


def _problem(origin: str, section: str, key: str, value: Any, problem: str) -> str:
    """One line naming the flag or the file and key, the value and its problem."""
    shown = short_repr(value)
    if origin == COMMAND_LINE:
        return f"{option_name(key)} {shown}: {problem} ({section}.{key})"
    return f"{origin}: {section}.{key} = {shown}: {problem}"


def to_toml(cfg: dict[str, Any]) -> str:
    """TOML text of a resolved config (``None`` values are left out: TOML has no null)."""
    return tomli_w.dumps(_drop_none(cfg))


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj
