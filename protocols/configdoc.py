"""YAML config documents checked against pydantic models, with errors that name the file,
line, key path, value and message, and suggest the closest key for a typo.

Shared by the edge agent, the hub and the installer's flasher, so that a config is judged
the same way wherever it is checked. Pure: it takes text, not paths.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        value = "" if self.value is _MISSING else f" = {_short(self.value)}"
        where = f"{self.path}{value}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class ConfigError(Exception):
    """One or more problems in a config document."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_MISSING = object()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[yaml.Node | None, yaml.Node | None]:
    """Return (value node, key node) for a pydantic location, as deep as the YAML goes."""
    node, key_node = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    node, key_node = v, k
                    break
            else:
                return node, key_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node, key_node = node.value[part], None
        else:
            return node, key_node
    return node, key_node


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _unwrap_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


#: a config is a few kilobytes; anything near these limits is a mistake or an attack
MAX_CONFIG_BYTES = 256 * 1024
#: values in the document once every alias is expanded (a "billion laughs" alias bomb is refused)
MAX_EXPANDED_VALUES = 100_000


def _expanded_size(root: yaml.Node, filename: str) -> None:
    """Refuse a document whose aliases expand to more than ``MAX_EXPANDED_VALUES`` values, or
    that refers to itself; linear in the document (each node's size is worked out once)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in children)
            sizes[key] = size
            if size > MAX_EXPANDED_VALUES and all(sizes[id(c)] <= MAX_EXPANDED_VALUES for c in children):
                raise ConfigError([ConfigIssue(filename, node.start_mark.line + 1, "", _MISSING,
                                               f"the aliases here expand to {size:,} values, more than "
                                               f"{MAX_EXPANDED_VALUES:,}: refused")])
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError([ConfigIssue(filename, node.start_mark.line + 1, "", _MISSING,
                                           "an alias refers to the value that contains it")])
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _parse(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([ConfigIssue(filename, 1, "", _MISSING,
                                       f"the config is {size:,} bytes, more than {MAX_CONFIG_BYTES:,}: refused")])
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _expanded_size(root, filename)
        return root, loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, line, "", _MISSING, f"YAML syntax error: {problem}")]) from None
    except RecursionError:
        raise ConfigError([ConfigIssue(filename, 1, "", _MISSING, "the document is nested too deeply")]) from None
    finally:
        loader.dispose()


def load(text: str, filename: str, model: type[M]) -> M:
    """Parse ``text`` (YAML) and validate it against ``model``; raise ``ConfigError``. Size and
    alias expansion are capped before anything is built from the document."""
    root, data = _parse(text, filename)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, 1, "", _MISSING, "the document must be a mapping of keys")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues(exc, root, data, filename, model)) from None


def _issues(exc: ValidationError, root: yaml.Node | None, data: Any, filename: str,
            model: type[BaseModel]) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        node, key_node = _node_at(root, loc)
        anchor = key_node if err["type"] == "extra_forbidden" and key_node is not None else node
        line = anchor.start_mark.line + 1 if anchor is not None else 1
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            message = "unknown key"
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif known:
                message += f"; expected one of: {', '.join(known)}"
        elif err["type"] == "missing":
            message = "required key is missing"
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        issues.append(ConfigIssue(filename, line, path, _value_at(data, loc), message))
    return sorted(issues, key=lambda i: i.line)



def issue_at(text: str, filename: str, loc: tuple[Any, ...], message: str) -> ConfigIssue:
    """A ``ConfigIssue`` at the line of the key at ``loc`` (a problem found after validation,
    such as a file the config names that is not there)."""
    root, data = _parse(text, filename)
    node, _ = _node_at(root, loc)
    line = node.start_mark.line + 1 if node is not None else 1
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    return ConfigIssue(filename, line, dotted, _value_at(data, loc), message)
