"""Names shared by the harness (parent) and its server child."""

from __future__ import annotations

LISTEN_FD_ENV = "PREFECT_TESTKIT_LISTEN_FD"
PARENT_PIPE_FD_ENV = "PREFECT_TESTKIT_PARENT_PIPE_FD"
NONCE_ENV = "PREFECT_TESTKIT_SERVER_NONCE"
IDENTITY_HEADER = "x-prefect-testkit-server"
RESET_PATH = "/__prefect_testkit__/reset"
FLUSH_PATH = "/__prefect_testkit__/flush"
SQLITE_IMMEDIATE_ENV = "PREFECT_TESTKIT_SQLITE_IMMEDIATE"
API_AUTH_ENV = "PREFECT_TESTKIT_API_AUTH"
