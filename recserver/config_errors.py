"""Config validation errors a person can act on: every problem at once, each with its fix.

``collect_errors`` validates a parsed document the way ``config_from_document`` does (``defaults``
merged under every surface) but reports:

* every problem in one run: a field error hides the cross-field checks of its section, so the
  offending values are set aside and the document checked again (a few rounds at most); a
  section's cross-field check reports all it finds at once (``CrossFieldProblems``), each
  naming the field set aside so the checks of the enclosing sections run too;
* a bad value in ``defaults`` once, at ``defaults.<field>``, not once per surface that inherits
  it (and even when every surface overrides it, since the next surface added would not);
* the nearest known key for an unknown one, the allowed range for an out-of-range value;
* the YAML line of the field when the document came from a file (``yaml_lines``).
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Path = tuple[str, ...]

#: Rounds of "set the bad values aside and check again"; each round can only uncover checks that
#: the previous round's field errors hid, so a handful is plenty.
MAX_ROUNDS = 4

_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
           "less_than_equal": "<="}


class CrossFieldProblems(ValueError):
    """Every problem one section's cross-field check found, each as (fields, message).

    ``fields`` are the paths (below the section) of the values the check compares: the
    collector sets them all aside (their defaults agree) to reach the checks that this one
    hid. Raised from a pydantic validator, pydantic reports it as one error;
    ``collect_errors`` lists each problem.
    """

    def __init__(self, problems: Sequence[tuple[Sequence[Path], str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(message for _, message in self.problems))


def raise_problems(problems: Sequence[tuple[Sequence[Path], str]]) -> None:
    """Raise ``CrossFieldProblems`` when a cross-field check found any."""
    if problems:
        raise CrossFieldProblems(problems)


def yaml_lines(text: str) -> dict[Path, int]:
    """The 1-based line of every mapping key in a YAML document, by its path of keys."""
    lines: dict[Path, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                lines[(*path, str(i))] = value.start_mark.line + 1
                walk(value, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return lines


def _model_of(annotation: Any) -> Any:
    """The config model inside ``X | None``, ``dict[str, X]`` or ``list[X]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, dict, list):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def known_keys(root: type[BaseModel], path: Path) -> list[str]:
    """The keys the model at ``path`` (below ``root``) accepts; [] when unknown."""
    model: Any = root
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            # A dict's key (a surface name) or a list index: the same model continues.
            continue
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _lookup(document: Any, path: Path) -> tuple[bool, Any]:
    node = document
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _remove(document: Any, path: Path) -> bool:
    found, parent = _lookup(document, path[:-1])
    if found and isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False


def describe(err: Any, root: type[BaseModel], path: Path) -> str:
    """One pydantic error as "what is wrong; what to do"."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(path[-1], known_keys(root, path[:-1]), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "remove it or fix its spelling"
        return f"unknown key; {hint}"
    if kind == "missing":
        return "required; add it"
    if kind in _BOUNDS:
        op, limit = _BOUNDS[kind], next(iter(ctx.values()), "?")
        return f"{value!r} is out of range; use a value {op} {limit}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind.endswith("_parsing") or kind.endswith("_type"):
        return f"{value!r}: {message[0].lower()}{message[1:]}"
    return message


def _errors(
    validate: Callable[[Any], object], document: Any, prefix: Path
) -> list[tuple[Path, Any]]:
    """Validation errors of ``document`` over rounds, each with its full path.

    A ``CrossFieldProblems`` error becomes one entry per problem (type ``cross_field``). A
    problem found in an earlier round is not reported again when setting values aside makes
    its check fail once more (with a default in place of the value set aside).
    """
    found: list[tuple[Path, Any]] = []
    seen: set[tuple[Path, str]] = set()
    doc = copy.deepcopy(document)
    for _ in range(MAX_ROUNDS):
        try:
            validate(doc)
            break
        except ValidationError as exc:
            progress = False
            this_round: set[tuple[Path, str]] = set()
            for err in exc.errors():
                loc = tuple(str(p) for p in err["loc"])
                cause = (err.get("ctx") or {}).get("error")
                if isinstance(cause, CrossFieldProblems):
                    for fields, message in cause.problems:
                        key = ((*loc, *fields[0]), "cross_field")
                        if key not in seen:
                            this_round.add(key)
                            found.append(((*prefix, *loc), {"type": "cross_field", "msg": message}))
                        for field in fields:
                            progress = _remove(doc, (*loc, *field)) or progress
                    continue
                if (loc, err["type"]) not in seen:
                    this_round.add((loc, err["type"]))
                    found.append(((*prefix, *loc), err))
                exists, value = _lookup(doc, loc)
                # Set aside a bad leaf so the next round reaches the checks it hid; a section
                # whose own check failed stays (there is nothing under it to set aside).
                if exists and not isinstance(value, dict) and _remove(doc, loc):
                    progress = True
            seen |= this_round
            if not progress:
                break
    return found


def collect_errors(
    document: dict[str, Any],
    root: type[BaseModel],
    surface_model: type[BaseModel],
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
) -> list[tuple[Path, str]]:
    """Every problem of a document with a ``defaults`` section, as (field path, message)."""
    document = dict(document)
    defaults = document.pop("defaults", None) or {}
    problems: list[tuple[Path, str]] = []
    if isinstance(defaults, dict):
        for path, err in _errors(surface_model.model_validate, defaults, ("defaults",)):
            exists, value = _lookup(defaults, path[1:])
            # Cross-field checks belong to the merged surfaces (a surface may fix them).
            if err["type"] == "extra_forbidden" or (exists and not isinstance(value, dict)):
                problems.append((path, describe(err, surface_model, path[1:])))
    surfaces = document.get("surfaces")
    if isinstance(surfaces, dict) and isinstance(defaults, dict):
        document["surfaces"] = {
            name: merge(defaults, body or {}) if isinstance(body, dict | None) else body
            for name, body in surfaces.items()
        }
    for path, err in _errors(root.model_validate, document, ()):
        if len(path) > 2 and path[0] == "surfaces" and isinstance(surfaces, dict):
            inherited, _ = _lookup(defaults, path[2:]) if isinstance(defaults, dict) else (False, 0)
            own, _ = _lookup(surfaces.get(path[1]) or {}, path[2:])
            if inherited and not own:
                continue  # reported once, at defaults.<field>
        problems.append((path, describe(err, root, path)))
    return problems


def format_problems(source: str, problems: list[tuple[Path, str]], lines: dict[Path, int]) -> str:
    """``source: invalid config (N problems)`` and one line per problem, with its YAML line."""
    out = [f"{source}: invalid config ({len(problems)} problem(s))"]
    located = [(_line_of(path, lines), path, message) for path, message in problems]
    located.sort(key=lambda p: p[0] or 0)  # file order; stable, so unlocated keep theirs
    for line, path, message in located:
        where = ".".join(path) or "(top level)"
        at = f" (line {line})" if line else ""
        out.append(f"  {where}: {message}{at}")
    return "\n".join(out)


def _line_of(path: Path, lines: dict[Path, int]) -> int | None:
    """The line of ``path``, else of its nearest ancestor present in the file."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
