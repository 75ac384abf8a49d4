"""Write a distribution's installed metadata from its pyproject.toml (tools/bazel/dist_info.bzl).

dist_info.py PYPROJECT VERSION_FILE OUTPUT_DIR [--requires=NAME]...

The version is the monorepo's, VERSION_FILE's first line (the repository's VERSION, which every
pyproject.toml reads through [tool.hatch.version]). Creates
OUTPUT_DIR/<name>-<version>.dist-info/ with METADATA (name, version, Requires-Dist and
Provides-Extra as a wheel's: the dependencies, each sibling `==<version>` as hatch_build.py
pins it, and each extra's requirements with `extra == "<extra>"`) and
entry_points.txt (every [project.entry-points.<group>] table, [project.scripts] as
console_scripts and [project.gui-scripts] as gui_scripts), the files pip would have written, so
that importlib.metadata (pytest's pytest11 plugins, `prefect-testkit clean`'s cleanup hooks,
version lookups) sees the package as installed.

It first checks that the NAMEs of --requires, the sibling packages the Bazel library depends
on, are exactly the `siblings` of pyproject.toml's [tool.hatch.metadata.hooks.custom] (which
its hatch_build.py pins to the version), so that the two dependency lists cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]


def main(pyproject: Path, version_file: Path, output: Path, requires: list[str]) -> int:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = config["project"]
    name = project.get("name")
    version = version_file.read_text(encoding="utf-8").strip()
    if not name or "version" not in project.get("dynamic", []) or not version:
        print(
            f"{pyproject}: [project] needs a static name and a dynamic version "
            f"(the monorepo's, {version_file})",
            file=sys.stderr,
        )
        return 1
    hook = config.get("tool", {}).get("hatch", {}).get("metadata", {}).get("hooks", {})
    hook = hook.get("custom", {})
    siblings = list(hook.get("siblings", []))
    if set(siblings) != set(requires):
        print(
            f"{pyproject.parent}/BUILD.bazel: the library depends on the packages "
            f"{sorted(requires)}, but {pyproject} on {sorted(siblings)}: "
            "make the deps of its py_package match",
            file=sys.stderr,
        )
        return 1
    groups: dict[str, dict[str, str]] = dict(project.get("entry-points", {}))
    for key, group in (("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")):
        if project.get(key):
            groups[group] = project[key]
    stem = re.sub(r"[-_.]+", "_", name).lower()
    info = output / f"{stem}-{version}.dist-info"
    info.mkdir(parents=True)
    fields = [("Metadata-Version", "2.1"), ("Name", name), ("Version", version)]
    dependencies = project.get("dependencies", hook.get("dependencies", []))
    fields += [("Requires-Dist", dep) for dep in dependencies]
    fields += [("Requires-Dist", f"{sibling}=={version}") for sibling in siblings]
    for extra, extra_requirements in project.get("optional-dependencies", {}).items():
        fields.append(("Provides-Extra", extra))
        for requirement in extra_requirements:
            spec, _, marker = requirement.partition(";")
            condition = f"({marker.strip()}) and " if marker.strip() else ""
            fields.append(("Requires-Dist", f'{spec.strip()}; {condition}extra == "{extra}"'))
    (info / "METADATA").write_text(
        "".join(f"{key}: {value}\n" for key, value in fields), encoding="utf-8"
    )
    lines = []
    for group in sorted(groups):
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in sorted(groups[group].items())]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    positional = [arg for arg in sys.argv[1:] if not arg.startswith("--requires=")]
    names = [arg.removeprefix("--requires=") for arg in sys.argv[1:] if arg not in positional]
    sys.exit(main(Path(positional[0]), Path(positional[1]), Path(positional[2]), names))
