from __future__ import annotations

import pytest

from prefect_testkit_xdist import (
    DEFAULT_PORT_RANGE,
    AllocatorConfigError,
    AllocatorError,
    lease_directory,
    lease_port,
    parse_port_range,
    worker_identity,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8000-8999", range(8000, 9000)),
        (" 10 - 12 ", range(10, 13)),
        ("65535-65535", range(65535, 65536)),
        ((1, 3), range(1, 4)),
        ([7000, 7001], range(7000, 7002)),
        (range(9000, 9010), range(9000, 9010)),
        (range(9000, 9010, 2), range(9000, 9010, 2)),
    ],
)
def test_parse_port_range_accepts_the_documented_forms(value: object, expected: range) -> None:
    assert parse_port_range(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "not of the form"),
        ("8000", "not of the form"),
        ("8000:8999", "not of the form"),
        ("-1-5", "not of the form"),
        ("9000-8000", "reversed"),
        ((9000, 8000), "reversed"),
        (range(9000, 8000, -1), "reversed"),
        (range(8000, 8000), "empty"),
        (range(9000, 8000), "empty"),
        ("0-10", "outside"),
        ("65000-65536", "outside"),
        ((0, 0), "outside"),
        (range(65530, 70000), "outside"),
        ((1, 2, 3), "pair"),
        ((True, 5), "pair"),
        (("1", "2"), "pair"),
        (8000, "unsupported type"),
        (None, "unsupported type"),
    ],
)
def test_parse_port_range_rejects_bad_values_naming_them(value: object, problem: str) -> None:
    with pytest.raises(AllocatorConfigError) as caught:
        parse_port_range(value)  # type: ignore[arg-type]
    message = str(caught.value)
    assert problem in message
    assert repr(value) in message
    assert '"LOW-HIGH"' in message  # names the allowed form


def test_config_error_is_both_value_error_and_allocator_error() -> None:
    assert issubclass(AllocatorConfigError, ValueError)
    assert issubclass(AllocatorConfigError, AllocatorError)
    assert issubclass(AllocatorError, RuntimeError)


def test_default_port_range() -> None:
    assert range(8000, 9000) == DEFAULT_PORT_RANGE


@pytest.mark.parametrize("bad", ["9000-8000", "nonsense", "0-100"])
def test_port_range_env_is_validated_and_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_PORT_RANGE", bad)
    with pytest.raises(AllocatorConfigError, match="PREFECT_TESTKIT_PORT_RANGE="):
        lease_port()


@pytest.mark.parametrize("bad", ["soon", "-1", "nan", "inf"])
def test_timeout_env_is_validated_and_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_LEASE_TIMEOUT", bad)
    with pytest.raises(AllocatorConfigError, match="PREFECT_TESTKIT_LEASE_TIMEOUT="):
        lease_directory()


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), True, "5"])
def test_timeout_parameter_is_validated(bad: object) -> None:
    with pytest.raises(AllocatorConfigError, match="timeout="):
        lease_port(timeout=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "has space", "../escape", "a/b", "-leading", "x" * 41, 3])
def test_directory_purpose_is_validated(bad: object) -> None:
    with pytest.raises(AllocatorConfigError, match="purpose="):
        lease_directory(bad)  # type: ignore[arg-type]


def test_identity_of_a_plain_process() -> None:
    identity = worker_identity()
    assert (identity.run_id, identity.worker) == ("local", "main")
    assert not identity.is_parallel
    assert identity.slug == "local_main"


def test_identity_under_xdist_nox_and_bazel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    identity = worker_identity()
    assert (identity.worker, identity.xdist_worker_count, identity.is_parallel) == ("gw3", 4, True)
    assert identity.slug == "0123456789ab_gw3"

    monkeypatch.setenv("TEST_SHARD_INDEX", "2")
    monkeypatch.setenv("TEST_TOTAL_SHARDS", "5")
    monkeypatch.setenv("NOX_CURRENT_SESSION", "tests(python='3.11')")
    identity = worker_identity()
    assert (identity.shard_index, identity.shard_total) == (2, 5)
    assert identity.worker == "shard-2-gw3"
    assert identity.nox_session == "tests(python='3.11')"
    slug = identity.slug
    assert slug.startswith("tests-python-3.11_0123456789ab_shard-2-gw3_")
    assert all(character.isalnum() or character in "._-" for character in slug)

    # A session name that sanitises to the same text must still get its own slug.
    monkeypatch.setenv("NOX_CURRENT_SESSION", 'tests(python="3.11")')
    assert worker_identity().slug != slug


@pytest.mark.parametrize(
    ("index", "total", "problem"),
    [("x", "4", "not an integer"), ("-1", "4", "below 0"), ("4", "4", "not below")],
)
def test_identity_rejects_bad_shard_variables(
    monkeypatch: pytest.MonkeyPatch, index: str, total: str, problem: str
) -> None:
    monkeypatch.setenv("TEST_SHARD_INDEX", index)
    monkeypatch.setenv("TEST_TOTAL_SHARDS", total)
    with pytest.raises(AllocatorConfigError, match=problem):
        worker_identity()
