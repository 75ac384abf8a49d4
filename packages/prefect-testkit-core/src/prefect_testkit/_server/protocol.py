"""Names shared by the harness (parent) and its server child."""

from __future__ import annotations

import signal

LISTEN_FD_ENV = "PREFECT_TESTKIT_LISTEN_FD"
PARENT_PIPE_FD_ENV = "PREFECT_TESTKIT_PARENT_PIPE_FD"
NONCE_ENV = "PREFECT_TESTKIT_SERVER_NONCE"
IDENTITY_HEADER = "x-prefect-testkit-server"
RESET_PATH = "/__prefect_testkit__/reset"
FLUSH_PATH = "/__prefect_testkit__/flush"
# On this signal the server writes every thread's and every asyncio task's stack to its
# log, then STACK_DUMP_END; the harness sends it when the server hangs.
STACK_DUMP_SIGNAL = signal.SIGUSR1
STACK_DUMP_END = "-- end of the prefect-testkit server's stack dump --"
