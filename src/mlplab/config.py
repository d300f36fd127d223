"""Training configuration: defaults, TOML files, command-line overrides, validation.

A config is three sections (``data``, ``model``, ``training``) of typed keys. Every value a
user gives, from a file or a flag, goes through :func:`resolve`, which rejects unknown keys,
wrong types and out-of-range values with a message naming the file (or option) and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from mlplab.errors import ConfigError

from mlplab.validators import (
    Check, boolean, choice, fraction, nonneg_float, nonneg_int, open_fraction, optional, pos_float,
    pos_int, string, table,
)


def _sizes(v):
    if not isinstance(v, list) or not v:
        return "must be a non-empty list of integers"
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in v):
        return "must hold integers >= 1 (a hidden size of 0 is not a layer)"
    return None


SCHEMA: dict[str, dict[str, tuple[Any, Check]]] = {
    "data": {
        "dataset": ("digits", string),
        "data_dir": (None, optional(string)),
        "split": ("canonical", choice("canonical", "stratified", "sklearn", "textbook")),
        "test_fraction": (0.3, open_fraction),
        "split_seed": (123, nonneg_int),
        "scaling": ("unit", choice("unit", "symmetric", "standard", "none")),
        "validation_fraction": (0.0, fraction),
        "max_train_samples": (None, optional(pos_int)),
        "max_test_samples": (None, optional(pos_int)),
    },
    "model": {
        "hidden": ([100], lambda v: None if isinstance(v, list) and (not v or _sizes(v) is None)
                   else "must be a list of integers >= 1 (empty for no hidden layer)"),
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
        "threads": (None, optional(pos_int)),
        "train_metrics": ("running", choice("running", "full", "none")),
        "checkpoint_seconds": (30.0, pos_float),
    },
}


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


def resolve(*layers: tuple[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge ``(origin, partial config)`` layers over the defaults and validate every value.

    ``origin`` names where a layer came from (a file path, or "command line") for errors.
    """
    cfg = defaults()
    for origin, layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f"{origin}: expected a table of sections")
        for section, values in layer.items():
            if section not in SCHEMA:
                raise ConfigError(f"{origin}: unknown section {section!r}; valid: {', '.join(SCHEMA)}")
            if not isinstance(values, dict):
                raise ConfigError(f"{origin}: section {section!r} must be a table")
            for key, value in values.items():
                if key not in SCHEMA[section]:
                    raise ConfigError(f"{origin}: unknown key {key!r} in [{section}]; valid: "
                                      f"{', '.join(SCHEMA[section])}")
                if value is None and SCHEMA[section][key][0] is not None:
                    continue  # an unset command-line flag
                if isinstance(value, int) and not isinstance(value, bool) and isinstance(SCHEMA[section][key][0], float):
                    value = float(value)
                problem = SCHEMA[section][key][1](value)
                if problem:
                    raise ConfigError(f"{origin}: {section}.{key} = {value!r} {problem}")
                cfg[section][key] = value
    return cfg


def to_toml(cfg: dict[str, Any]) -> str:
    """TOML text of a resolved config (``None`` values are left out: TOML has no null)."""
    return tomli_w.dumps(_drop_none(cfg))


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj
