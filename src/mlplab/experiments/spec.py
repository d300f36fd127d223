"""Experiment specs: a declarative TOML file describing data, split, preprocessing, model,
training, what to sweep and what to report.

A spec has top-level keys ``name``, ``title``, ``description``, ``runner`` (the protocol
module under :mod:`mlplab.experiments.protocols` that turns the spec into cells and a report)
and ``protocol`` (``"as-published"``, ``"corrected"`` or ``"both"``), and the sections

``[data]``           dataset, data_dir, max_train_samples, max_test_samples
``[split]``          kind (canonical | stratified | textbook | sklearn), test_fraction, seed,
                     validation_fraction
``[preprocessing]``  scaling (unit = [0,1] | symmetric = [-1,1] | standard | none), dtype
``[model]``          hidden, hidden_activation, output_activation, loss (name or table), init,
                     init_params, dropout, l2, shared_bias
``[training]``       optimizer, optimizer_params, lr, batch_size (0 = full batch), epochs, seed,
                     schedule, schedule_params, drop_last, record_epochs, cost_every
``[sweep]``          ``"section.key" = [values...]``: the grid (every combination is a cell)
``[report]``         published (free-form table of the published numbers), notes (list)
``[options]``        keys of the runner's own (each protocol module declares its schema)
``[quick]``          the same sections again, merged over the spec by ``--quick``

Unknown keys and bad values raise :class:`~mlplab.errors.ConfigError` naming the spec file
and the key, on one line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlplab.config import read_toml
from mlplab.errors import ConfigError

from mlplab.validators import (  # noqa: F401  (re-exported for protocol modules)
    Check, _is_int, _is_num, boolean, choice, fraction, list_of, name_or_table, nonneg_float, nonneg_int,
    number, open_fraction, optional, pos_float, pos_int, string, table,
)

PROTOCOLS = ("as-published", "corrected", "both")


# ----------------------------------------------------------------------------- the schema

SECTIONS: dict[str, dict[str, tuple[Any, Check]]] = {
    "data": {
        "dataset": ("mnist", string),
        "data_dir": (None, optional(string)),
        "max_train_samples": (None, optional(pos_int)),
        "max_test_samples": (None, optional(pos_int)),
    },
    "split": {
        "kind": ("canonical", choice("canonical", "stratified", "textbook", "sklearn")),
        "test_fraction": (0.3, open_fraction),
        "seed": (123, nonneg_int),
        "validation_fraction": (0.0, fraction),
    },
    "preprocessing": {
        "scaling": ("unit", choice("unit", "symmetric", "standard", "none")),
        "dtype": ("float32", choice("float32", "float64")),
    },
    "model": {
        "hidden": ([100], list_of(pos_int)),
        "hidden_activation": ("sigmoid", name_or_table),
        "output_activation": ("softmax", name_or_table),
        "loss": ("cross_entropy", name_or_table),
        "init": ("glorot", string),
        "init_params": ({}, table),
        "dropout": (0.0, fraction),
        "l2": (0.0, nonneg_float),
        "shared_bias": (False, boolean),
    },
    "training": {
        "optimizer": ("sgd", string),
        "optimizer_params": ({}, table),
        "lr": (0.1, pos_float),
        "batch_size": (100, nonneg_int),
        "epochs": (20, pos_int),
        "seed": (0, nonneg_int),
        "schedule": ("constant", string),
        "schedule_params": ({}, table),
        "drop_last": (False, boolean),
        "record_epochs": ([], list_of(pos_int)),
        "cost_every": (0, nonneg_int),
    },
}
FREE_SECTIONS = ("sweep", "report", "options")
TOP_KEYS: dict[str, tuple[Any, Check]] = {
    "name": (None, string),
    "title": ("", lambda v: None if isinstance(v, str) else "must be a string"),
    "description": ("", lambda v: None if isinstance(v, str) else "must be a string"),
    "runner": ("generic", string),
    "protocol": ("both", choice(*PROTOCOLS)),
}


def defaults() -> dict[str, dict[str, Any]]:
    return {sec: {k: copy.deepcopy(v[0]) for k, v in keys.items()} for sec, keys in SECTIONS.items()}


@dataclass
class Spec:
    """A validated experiment spec (``sections`` are fully resolved: every key present)."""

    name: str
    title: str
    description: str
    runner: str
    protocol: str
    sections: dict[str, dict[str, Any]]
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    origin: str = "<spec>"
    quick: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "runner": self.runner, "protocol": self.protocol, **copy.deepcopy(self.sections),
                "sweep": copy.deepcopy(self.sweep), "report": copy.deepcopy(self.report),
                "options": copy.deepcopy(self.options), "quick": self.quick}


# ----------------------------------------------------------------------------- validation


def _merge_section(origin: str, where: str, target: dict[str, Any], values: Any,
                   schema: dict[str, tuple[Any, Check]]) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: [{where}] must be a table")
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(f"{origin}: unknown key {key!r} in [{where}]; valid: {', '.join(schema)}")
        default = schema[key][0]
        if _is_int(value) and isinstance(default, float):
            value = float(value)
        problem = schema[key][1](value)
        if problem:
            raise ConfigError(f"{origin}: {where}.{key} = {value!r} {problem}")
        target[key] = copy.deepcopy(value)


def check_field(origin: str, path: str, values: Any) -> None:
    """Validate a sweep axis ``"section.key" = [values]``: every value must pass the key's check."""
    parts = path.split(".")
    if len(parts) == 2 and parts[0] in SECTIONS:
        sec, key = parts
        if key not in SECTIONS[sec]:
            raise ConfigError(f"{origin}: sweep.{path!r} names an unknown key {key!r} of [{sec}]; "
                              f"valid: {', '.join(SECTIONS[sec])}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: sweep.{path!r} must be a non-empty list of values")
        for v in values:
            if _is_int(v) and isinstance(SECTIONS[sec][key][0], float):
                v = float(v)
            problem = SECTIONS[sec][key][1](v)
            if problem:
                raise ConfigError(f"{origin}: sweep.{path} value {v!r} {problem}")
        return
    if len(parts) == 2 and parts[0] == "options":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: sweep.{path!r} must be a non-empty list of values")
        return
    raise ConfigError(f"{origin}: sweep key {path!r} must be 'section.key' with section one of "
                      f"{', '.join([*SECTIONS, 'options'])}")


def _flatten_sweep(origin: str, raw: Any) -> dict[str, list[Any]]:
    """``[sweep]`` may be written flat (``"training.lr" = [...]``) or nested (``training.lr = [...]``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: [sweep] must be a table")
    flat: dict[str, list[Any]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    for path, values in flat.items():
        check_field(origin, path, values)
    return flat


def from_dict(raw: dict[str, Any], origin: str = "<spec>", quick: bool = False,
              overrides: dict[str, Any] | None = None) -> Spec:
    """Validate a parsed spec; ``quick`` merges its ``[quick]`` table; ``overrides`` (same
    layout as a spec) come last (e.g. ``{"data": {"data_dir": ...}}``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a spec must be a table")
    if quick:  # a quick run is a trial of the full one: refuse a full spec that would fail later
        from_dict(raw, origin, quick=False, overrides=overrides)
    valid = [*TOP_KEYS, *SECTIONS, *FREE_SECTIONS, "quick"]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"{origin}: unknown key {key!r}; valid: {', '.join(valid)}")
    top = {}
    for key, (default, check) in TOP_KEYS.items():
        value = raw.get(key, default)
        if value is None:
            raise ConfigError(f"{origin}: missing required key {key!r}")
        problem = check(value)
        if problem:
            raise ConfigError(f"{origin}: {key} = {value!r} {problem}")
        top[key] = value
    from mlplab.experiments.protocols import get_protocol

    try:
        module = get_protocol(top["runner"])
    except ConfigError as exc:
        raise ConfigError(f"{origin}: runner: {exc}") from None

    # a resolved spec (the spec.toml an experiment run saves) records its mode as a boolean
    # ``quick`` instead of a [quick] table: its sections already hold the quick values
    resolved_quick = raw.get("quick") if isinstance(raw.get("quick"), bool) else None
    if resolved_quick is not None and quick:
        if not resolved_quick:
            raise ConfigError(f"{origin}: quick = false: this is the resolved spec of a full run (no [quick] "
                              "table to merge); run the original spec with --quick")
        quick = False  # already merged: nothing to merge again, the mode stays quick below
    layers: list[tuple[str, dict[str, Any]]] = [(origin, raw)]
    if quick:
        q = raw.get("quick", {})
        if not isinstance(q, dict):
            raise ConfigError(f"{origin}: [quick] must be a table")
        for key in q:
            if key not in [*SECTIONS, "sweep", "options", "protocol"]:
                raise ConfigError(f"{origin}: unknown key {key!r} in [quick]; valid: "
                                  f"{', '.join([*SECTIONS, 'sweep', 'options', 'protocol'])}")
        layers.append((f"{origin} [quick]", q))
    if overrides:
        layers.append(("command line", overrides))

    sections = defaults()
    sweep: dict[str, list[Any]] = {}
    options = {k: copy.deepcopy(v[0]) for k, v in module.OPTIONS.items()}
    protocol = top["protocol"]
    for where, layer in layers:
        for sec in SECTIONS:
            if sec in layer:
                _merge_section(where, sec, sections[sec], layer[sec], SECTIONS[sec])
        if "sweep" in layer:
            sweep.update(_flatten_sweep(where, layer["sweep"]))
        if "options" in layer:
            _merge_section(where, "options", options, layer["options"], module.OPTIONS)
        if where != origin and "protocol" in layer:
            problem = TOP_KEYS["protocol"][1](layer["protocol"])
            if problem:
                raise ConfigError(f"{where}: protocol = {layer['protocol']!r} {problem}")
            protocol = layer["protocol"]
    report = raw.get("report", {})
    if not isinstance(report, dict):
        raise ConfigError(f"{origin}: [report] must be a table")
    for key in report:
        if key not in ("published", "notes"):
            raise ConfigError(f"{origin}: unknown key {key!r} in [report]; valid: published, notes")
    if "notes" in report and list_of(string)(report["notes"]):
        raise ConfigError(f"{origin}: report.notes must be a list of strings")
    spec = Spec(name=top["name"], title=top["title"] or top["name"], description=top["description"],
                runner=top["runner"], protocol=protocol, sections=sections, sweep=sweep,
                report=copy.deepcopy(report), options=options, origin=origin,
                quick=bool(quick or resolved_quick))
    check = getattr(module, "check_spec", None)
    if check is not None:
        check(spec)
    return spec


# ----------------------------------------------------------------------------- built-ins


def builtin_dir() -> Path:
    return Path(str(resources.files("mlplab.experiments") / "specs"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def spec_path(name_or_path: str | Path) -> Path:
    """A built-in experiment's spec file, or the given path to a ``.toml`` file."""
    text = str(name_or_path)
    p = Path(text)
    if text.endswith(".toml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such spec file")
        return p
    candidate = builtin_dir() / f"{text}.toml"
    if not candidate.exists():
        raise ConfigError(f"unknown experiment {text!r}; built-in: {', '.join(builtin_names())} "
                          "(or give a path to a .toml spec)")
    return candidate


def load_spec(name_or_path: str | Path, quick: bool = False,
              overrides: dict[str, Any] | None = None) -> Spec:
    path = spec_path(name_or_path)
    raw = read_toml(path)
    return from_dict(raw, origin=str(path), quick=quick, overrides=overrides)
