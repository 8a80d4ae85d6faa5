"""Compile the per-event path with mypyc: `python build_native.py` (the Makefile's `native`).

The modules are those listed under `[tool.mmfleet] native` in pyproject.toml (`bots.native.configured`).

Each module gets a C extension next to its .py, which Python imports first; their shared runtime is
`bots/native__mypyc`, inside the package so an editable install finds it. Without the extensions the
same .py files run unchanged, only slower. Intermediate files go to build/native. The extensions are
touched after a build: setuptools copies an unchanged one with its old time, and `bots.native.stale`
compares times.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

from bots.native import configured, extension_of

if __name__ == "__main__":
    sources = sys.argv[1:] or configured()
    extensions = mypycify(sources, group_name="bots.native", target_dir="build/native")
    for extension in extensions:
        # The group is one C file, so a call between our functions is a direct C call; without
        # semantic interposition (nobody interposes an extension's symbols) the compiler may also
        # inline it, and the engine's small composed functions cost nothing.
        extension.extra_compile_args.append("-fno-semantic-interposition")
    setup(
        name="mmfleet-native",
        ext_modules=extensions,
        script_args=["build_ext", "--inplace", "--build-temp", "build/native"],
    )
    for source in map(Path, sources):
        if (extension := extension_of(source)) is not None:
            os.utime(extension)
