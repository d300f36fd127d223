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
``[sweep]``          ``"section.key" = [values...]``: the grid (every combination is a cell; the
                     generic runner's only: the report runners make their cells from [options])
``[report]``         published (free-form table of the published numbers), notes (list)
``[options]``        keys of the runner's own (each protocol module declares its schema)
``[quick]``          the same sections again, merged over the spec by ``--quick``

Unknown keys and bad values raise :class:`~mlplab.errors.ConfigError` naming the spec file
and the key, on one line. So does a setting the runner would silently ignore: each runner
declares which keys its cells read (:class:`KeyUse`), and a key none of them reads, or one it
hard-codes stated with another value, is refused. A value repeated in a list that makes cells
(a sweep axis, ``options.digits``, ``options.lrs``, ...) is refused too.
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


def section_keys(*sections: str) -> set[str]:
    """Every ``"section.key"`` of the given sections (all sections when none is given)."""
    return {f"{sec}.{k}" for sec in (sections or SECTIONS) for k in SECTIONS[sec]}


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
    #: what ``--quick`` changed, ``"key: full value → quick value"`` (a spec loaded with its
    #: [quick] merged; empty for a saved resolved spec, which no longer holds the full values)
    quick_changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "runner": self.runner, "protocol": self.protocol, **copy.deepcopy(self.sections),
                "sweep": copy.deepcopy(self.sweep), "report": copy.deepcopy(self.report),
                "options": copy.deepcopy(self.options), "quick": self.quick}

    def differences(self, other: Spec) -> list[str]:
        """``"key this-value vs other-value"`` for every setting in which ``other`` differs."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{k} {toml_value(mine.get(k))} vs {toml_value(theirs.get(k))}" for k in sorted({*mine, *theirs})
                if _canonical(mine.get(k)) != _canonical(theirs.get(k))]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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


def _canonical(v: Any) -> Any:
    """A hashable form in which values equal as settings are equal (1 and 1.0, tables in any order)."""
    if _is_int(v):
        return float(v)
    if isinstance(v, list):
        return tuple(_canonical(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _canonical(x)) for k, x in v.items()))
    return v


def repeated(values: list[Any]) -> Any | None:
    """The first value that appears twice in ``values`` (as a setting: 1 == 1.0), else ``None``."""
    seen = set()
    for v in values:
        c = _canonical(v)
        if c in seen:
            return v
        seen.add(c)
    return None


def distinct(check: Check) -> Check:
    """``check``, and no value twice: each value of such a list makes its own cells (or models),
    so a repeated value would train the same thing twice and report it twice."""
    def _check(v):
        problem = check(v)
        twice = repeated(v) if problem is None and isinstance(v, list) else None
        return problem if twice is None else f"holds {twice!r} twice (each value makes its own cells)"

    return _check


@dataclass
class KeyUse:
    """Which spec keys a runner's cells read. A protocol module's optional ``key_use(spec)``
    returns it; a runner that has one makes its cells from ``[options]`` (``[sweep]`` is refused).
    Without one (the generic runner) every key reaches every cell and ``[sweep]`` makes the cells.

    ``read``: the ``"section.key"`` names some cell of the spec reads. ``fixed``: keys the cells
    hard-code, with the value they use: a spec may state that value (it documents the protocol)
    and no other, even where other cells read the key (the as-published replays). ``hints``: per
    key (``"section.*"``, ``"*"`` as fallbacks), what the runner uses instead, for the error message."""

    read: set[str]
    fixed: dict[str, Any] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)

    def hint(self, path: str) -> str:
        sec = path.split(".")[0]
        return self.hints.get(path) or self.hints.get(f"{sec}.*") or self.hints.get("*") or "no cell reads it"

    def reads(self, path: str) -> bool:
        return path in self.read or f"{path.split('.')[0]}.*" in self.read

    def describe(self) -> str:
        """Which keys reach the cells, in one sentence (the report and the saved spec.toml say it)."""
        text = f"the cells read {compact_keys(self.read) or 'no section key'}"
        if self.fixed:
            text += "; the protocol fixes " + ", ".join(f"{k} = {toml_value(v)}" for k, v in sorted(self.fixed.items()))
            text += " (a spec may state only these values)"
        return text + "; the other section keys hold defaults no cell uses"


def compact_keys(keys: set[str]) -> str:
    """The keys sorted, a whole section as ``section.*``."""
    out: list[str] = []
    for sec in SECTIONS:
        every = section_keys(sec)
        out += [f"{sec}.*"] if every <= keys else sorted(keys & every)
    return ", ".join(out)


def _at(sections: dict[str, dict[str, Any]], path: str) -> Any:
    sec, key = path.split(".")
    return sections[sec][key]


def toml_value(v: Any) -> str:
    """``v`` as a TOML spec writes it (for messages and reports; ``None``: not set)."""
    if v is None:
        return "unset"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def key_use(spec: Spec) -> KeyUse | None:
    """What the spec's runner does with its keys (``None``: every key reaches every cell, as in
    the generic runner)."""
    from mlplab.experiments.protocols import get_protocol

    declared = getattr(get_protocol(spec.runner), "key_use", None)
    return None if declared is None else declared(spec)


def check_key_use(spec: Spec, given: dict[str, str], sweep_where: str) -> None:
    """Refuse what the runner would silently ignore: ``[sweep]`` axes it does not read (any, for
    a report runner; an option it does not have), a key ``given`` (``"section.key"`` -> the file
    or layer that set it) that no cell reads, or a key it hard-codes stated with another value."""
    from mlplab.experiments.protocols import get_protocol

    name, options = spec.runner, get_protocol(spec.runner).OPTIONS
    use = key_use(spec)
    if spec.sweep and use is not None:
        raise ConfigError(f"{sweep_where}: [sweep] is not used by runner {name!r}: its cells come from its "
                          "[options]; remove it")
    for path in spec.sweep:
        sec, key = path.split(".", 1)
        if sec == "options" and key not in options:
            raise ConfigError(f"{sweep_where}: sweep.{path}: runner {name!r} has no option {key!r}; valid: "
                              f"{', '.join(options) or 'none'}")
    if use is None:
        return
    for path, where in given.items():
        value = _at(spec.sections, path)
        if path in use.fixed:
            if _canonical(value) != _canonical(use.fixed[path]):
                raise ConfigError(f"{where}: {path} = {value!r}: runner {name!r} always uses "
                                  f"{use.fixed[path]!r} here ({use.hint(path)}); remove the key or set it to that")
        elif not use.reads(path):
            raise ConfigError(f"{where}: {path} is not used by runner {name!r} ({use.hint(path)}); remove it")


def check_field(origin: str, path: str, values: Any) -> list[Any]:
    """Validate a sweep axis ``"section.key" = [values]``: every value must pass the key's check,
    and none may appear twice (it would make the same cells twice). Returns the values as the
    section would hold them (an integer for a float key becomes a float, as ``lr = 1`` in
    ``[training]`` does), so ``1`` and ``1.0`` make one cache key, as they make one spec."""
    parts = path.split(".")
    if len(parts) == 2 and parts[0] in SECTIONS:
        sec, key = parts
        if key not in SECTIONS[sec]:
            raise ConfigError(f"{origin}: sweep.{path!r} names an unknown key {key!r} of [{sec}]; "
                              f"valid: {', '.join(SECTIONS[sec])}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: sweep.{path!r} must be a non-empty list of values")
        normal = []
        for v in values:
            if _is_int(v) and isinstance(SECTIONS[sec][key][0], float):
                v = float(v)
            problem = SECTIONS[sec][key][1](v)
            if problem:
                raise ConfigError(f"{origin}: sweep.{path} value {v!r} {problem}")
            normal.append(v)
        values = normal
    elif len(parts) == 2 and parts[0] == "options":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{origin}: sweep.{path!r} must be a non-empty list of values")
    else:
        raise ConfigError(f"{origin}: sweep key {path!r} must be 'section.key' with section one of "
                          f"{', '.join([*SECTIONS, 'options'])}")
    twice = repeated(values)
    if twice is not None:
        raise ConfigError(f"{origin}: sweep.{path} holds {twice!r} twice (each value makes its own cells)")
    return values


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
    return {path: check_field(origin, path, values) for path, values in flat.items()}


def from_dict(raw: dict[str, Any], origin: str = "<spec>", quick: bool = False,
              overrides: dict[str, Any] | None = None) -> Spec:
    """Validate a parsed spec; ``quick`` merges its ``[quick]`` table; ``overrides`` (same
    layout as a spec) come last (e.g. ``{"data": {"data_dir": ...}}``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a spec must be a table")
    full = None
    if quick:  # a quick run is a trial of the full one: refuse a full spec that would fail later
        full = from_dict(raw, origin, quick=False, overrides=overrides)
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
    given: dict[str, str] = {}  # "section.key" -> the layer that set it last
    sweep_where = origin
    for where, layer in layers:
        for sec in SECTIONS:
            if sec in layer:
                _merge_section(where, sec, sections[sec], layer[sec], SECTIONS[sec])
                given.update((f"{sec}.{key}", where) for key in layer[sec])
        if "sweep" in layer:
            axes = _flatten_sweep(where, layer["sweep"])
            sweep.update(axes)
            sweep_where = where if axes else sweep_where
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
    if full is not None:
        mine, theirs = _flatten(spec.to_dict()), _flatten(full.to_dict())
        spec.quick_changes = [f"{k}: {toml_value(theirs.get(k))} → {toml_value(mine.get(k))}"
                              for k in sorted({*mine, *theirs}) if k != "quick"
                              and _canonical(mine.get(k)) != _canonical(theirs.get(k))]
    check = getattr(module, "check_spec", None)
    if check is not None:
        check(spec)
    if resolved_quick is not None:  # a saved spec lists every key: those at their default were not set
        unset = defaults()
        given = {path: where for path, where in given.items()
                 if _canonical(_at(spec.sections, path)) != _canonical(_at(unset, path))}
    check_key_use(spec, given, sweep_where)
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
