"""Installed size of each install (the base SDK and every extra), from the metadata of the
venv this runs in: the dependency closure of the install's requirements, summed over the
files in each distribution's RECORD (pip and setuptools not counted).

    python -m benchmarks.installs [--before OLD/pyproject.toml]

``--before`` adds the same figures for another checkout's pyproject.toml (e.g. a
worktree of an older commit), resolved against the same installed versions.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WATCHED = ("torch", "transformers", "streamlit")


def _size(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        try:
            total += Path(str(file.locate())).stat().st_size
        except OSError:
            continue
    return total


class Closure:
    """Distributions an install pulls in, by resolving requirements against this venv."""

    def __init__(self, project: dict[str, object]) -> None:
        self.name = str(canonicalize_name(str(project["name"])))
        extras = project.get("optional-dependencies", {})
        self.extras: dict[str, list[str]] = extras if isinstance(extras, dict) else {}
        self.installed: dict[str, metadata.Distribution] = {
            str(canonicalize_name(d.metadata["Name"])): d for d in metadata.distributions()
        }

    def of(self, requirements: Iterable[str]) -> set[str]:
        seen: set[tuple[str, tuple[str, ...]]] = set()
        self._walk(requirements, seen)
        return {name for name, _ in seen}

    def _walk(self, requirements: Iterable[str], seen: set[tuple[str, tuple[str, ...]]]) -> None:
        for text in requirements:
            req = Requirement(text)
            name = str(canonicalize_name(req.name))
            if name == self.name:  # a self-referencing extra
                for extra in req.extras:
                    self._walk(self.extras[extra], seen)
                continue
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            key = (name, tuple(sorted(req.extras)))
            if key in seen or name not in self.installed:
                continue
            seen.add(key)
            for sub in self.installed[name].requires or []:
                child = Requirement(sub)
                wanted = ("", *req.extras)
                if child.marker and not any(child.marker.evaluate({"extra": e}) for e in wanted):
                    continue
                child.marker = None
                self._walk([str(child)], seen)


def report(label: str, pyproject: Path, extras: list[str | None]) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    closure = Closure(project)
    for extra in extras:
        names = closure.of([*project["dependencies"], *(closure.extras[extra] if extra else [])])
        mib = sum(_size(closure.installed[n]) for n in names) / 2**20
        flags = " ".join(f"{w}={'yes' if w in names else 'no'}" for w in WATCHED)
        print(f"{label:7} {extra or 'base':13} {len(names):4d} dists {mib:7.0f} MiB  {flags}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout's pyproject.toml")
    args = parser.parse_args()
    print("command:", " ".join(["python -m benchmarks.installs", *sys.argv[1:]]))
    if args.before:
        report("before", args.before, [None])
    ours = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(ours.read_text())["project"]["optional-dependencies"]
    report("after", ours, [None, *extras])


if __name__ == "__main__":
    main()
