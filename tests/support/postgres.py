"""A throwaway PostgreSQL server on loopback for the tests (Debian's postgresql package).

`make test` installs the package when it is missing. The server runs as the `postgres` user
(initdb refuses root), with password authentication, from a private temp folder, and is
stopped with the test session.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class PostgresServer:
    base: Path
    port: int
    password: str
    bindir: Path

    def dsn(self, database: str = "dlt_tests") -> str:
        return f"postgresql://loader:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: Optional[str] = None) -> None:
        """A new database, copied from `template` when given (a fast file-level copy)."""
        clause = f" TEMPLATE {template}" if template else ""
        for attempt in range(50):  # a copy fails while another session still uses the template
            try:
                self._admin(f"CREATE DATABASE {name}{clause}")
                return
            except Exception as ex:
                if "being accessed by other users" not in str(ex) or attempt == 49:
                    raise
                time.sleep(0.1)

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _admin(self, sql: str) -> None:
        import psycopg2

        con = psycopg2.connect(self.dsn())
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def stop(self) -> None:
        _run(self.bindir / "pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def find_bindir() -> Optional[Path]:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(candidates[-1]).parent if candidates else None


def start_postgres(durable: bool = False) -> PostgresServer:
    """A throwaway server. Fast by default (no fsync, asynchronous commits): fine while the
    server itself lives. A test that kills the *server* must pass `durable=True`: with
    `synchronous_commit=off` a crashed server may lose commits it already acknowledged, which
    would look like a runner bug."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run `make test` (it installs Debian's postgresql)"
            " or `apt-get install postgresql`"
        )
    base = Path(tempfile.mkdtemp(prefix="dlt-runner-pg-"))
    base.chmod(0o755)
    password = secrets.token_urlsafe(16)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    (base / "data").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(base / "data", "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    port = _free_port()
    _run(bindir / "initdb", "-D", str(base / "data"), "-U", "loader", "--auth=scram-sha-256",
         f"--pwfile={pwfile}", "--no-sync")
    pwfile.unlink()
    _run(
        bindir / "pg_ctl", "-D", str(base / "data"), "-l", str(base / "server.log"), "-w",
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200"
        + ("" if durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"),
        "start",
    )
    env = {**os.environ, "PGPASSWORD": password}
    subprocess.run(
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "loader",
         "dlt_tests"],
        check=True, env=env, capture_output=True,
    )
    return PostgresServer(base=base, port=port, password=password, bindir=bindir)


def _run(*cmd: object) -> None:
    args = [str(c) for c in cmd]
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=True, capture_output=True, cwd="/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(path: str) -> tuple[int, ...]:
    part = path.split("/")[4]
    return tuple(int(p) for p in part.split(".") if p.isdigit())
