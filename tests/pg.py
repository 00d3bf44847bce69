"""A throwaway PostgreSQL server for the test session: initdb into a temp dir, start on a free
localhost port, create a database, stop and delete everything at the end.

PostgreSQL refuses to run as root, so under root (as in CI) every server command runs as the
``postgres`` system user that Debian's package creates, and the temp dir is handed to that user.
A missing PostgreSQL skips on a developer machine and fails in CI, which installs it (scripts/install-system-deps.sh).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._tools import free_port
from tests.conftest import missing


def find_bindir() -> Path | None:
    """Directory holding ``initdb``/``pg_ctl``: ``pg_config --bindir``, else the Debian layout."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (subprocess.SubprocessError, OSError):
            pass
    found = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(Path(p) for p in sorted(found, key=lambda p: int(Path(p).parent.name), reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


class PostgresServer:
    """One private cluster. Use :meth:`start` / :meth:`stop` (or the ``postgres_url`` fixture)."""

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            missing("PostgreSQL server binaries not found", "run `make setup` (installs the postgresql package)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="aigclabel-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.port = free_port()
        self.user = "aigclabel"
        self.database = "audit"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root and there is no 'postgres' system user to run the test server")
            runuser = shutil.which("runuser")
            self._as = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as and self._as[0] == "su":
            command = [*self._as, " ".join(_quote(c) for c in command)]
        else:
            command = [*self._as, *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (TCP on localhost)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> str:
        """initdb, start and create the database; returns :attr:`url`."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8", "--locale=C", "-N")
        self.sockets.mkdir()
        if self._as:
            owner = pwd.getpwnam("postgres")
            os.chown(self.sockets, owner.pw_uid, owner.pw_gid)
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c max_connections=80"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options, "start")
        self._run("createdb", "-h", str(self.sockets), "-p", str(self.port), "-U", self.user, self.database)
        return self.url

    def create_database(self, name: str) -> str:
        """Create another database on this server; returns its URL."""
        self._run("createdb", "-h", str(self.sockets), "-p", str(self.port), "-U", self.user, name)
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def running_server() -> Iterator[PostgresServer]:
    """A started throwaway server, stopped when the generator is closed (a fixture body)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway server for the whole test session."""
    yield from running_server()
