"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory, one postmaster.

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin``, newest version first).
Listens on 127.0.0.1 and on a socket in its own directory, trusts every local connection, keeps
nothing: ``close()`` stops the server and removes the directory. PostgreSQL refuses to run as
root, so as root initdb and postgres run as the ``postgres`` OS user (``runuser -u postgres``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from progress.redis_server import free_port

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_OS_USER = "postgres"
_SUPERUSER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def find_postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and postgres."""
    candidates = [
        path.parent
        for path in _DEBIAN_ROOT.glob("*/bin/initdb")
        if (path.parent / "postgres").exists()
    ]
    if not candidates:
        raise RuntimeError(
            f"no PostgreSQL server binaries under {_DEBIAN_ROOT}/<version>/bin: "
            "apt-get install postgresql (scripts/install-system-deps.sh does it as root)"
        )
    return max(candidates, key=lambda bindir: _version_key(bindir.parent.name))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


class PostgresServer:
    """Create, start, stop and remove one PostgreSQL cluster on a loopback port."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", database: str = "test"
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.database = _checked_name(database)
        self.bindir = find_postgres_bindir()
        self._as_postgres = _run_as_postgres_prefix()
        self._root = Path(tempfile.mkdtemp(prefix="postgres-"))
        self._data = self._root / "data"
        self._sockets = self._root / "sockets"
        self._log = self._root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's test database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return f"postgresql+psycopg://{_SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """initdb (once), start the postmaster, wait until it accepts connections, create the
        test database. Cleans everything up again if any of that fails."""
        try:
            if not self._initialised:
                self._initdb(timeout)
            self._start_postmaster()
            self._wait_until_up(timeout)
            self._create_if_missing(self.database)
        except BaseException:
            self.close()
            raise
        return self

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; its SQLAlchemy URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked_name(name)))
        with self._admin() as connection:
            if connection.info.server_version >= 150000:
                # Copying the template's files is ~4x faster than WAL-logging them (fsync off).
                statement = sql.SQL("{} STRATEGY = FILE_COPY").format(statement)
            connection.execute(statement)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting whoever is still connected."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        with self._admin() as connection:
            connection.execute(statement.format(sql.Identifier(_checked_name(name))))

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT); after ``timeout``, immediate shutdown (SIGQUIT); after 5 s
        more, SIGKILL to the postmaster and its children. Signals go to the postmaster itself,
        never to runuser: runuser would relay them, then SIGKILL postgres 2 s later."""
        process, self._process = self._process, None
        if process is None:
            return
        postmaster = self._postmaster_pid()
        for signum, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)):
            if postmaster is None or process.poll() is not None:
                break
            _signal(postmaster, signum)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            # Postgres puts each child in a session of its own: the group kill misses them.
            children = _children(postmaster) if postmaster is not None else []
            _signal_group(process.pid, signal.SIGKILL)
            for child in children:
                _signal(child, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _initdb(self, timeout: float) -> None:
        self._sockets.mkdir()
        if self._as_postgres:
            record = pwd.getpwnam(_OS_USER)
            for path in (self._root, self._sockets):
                os.chown(path, record.pw_uid, record.pw_gid)
        args = [
            *self._as_postgres,
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self._data),
            "--username",
            _SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]
        result = subprocess.run(
            args,
            cwd=self._root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{output}")
        self._initialised = True

    def _start_postmaster(self) -> None:
        args = [
            *self._as_postgres,
            str(self.bindir / "postgres"),
            "-D",
            str(self._data),
            "-p",
            str(self.port),
            "-k",
            str(self._sockets),
            "-c",
            f"listen_addresses={self.host}",
            # A throwaway cluster: durability only costs time.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                args,
                cwd=self._root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to kill all of it at once
            )

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"postgres exited:\n{self._log_tail()}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not accepting connections after {timeout}s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _create_if_missing(self, name: str) -> None:
        with self._admin() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        if exists is None:
            self.create_database(name)

    def _admin(self) -> psycopg.Connection:
        """An autocommit connection to the ``postgres`` database (CREATE/DROP DATABASE)."""
        return psycopg.connect(self._conninfo("postgres"), autocommit=True, connect_timeout=5)

    def _conninfo(self, database: str) -> str:
        return f"host={self.host} port={self.port} user={_SUPERUSER} dbname={database}"

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self._data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first_line) if first_line.strip().isdigit() else None

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self._log})"


def _run_as_postgres_prefix() -> list[str]:
    """``runuser -u postgres --`` when we are root (PostgreSQL refuses root), else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_OS_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root and there is no {_OS_USER!r} OS user to run PostgreSQL as "
            "(apt-get install postgresql creates it)"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and runuser (util-linux) is missing")
    return [runuser, "-u", _OS_USER, "--"]


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a plain lower-case database name: {name!r}")
    return name


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
