"""One stress-test process: take and release a port and a directory, proving exclusivity each time.

Usage: stress_worker.py WORKER_NUMBER ITERATIONS MARKER_DIR LOW-HIGH RESULT_FILE

Exclusivity is checked independently of the allocator, through the file system and the kernel:
- port: creating markers/port-N with O_EXCL fails if anyone else believes they hold port N; the
  handed-over socket must be bound to N and accept a real connection;
- directory: creating markers/dir-NAME with O_EXCL fails likewise; the directory must be empty
  at grant, and after we write our marker and SQLite database, nobody else's marker may appear.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from pathlib import Path

from prefect_testkit_xdist import lease_directory, lease_port, parse_port_range


def claim(marker: Path, problems: list[str], what: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        problems.append(f"double grant of {what}: {marker.name} already claimed")
        return False
    return True


def main() -> None:
    number, iterations = int(sys.argv[1]), int(sys.argv[2])
    markers, ports, result_file = Path(sys.argv[3]), parse_port_range(sys.argv[4]), sys.argv[5]
    problems: list[str] = []
    ports_seen: set[int] = set()
    me = f"owner-{number}-{os.getpid()}"
    for iteration in range(iterations):
        with lease_port(ports, timeout=30) as port, lease_directory("stress", timeout=30) as lease:
            port_marker = markers / f"port-{port.port}"
            dir_marker = markers / f"dir-{lease.path.name}"
            port_claimed = claim(port_marker, problems, f"port {port.port}")
            dir_claimed = claim(dir_marker, problems, f"directory {lease.path.name}")
            ports_seen.add(port.port)
            if port.socket.getsockname() != ("127.0.0.1", port.port):
                problems.append(f"socket for {port.port} is bound to {port.socket.getsockname()}")
            with socket.create_connection(port.address, timeout=10) as client:
                accepted, _ = port.socket.accept()
                accepted.sendall(b"x")
                if client.recv(1) != b"x":
                    problems.append(f"port {port.port}: no echo")
                accepted.close()
            if found := os.listdir(lease.path):
                problems.append(f"{lease.path.name} not empty at grant: {found}")
            (lease.path / me).write_text(str(iteration))
            database = sqlite3.connect(lease.path / "prefect.db")
            try:
                database.execute("PRAGMA journal_mode=OFF")
                database.execute("PRAGMA synchronous=OFF")
                database.execute("CREATE TABLE runs (owner TEXT, iteration INTEGER)")
                database.execute("INSERT INTO runs VALUES (?, ?)", (me, iteration))
                database.commit()
                rows = database.execute("SELECT owner, iteration FROM runs").fetchall()
            finally:
                database.close()
            if rows != [(me, iteration)]:
                problems.append(f"{lease.path.name}: database rows {rows}")
            foreign = [name for name in os.listdir(lease.path) if name.startswith("owner-")]
            if foreign != [me]:
                problems.append(f"{lease.path.name}: markers {foreign}, expected only {me}")
            # Unclaim before the leases end: after release the next holder may claim at once.
            if port_claimed:
                port_marker.unlink()
            if dir_claimed:
                dir_marker.unlink()
    Path(result_file).write_text(
        json.dumps({"iterations": iterations, "problems": problems, "ports": sorted(ports_seen)})
    )


if __name__ == "__main__":
    main()
