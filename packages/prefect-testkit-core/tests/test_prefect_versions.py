"""What differs between Prefect releases: the working-set check of each minor's extra."""

from __future__ import annotations

from importlib import metadata

import prefect
from packaging.version import Version

from prefect_testkit._prefect import working_set_mismatches

PYTEST = metadata.version("pytest")


def test_a_library_outside_the_extras_range_is_named_with_both_versions() -> None:
    requirements = [
        'prefect>=3.0,<3.1; extra == "prefect-3-0"',  # Prefect itself is the user's choice
        f'pytest<{PYTEST}; extra == "prefect-3-0"',
        f'pytest>={PYTEST}; extra == "prefect-3-1"',  # another minor's extra
        'no-such-distribution<1; extra == "prefect-3-0"',  # not installed: nothing to say
        "pytest<1",  # a plain dependency, not an extra
    ]
    assert working_set_mismatches(requirements, "prefect-3-0") == [
        f"pytest ({PYTEST} installed, <{PYTEST} needed)"
    ]
    assert working_set_mismatches(requirements, "prefect-3-1") == []


def test_this_environment_is_the_working_set_of_its_prefect_minor() -> None:
    """nox installs each Prefect minor with its extra: the check must find nothing."""
    version = Version(prefect.__version__)
    extra = f"prefect-{version.major}-{version.minor}"
    extras = metadata.metadata("prefect-testkit-core").get_all("Provides-Extra") or []
    assert extra in extras, f"no extra {extra} for Prefect {prefect.__version__}: {extras}"
    assert working_set_mismatches(metadata.requires("prefect-testkit-core") or [], extra) == []
