"""The PostgreSQL backend: a database per harness on a configured server or a supervised
local cluster, its template, its binaries and its clean-up."""
