"""The README documents exactly the variables the harness reads."""

from __future__ import annotations

import re
from pathlib import Path

from prefect_testkit import config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_is_the_one_generated_from_the_configuration() -> None:
    assert config.variables_table() in README.read_text(), (
        "README.md's table of environment variables is out of date; replace it with the "
        "output of: python -c 'from prefect_testkit.config import variables_table as t; print(t())'"
    )


def test_every_variable_the_core_reads_is_in_the_configuration() -> None:
    source = Path(config.__file__).parent
    named = set()
    for module in source.rglob("*.py"):
        named |= set(re.findall(r'"(PREFECT_TESTKIT_[A-Z_]+)"', module.read_text()))
    # Internal hand-overs between the harness and its children, not settings.
    internal = {
        "PREFECT_TESTKIT_LISTEN_FD",
        "PREFECT_TESTKIT_PARENT_PIPE_FD",
        "PREFECT_TESTKIT_SERVER_NONCE",
        "PREFECT_TESTKIT_FACTORY_LOCK_FD",
        "PREFECT_TESTKIT_FACTORY_SOCKET",
    }
    documented = {variable.name for variable in config.VARIABLES}
    assert named - internal == documented
