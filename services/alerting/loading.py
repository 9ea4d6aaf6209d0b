"""Reading and validating the alert rules file: YAML (safe_load, duplicate keys refused, at most
1 MiB), the checks across the file, and `RulesError` lines that name the file, the rule (by name
and index) or receiver, and the field: `alert rules /x/rules.yml: rule "LowSuccessRate"
(rules[0]): threshold: must be a number`."""
from __future__ import annotations

import os
import re
from typing import Any

import yaml
from pydantic import ValidationError

from services.alerting.fields import LIMITS

__all__ = ["read_yaml", "validate", "cross_file_problems", "MAX_PROBLEMS", "MAX_VALUES"]

MAX_PROBLEMS = 20  # lines in one RulesError; the rest are counted
MAX_VALUES = 200_000  # YAML values once anchors are expanded (500 full rules hold about 15 000)
_FIELD_FIRST = re.compile(r"([a-z_]+): (.+)", re.S)
_MESSAGES = {
    "missing": "required", "extra_forbidden": "unknown field (a typo?)", "string_type": "must be a string",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "float_type": "must be a number", "float_parsing": "must be a number",
    "list_type": "must be a list", "dict_type": "must be a mapping", "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping key given twice (PyYAML would keep the last silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value[:40]!r}",
                                                        key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _fail(source: str, message: str):
    from services.alerting.rules import RulesError
    raise RulesError([f"alert rules {source}: {message}"])


def read_yaml(path: str | os.PathLike) -> Any:
    """The parsed YAML at `path` (RulesError when unreadable, too big or not YAML)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(LIMITS["file_bytes"] + 1)
    except OSError as err:
        _fail(str(path), f"cannot read it: {err.strerror or err}")
    if len(raw) > LIMITS["file_bytes"]:
        _fail(str(path), f"larger than {LIMITS['file_bytes'] // 1024} KiB")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError:
        _fail(str(path), "not UTF-8 text")
    except RecursionError:
        _fail(str(path), "nested too deeply")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        _fail(str(path), f"not valid YAML: {getattr(err, 'problem', None) or err}{where}")
    try:
        size = _expanded_size(data, {})
    except RecursionError:
        _fail(str(path), "nested too deeply")
    if size > MAX_VALUES:
        _fail(str(path), f"more than {MAX_VALUES} values once its anchors are expanded")
    return data


def _expanded_size(value: Any, sizes: dict[int, int]) -> int:
    """How many values `value` holds with every alias expanded (each shared object counted once
    per use, computed once), so `*a` repeated at every level cannot make validation explode."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) not in sizes:
        children = value.values() if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(value)]


def _raw_name(data: Any, section: str, index: int) -> str | None:
    try:
        name = data[section][index]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return name[:60] if isinstance(name, str) and name.isprintable() else None


def _context(loc: tuple, data: Any) -> tuple[str, tuple]:
    """("rule "X" (rules[0])", the rest of loc) for a pydantic error location."""
    if len(loc) >= 2 and loc[0] in ("rules", "receivers") and isinstance(loc[1], int):
        what = "rule" if loc[0] == "rules" else "receiver"
        name = _raw_name(data, loc[0], loc[1])
        where = f"{loc[0]}[{loc[1]}]"
        return (f'{what} "{name}" ({where})' if name else f"{what} {where}"), loc[2:]
    if loc and loc[0] == "route":
        return "route", loc[1:]
    return "", loc


def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"at most {ctx.get('max_length')} {unit}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    return _MESSAGES.get(kind, error["msg"])


def validate(data: Any, source: str):
    """A RulesFile from parsed YAML (an empty file is a file without rules), or RulesError."""
    from services.alerting.rules import RulesError, RulesFile
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(source, "must be a mapping with receivers, route and rules")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as err:
        lines = []
        for error in err.errors(include_url=False):
            context, rest = _context(tuple(error["loc"]), data)
            for text in _message(error).splitlines():
                path, named = _path(rest), _FIELD_FIRST.match(text)
                if named and error["type"] == "value_error":  # a model's check names its field first
                    path, text = (f"{path}.{named[1]}" if path else named[1]), named[2]
                lines.append(": ".join(p for p in (f"alert rules {source}", context, path, text) if p))
        if len(lines) > MAX_PROBLEMS:
            lines = lines[:MAX_PROBLEMS] + [f"alert rules {source}: … and {len(lines) - MAX_PROBLEMS} more problems"]
        raise RulesError(lines) from None


def _route_problems(route, names: set[str], where: str, depth: int, counter: list[int]) -> list[str]:
    problems = []
    counter[0] += 1
    if depth > LIMITS["route_depth"]:
        return [f"route: {where or 'routes'}: at most {LIMITS['route_depth']} levels of routes"]
    if route.receiver is not None and route.receiver not in names:
        field = f"{where}.receiver" if where else "receiver"
        problems.append(f"route: {field}: unknown receiver {route.receiver!r} (defined: {', '.join(sorted(names))})")
    for index, child in enumerate(route.routes):
        problems += _route_problems(child, names, f"{where}.routes[{index}]" if where else f"routes[{index}]",
                                    depth + 1, counter)
    return problems


def cross_file_problems(rules_file) -> list[str]:
    """The problems across a validated file: duplicate names, unknown receivers, the route tree."""
    problems: list[str] = []
    names: dict[str, int] = {}
    for index, receiver in enumerate(rules_file.receivers):
        if receiver.name in names:
            problems.append(f'receiver "{receiver.name}" (receivers[{index}]): name: duplicate of '
                            f"receivers[{names[receiver.name]}]")
        names.setdefault(receiver.name, index)
    route = rules_file.route
    if route is None and names:
        problems.append("route: required when receivers are given (route: {receiver: <name>})")
    if route is not None:
        if route.receiver is None:
            problems.append("route: receiver: required (the default receiver)")
        if route.matchers:
            problems.append("route: matchers: the root route takes every alert (matchers belong on routes:)")
        counter = [0]
        problems += _route_problems(route, set(names), "", 1, counter)
        if counter[0] > LIMITS["routes"]:
            problems.append(f"route: routes: at most {LIMITS['routes']} routes in all")
    seen: dict[tuple[str, str], int] = {}
    for index, rule in enumerate(rules_file.rules):
        where = f'rule "{rule.name}" (rules[{index}])'
        key = (rule.name, rule.severity)
        if key in seen:
            problems.append(f"{where}: name: rules[{seen[key]}] has the same name and severity (rules may share "
                            "a name only as levels of one condition, with different severities)")
        seen.setdefault(key, index)
        for step_index, step in enumerate(rule.escalate):
            if step.receiver is not None and step.receiver not in names:
                defined = ", ".join(sorted(names)) or "none"
                problems.append(f"{where}: escalate[{step_index}].receiver: unknown receiver {step.receiver!r} "
                                f"(defined: {defined})")
    return problems
