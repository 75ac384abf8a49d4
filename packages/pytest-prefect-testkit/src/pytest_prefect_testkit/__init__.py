"""pytest plugin for prefect-testkit (registered through the ``pytest11`` entry point).

The fixtures (``prefect_harness``, ``prefect_clean_db``, ``prefect_client``,
``sync_prefect_client``, ``prefect_logs``), the ``prefect_isolated`` marker and the
``--prefect-*`` options need no import; this module exposes the pieces useful outside pytest.
"""

from pytest_prefect_testkit._options import PluginOptions
from pytest_prefect_testkit._sharding import ShardSpec, parse_shard, shard_of

__all__ = ["PluginOptions", "ShardSpec", "parse_shard", "shard_of"]
