"""pytest plugin for prefect-testkit (registered through the ``pytest11`` entry point)."""
