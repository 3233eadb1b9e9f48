"""Configs as text: presets by name, TOML files, ``--set KEY=VALUE`` overrides, and TOML back out.

Every command reads its config through :func:`load`; ``fusioncim config``
writes one with :func:`to_toml` that :func:`load` reads back to the same config.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from .config import _FIELDS, PRESETS, ConfigError, EngineConfig

__all__ = ["OPTIONAL", "to_toml", "preset", "from_mapping", "from_toml", "load"]

OPTIONAL = tuple(name for name, f in _FIELDS.items() if "None" in str(f.type))
"""The fields that can be None (written ``"none"`` in TOML, ``none`` after ``--set``)."""


def field_meanings():
    """Each config field's meaning in one line: the first sentence of its entry in ``EngineConfig``'s
    docstring (the one place the fields are described)."""
    import re
    from .config import EngineConfig
    doc = EngineConfig.__doc__.split("Parameters\n    ----------\n", 1)[1].split("\n\n", 1)[0]
    meanings = {}
    for names, text in re.findall(r"^    (\w[\w, ]*) : [^\n]*\n((?:        [^\n]*\n?)+)", doc, flags=re.M):
        sentence = " ".join(text.split()).split(". ")[0].rstrip(".").replace("``", "")
        for name in names.split(", "):
            meanings[name] = sentence
    return meanings


def to_toml(cfg: "EngineConfig", derived: dict | None = None) -> str:
    """``cfg`` as TOML that :func:`load` reads back to the same config: every field, None as ``"none"``,
    each with its meaning as a comment (:func:`field_meanings`); ``derived`` values follow as comments,
    which the loader ignores."""
    lines = ["# fusioncim engine config: read it back with --config FILE.toml"]
    meanings = field_meanings()
    for key, value in cfg.to_dict().items():
        lines.append(f"{key} = {json.dumps('none' if value is None else value)}  # {meanings[key]}")
    if derived:
        lines.append("")
        lines.append("# Derived from the fields above (comments: --config ignores them).")
        lines += [f"# {key} = {json.dumps(value)}" for key, value in derived.items()]
    return "\n".join(lines) + "\n"

def preset(name: str) -> EngineConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def from_mapping(data: dict, *, source: str = "config") -> EngineConfig:
    """Build a config from a mapping of field names (TOML tables land here).

    An optional ``preset`` key names the base; every other key must be a field.
    """
    data = dict(data)
    name = data.pop("preset", "default")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: preset must be a string, not {name!r}")
    try:
        base = preset(name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; known keys: preset, {', '.join(_FIELDS)}")
    for key, value in data.items():
        # TOML has no null: "none" says None for the fields that take it (what `fusioncim config` writes).
        if isinstance(value, str) and value.strip().lower() == "none":
            if key not in OPTIONAL:
                raise ConfigError(f"{source}: {key} = {value!r}: only {', '.join(OPTIONAL)} can be none")
            data[key] = None
    try:
        return dataclasses.replace(base, **data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def from_toml(path: str | Path) -> EngineConfig:
    """Load a config from a TOML file (keys as in :class:`EngineConfig`, plus ``preset``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_mapping(data, source=str(path))


def load(spec: str | None, overrides=()) -> EngineConfig:
    """A preset name or a TOML path (None: the default preset), then ``KEY=VALUE`` overrides.

    Override values are TOML values: ``rows=8``, ``tiers=false``, ``key_order="sequential"``
    (a bare word is taken as a string).
    """
    if spec is None:
        cfg = PRESETS["default"]
    elif spec in PRESETS:
        cfg = PRESETS[spec]
    elif spec.endswith(".toml") or Path(spec).exists():
        cfg = from_toml(spec)
    else:
        raise ConfigError(f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a TOML file")
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r} must be KEY=VALUE")
        if key not in _FIELDS:
            raise ConfigError(f"--set: unknown key {key!r}; known keys: {', '.join(_FIELDS)}")
        if value.strip().lower() in ("none", "null"):
            changes[key] = None          # e.g. skip_threshold=none, acc_bits=none
            continue
        try:
            changes[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            changes[key] = value.strip()
    if not changes:
        return cfg
    try:
        return dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--set: {exc}") from None
