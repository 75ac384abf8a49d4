"""Nothing to see here: pytest-prefect-testkit gives every test the session harness
(``prefect_harness_autouse = true`` in pyproject.toml) and prints what it did."""
