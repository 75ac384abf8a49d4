"""Hatchling metadata hook: this package's dependencies, its siblings pinned to the version.

pyproject.toml's [tool.hatch.metadata.hooks.custom] lists `dependencies` (third-party) and
`siblings` (packages of the monorepo's packages/); [project] dependencies become those plus
`<sibling>==<version>` for each sibling, the version being the monorepo's (VERSION, read by
[tool.hatch.version]). A build from the sdist never calls this: its PKG-INFO holds them.

The same file is in every package that has siblings (tools/release checks the copies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface


class SiblingPins(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        version = metadata["version"]
        packages = Path(self.root).parent
        pins = []
        for sibling in self.config.get("siblings", []):
            if not (packages / sibling / "pyproject.toml").is_file():
                raise ValueError(f"sibling {sibling!r}: no {packages / sibling / 'pyproject.toml'}")
            pins.append(f"{sibling}=={version}")
        metadata["dependencies"] = [*self.config.get("dependencies", []), *pins]
