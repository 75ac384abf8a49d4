"""The SQLite backend: the migrated template database, cached per Prefect version."""
