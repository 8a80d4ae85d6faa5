"""Reading a fleet file as untrusted text: bounded size, bounded YAML alias expansion and depth,
duplicate keys refused, and errors that say where, never what the line holds."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from bots.errors import ConfigError
from bots.safe_json import describe_kind

__all__ = ["MAX_FILE_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "read_fleet_file"]

MAX_FILE_BYTES = 1024 * 1024  # a fleet of a thousand bots is far less
MAX_YAML_NODES = 100_000  # nodes after expanding every alias: a big fleet has a few thousand
MAX_YAML_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys: with PyYAML the last one silently wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """Where and what, never the line itself: it may hold anything, a secret included."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or type(exc).__name__)[:200]
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(path: Path, root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand to more than MAX_YAML_NODES nodes, that nests deeper
    than MAX_YAML_DEPTH, or that refers to itself: measured on the composed graph (each node once), before
    anything is built, so a 300-byte alias bomb is refused in microseconds."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            height[key] = 1 + max((height[id(child)] for child in children), default=0)
            visiting.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{path}: refused: its aliases expand to more than {MAX_YAML_NODES} values (alias bomb?)"
                )
            if height[key] > MAX_YAML_DEPTH:
                raise ConfigError(f"{path}: refused: nested more than {MAX_YAML_DEPTH} levels deep")
            continue
        if key in size:
            continue
        visiting.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in visiting:
                raise ConfigError(f"{path}: refused: an alias refers to a node that contains it")
            if id(child) not in size:
                stack.append((child, False))


def _parse_yaml(path: Path, text: str) -> Any:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(path, node)
        return loader.construct_document(node)
    except RecursionError:  # the composer recurses once per nesting level
        raise ConfigError(f"{path}: refused: nested more than {MAX_YAML_DEPTH} levels deep") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc)) from None
    finally:
        loader.dispose()


def read_fleet_file(path: Path) -> dict[str, Any]:
    """Parse the fleet file into a mapping; every failure is a `ConfigError` naming the file."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a fleet file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes, not a fleet file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    data = _parse_yaml(path, text)  # a SafeLoader subclass
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping with 'defaults' and 'bots' (got {describe_kind(data)})"
        )
    return {str(key): value for key, value in data.items()}
