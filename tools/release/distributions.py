"""Build the release distributions of every package and check them (run by `nox -s build`).

    python tools/release/distributions.py [--out DIR] [--no-twine]

The monorepo has one version, the repository's VERSION file (one line). Every package
reads it ([tool.hatch.version] in its pyproject.toml), and a package with siblings (other
packages of packages/) requires each of them at exactly that version: its hatch_build.py
appends `<sibling>==<version>` to the dependencies of [tool.hatch.metadata.hooks.custom].

This script, run with `build` (and `twine`) installed:

1. removes the wheels and sdists in DIR (default: dist/ at the repository root);
2. builds each package's sdist and then a wheel from that sdist (`python -m build`, with uv as
   its installer when uv is on PATH), so that the checked wheel is one the sdist can rebuild;
3. checks that the copies of hatch_build.py are identical, and that DIR holds one wheel and one
   sdist per package, each of the monorepo version, with no direct reference (URL) among its
   requirements, every sibling requirement pinned (`name==version`), and the same
   requirements in the wheel as in the sdist;
4. runs `twine check --strict` on them (not with --no-twine).

It exits non-zero, naming each problem, when a check fails. tests/test_distributions.py runs it
as the session does and installs the result from DIR alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / "VERSION"
PACKAGES_DIR = ROOT / "packages"
HOOK = "hatch_build.py"


def version() -> str:
    """The monorepo version: VERSION's text, which must be a normalized PEP 440 version."""
    text = VERSION_FILE.read_text(encoding="utf-8").strip()
    if str(Version(text)) != text:
        raise ValueError(f"{VERSION_FILE}: {text!r} is not normalized, write {Version(text)}")
    return text


def packages() -> dict[str, Path]:
    """Each package of packages/: its canonical distribution name and its directory."""
    found: dict[str, Path] = {}
    for pyproject in sorted(PACKAGES_DIR.glob("*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
        found[canonicalize_name(name)] = pyproject.parent
    return found


def build(out: Path) -> None:
    """Empty `out` of distributions, then build every package's sdist, and a wheel from it."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.whl"), *out.glob("*.tar.gz")]:
        stale.unlink()
    installer = ["--installer", "uv"] if shutil.which("uv") else []
    for directory in packages().values():
        command = [sys.executable, "-m", "build", "--quiet", *installer, "--outdir", str(out)]
        if subprocess.run([*command, str(directory)], check=False).returncode != 0:
            raise SystemExit(f"distributions: building {directory} failed (above)")


def read_metadata(path: Path) -> Message:
    """The core metadata of a wheel (.dist-info/METADATA) or an sdist (PKG-INFO)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            text = wheel.read(name).decode("utf-8")
    else:
        with tarfile.open(path) as sdist:
            member = next(
                m
                for m in sdist.getmembers()
                if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
            )
            extracted = sdist.extractfile(member)
            assert extracted is not None
            text = extracted.read().decode("utf-8")
    return HeaderParser().parsestr(text)


def hook_problems() -> list[str]:
    """The copies of hatch_build.py must be one file: every package with siblings runs it."""
    copies = sorted(PACKAGES_DIR.glob(f"*/{HOOK}"))
    texts = {copy.read_text(encoding="utf-8") for copy in copies}
    if len(texts) > 1:
        names = ", ".join(str(copy.relative_to(ROOT)) for copy in copies)
        return [f"{names} differ: make them identical"]
    return []


def problems(out: Path, expected_version: str) -> list[str]:
    """What is wrong with the distributions in `out`; empty when they are ready to publish."""
    found: list[str] = []
    names = packages()
    files: dict[str, dict[str, Path]] = {name: {} for name in names}
    for path in sorted([*out.glob("*.whl"), *out.glob("*.tar.gz")]):
        kind = "wheel" if path.suffix == ".whl" else "sdist"
        name = canonicalize_name(read_metadata(path)["Name"])
        if name not in files:
            found.append(f"{path.name}: {name} is not a package of {PACKAGES_DIR}")
        elif kind in files[name]:
            found.append(f"{path.name}: a second {kind} of {name}, beside {files[name][kind].name}")
        else:
            files[name][kind] = path
    requirements: dict[Path, set[str]] = {}
    for package, built in files.items():
        for kind in ("wheel", "sdist"):
            if kind not in built:
                found.append(f"{package}: no {kind} in {out}")
        for path in built.values():
            metadata = read_metadata(path)
            if metadata["Version"] != expected_version:
                found.append(f"{path.name}: version {metadata['Version']}, not {expected_version}")
            requirements[path] = set(metadata.get_all("Requires-Dist") or [])
            for text in sorted(requirements[path]):
                requirement = Requirement(text)
                if requirement.url:
                    found.append(f"{path.name}: {text!r} is a direct reference")
                elif (
                    canonicalize_name(requirement.name) in names
                    and str(requirement.specifier) != f"=={expected_version}"
                ):
                    found.append(f"{path.name}: {text!r} is not pinned to =={expected_version}")
        if len(built) == 2 and requirements[built["wheel"]] != requirements[built["sdist"]]:
            found.append(f"{package}: the wheel's requirements differ from the sdist's")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: %(default)s")
    parser.add_argument("--no-twine", action="store_true", help="skip `twine check --strict`")
    args = parser.parse_args(argv)
    expected = version()
    found = hook_problems()
    if not found:
        build(args.out)
        found = problems(args.out, expected)
    if found:
        print("distributions: NOT ready to publish:", *found, sep="\n  ", file=sys.stderr)
        return 1
    built = sorted(str(p) for p in [*args.out.glob("*.whl"), *args.out.glob("*.tar.gz")])
    if not args.no_twine:
        subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *built], check=True)
    print(f"distributions: {len(built)} files of version {expected} in {args.out}, checked:")
    print("  every sibling requirement pinned to ==" + expected, *built, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
