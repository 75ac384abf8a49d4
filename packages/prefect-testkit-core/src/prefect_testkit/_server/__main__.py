"""``python -m prefect_testkit._server``: the spawned server child."""

from prefect_testkit._server.app import main

main()
