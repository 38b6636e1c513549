"""Settings as every config reads them: a YAML file of settings, `--set KEY=VALUE` overrides
(values read as YAML: `2`, `true`, `[a, b]`; a dotted key sets a nested setting, such as
`train.lr=1e-4` or `prompt.grammar=false`), and mappings merged over others. Each problem is a
one-line ConfigError naming the file or the override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mckd.errors import ConfigError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """`data` with each `KEY=VALUE` of `items` set in it (in place; returned). A key that would
    pass through a setting that is a value, not a section, is an error."""
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set student.epochs=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML: keep the text as it was typed
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {item!r}: '{where}' is a value ({child!r}), not a section")
            node = child
        node[parts[-1]] = value
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as a nested mapping: `["train.lr=1e-4"]` -> {"train": {"lr": 1e-4}}."""
    return apply_overrides({}, items)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over a copy of `base`, recursing into mappings both have (so `prompt.grammar`
    keeps the other `prompt` settings of the base)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
