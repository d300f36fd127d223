"""Property-based fuzzing of the config loader: only ConfigError escapes."""

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplab.config import SCHEMA, read_toml, resolve
from mlplab.errors import ConfigError

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
known_keys = st.sampled_from([(sec, key) for sec, keys in SCHEMA.items() for key in keys])


@st.composite
def configs(draw):
    cfg: dict = {}
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            sec, key = draw(known_keys)
        else:
            sec = draw(st.sampled_from([*SCHEMA, draw(st.text(max_size=6))]))
            key = draw(st.text(max_size=10))
        cfg.setdefault(sec, {})
        if isinstance(cfg[sec], dict):
            cfg[sec][key] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        cfg[draw(st.text(max_size=5))] = draw(scalars)
    return cfg


@settings(max_examples=1500, deadline=None)
@given(configs())
def test_resolve_raises_only_config_errors(cfg):
    from fuzzcount import count_fuzz_input

    count_fuzz_input("config loader")
    try:
        out = resolve(("fuzz.toml", cfg))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    for sec, keys in SCHEMA.items():
        for key, (_, check) in keys.items():
            assert check(out[sec][key]) is None


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200),
                     configs().map(lambda c: _dumps(c)),
                     st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_reading_arbitrary_bytes_raises_only_config_errors(tmp_path, raw):
    from fuzzcount import count_fuzz_input

    count_fuzz_input("config loader")
    path = tmp_path / "c.toml"
    path.write_bytes(raw)
    try:
        resolve((str(path), read_toml(path)))
    except ConfigError as exc:
        assert str(path) in str(exc) or "command line" not in str(exc)


def _dumps(cfg) -> bytes:
    try:
        return tomli_w.dumps(cfg).encode()
    except (TypeError, ValueError):
        return b"[training]\nlr = 0.1\n"
