"""Take leases, report them on stdout, then hold them until killed.

Usage: holder.py [port LOW-HIGH] [directory PURPOSE]...
"""

from __future__ import annotations

import sys
import time

from prefect_testkit_xdist import lease_directory, lease_port, parse_port_range

args = sys.argv[1:]
report = []
leases = []
while args:
    kind, value, *args = args
    if kind == "port":
        port_lease = lease_port(parse_port_range(value), timeout=10)
        leases.append(port_lease)
        report.append(f"port={port_lease.port}")
    else:
        directory_lease = lease_directory(value, timeout=10)
        leases.append(directory_lease)
        # Leave something behind, as a harness's database would be.
        (directory_lease.path / "prefect.db").write_bytes(b"not really sqlite")
        report.append(f"directory={directory_lease.path}")
print(" ".join(report), flush=True)
while True:
    time.sleep(60)
