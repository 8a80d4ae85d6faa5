"""Which of our modules run compiled (mypyc extensions built by `make native`), and which are stale.

The modules to compile are listed once, under `[tool.mmfleet] native` in pyproject.toml. Python
imports an extension before the .py beside it, so an extension built from an older source would
silently run old code: `stale()` finds those, and the test session refuses to start on them.
"""

from __future__ import annotations

import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from bots.errors import ConfigError

__all__ = ["compiled", "configured", "extension_of", "require_fresh", "stale"]

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("bots", "ml")


def configured() -> list[str]:
    """Source paths (relative to the project root) that `make native` compiles; [] outside a checkout."""
    try:
        with (_ROOT / "pyproject.toml").open("rb") as file:
            paths: list[str] = tomllib.load(file)["tool"]["mmfleet"]["native"]
    except (OSError, KeyError):
        return []
    return paths


def extension_of(source: Path) -> Path | None:
    """The compiled extension Python would import instead of `source`, if one lies beside it."""
    for suffix in EXTENSION_SUFFIXES:
        extension = source.with_name(source.stem + suffix)
        if extension.exists():
            return extension
    return None


def _extensions(root: Path | None = None) -> list[tuple[str, Path, Path]]:
    """(module name, source, extension) for every source with an extension beside it."""
    root = root or _ROOT
    found = []
    for package in _PACKAGES:
        for source in sorted((root / package).rglob("*.py")):
            if (extension := extension_of(source)) is not None:
                module = ".".join(source.relative_to(root).with_suffix("").parts)
                found.append((module, source, extension))
    return found


def compiled() -> list[str]:
    """Names of the modules that import as compiled extensions."""
    return [module for module, _, _ in _extensions()]


def stale(root: Path | None = None) -> list[str]:
    """Compiled modules whose source changed after their extension was built."""
    return [
        module
        for module, source, extension in _extensions(root)
        if source.stat().st_mtime > extension.stat().st_mtime
    ]


def require_fresh(root: Path | None = None) -> None:
    """Refuse to run code other than what was tested: ConfigError (exit 2) naming the stale modules."""
    if modules := stale(root):
        raise ConfigError(
            f"compiled modules older than their source: {', '.join(modules)}; run `make native` "
            "(or delete their .so files to run the slower interpreted code)"
        )
