"""Params from params.yaml into frozen dataclasses: a missing or unknown key fails with its name."""
from __future__ import annotations

import dataclasses
import logging
import sys
import typing
from pathlib import Path

import yaml


def from_dict(cls, values: dict, where: str):
    """Build dataclass `cls` from `values`; every field must be given, no extra keys allowed."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected {sorted(fields)}")
    missing = sorted(name for name, f in fields.items() if name not in values
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif hint in (int, float, bool, str) and not isinstance(value, hint):
            raise ValueError(f"{where}.{name}: expected {hint.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML: {err}") from None


def section(params: dict, name: str, cls, path: str = "params.yaml"):
    """The params section `name` as a `cls`."""
    if name not in params:
        raise ValueError(f"{path}: missing section {name!r}")
    values = dict(params[name] or {})
    return from_dict(cls, values, f"{path}: {name}")


def top_level(params: dict, key: str, path: str = "params.yaml"):
    if key not in params:
        raise ValueError(f"{path}: missing top-level key {key!r}")
    return params[key]


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_main(main) -> None:
    """Run a stage's main(); boundary errors (ValueError) print one clear line and exit 1."""
    setup_logging()
    try:
        main()
    except ValueError as err:
        logging.getLogger("mygo").error("%s", err)
        sys.exit(1)
    except KeyboardInterrupt:
        logging.getLogger("mygo").error("interrupted")
        sys.exit(130)
