"""Run private Mosquitto and InfluxDB servers as child processes.

``smartcity up`` and the test fixtures both use this, so the stack a developer runs, the one
the tests prove and the docker-compose one share the broker tuning in ``broker/conf.d``.
Servers bind to 127.0.0.1 only and keep their data under a directory of ours.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import httpx

import broker

# The broker's tuning ships with the broker package (package data), so an installed smartcity
# finds it as well as a clone does.
BROKER_CONF_D = Path(broker.__file__).resolve().parent / "conf.d"
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
DYNSEC_PLUGIN_GLOBS = ("/usr/lib/*-linux-gnu/mosquitto_dynamic_security.so",
                       "/usr/lib/mosquitto_dynamic_security.so",
                       "/usr/local/lib/mosquitto_dynamic_security.so")


class ServerError(RuntimeError):
    pass


def find_binary(name: str) -> str:
    """A server binary from PATH; Debian puts mosquitto in /usr/sbin, often not on a user's PATH."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
    if not found:
        raise ServerError(f"{name} not found on PATH; install it with: "
                          "apt-get install mosquitto mosquitto-clients influxdb")
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def kill_on_parent_death() -> None:
    """preexec_fn: have Linux SIGTERM the child if the process that started it dies, so even
    a SIGKILLed `smartcity up` or test run leaves no server behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class ManagedServer:
    name: ClassVar[str] = "server"
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        return tcp_answers(self.port)

    def start(self, timeout: float = 30.0) -> Self:
        if port_in_use(self.port):
            raise ServerError(f"cannot start {self.name}: port {self.port} on 127.0.0.1 is "
                              "already taken (another instance running? choose another port)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir,
                                     start_new_session=True, preexec_fn=kill_on_parent_death)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode} at start-up; "
                                  f"log {self.log_path}:\n{self.log_tail()}")
            # Ready only if it is our process that answers, not a stranger on a reused port.
            if self.ready() and self.proc.poll() is None:
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not answer on port {self.port} within {timeout:.0f}s;"
                          f" log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Die as in a crash: no shutdown work (used to prove nothing is lost)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_dynsec_plugin() -> str:
    """Mosquitto's dynamic security plugin, shipped with Debian's mosquitto package."""
    for pattern in DYNSEC_PLUGIN_GLOBS:
        for found in sorted(glob.glob(pattern)):
            return found
    raise ServerError("mosquitto_dynamic_security.so not found (looked in "
                      f"{', '.join(DYNSEC_PLUGIN_GLOBS)}); install it with: "
                      "apt-get install mosquitto")


@dataclass
class Mosquitto(ManagedServer):
    """A private broker on a loopback port.

    The default profile takes anonymous clients (development and most tests). With
    ``dynsec_config`` (a ``dynamic-security.json``, see :func:`broker.dynsec.
    write_initial_config`) it is the secured profile of the exhibit: every client logs in
    with its account on the dynamic security plugin, which saves account changes back to
    that file."""

    name: ClassVar[str] = "mosquitto"
    extra_config: str = ""
    dynsec_config: Path | None = None
    # With it, the broker logs every event (log_type all) to this file instead of stdout, for
    # ingest to read the publishes it refused to devices (ingest/brokerlog.py), and ingest
    # keeps the file's size bounded.
    event_log: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def security_config(self) -> list[str]:
        if self.dynsec_config is None:
            return ["allow_anonymous true"]
        if not self.dynsec_config.is_file():
            # The plugin would start without it and refuse every client.
            raise ServerError(f"no broker accounts file {self.dynsec_config}; create it with: "
                              f"smartcity broker init --config {self.dynsec_config}")
        return ["allow_anonymous false",
                f"plugin {find_dynsec_plugin()}",
                f"plugin_opt_config_file {self.dynsec_config.resolve()}"]

    def write_config(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        own = [
            "# generated by smartcity; the tuning below comes from broker/conf.d",
            f"listener {self.port} 127.0.0.1",
            *self.security_config(),
            # Run as whoever started us: as root, mosquitto would otherwise switch to the
            # 'mosquitto' user and lose write access to our data directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"persistence_location {data}/",
            *(["log_dest stdout"] if self.event_log is None
              else [f"log_dest file {self.event_log.resolve()}", "log_type all"]),
            self.extra_config,
        ]
        shared = [p.read_text() for p in sorted(BROKER_CONF_D.glob("*.conf"))]
        self.config_path.write_text("\n".join(own + shared) + "\n")

    def argv(self) -> list[str]:
        return [find_binary("mosquitto"), "-c", str(self.config_path)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@dataclass
class Influxd(ManagedServer):
    name: ClassVar[str] = "influxd"
    rpc_port: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    def write_config(self) -> None:
        if not self.rpc_port:
            self.rpc_port = free_port()
        d = self.workdir
        self.config_path.write_text(f"""\
# generated by smartcity
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 50000000

[continuous_queries]
  log-enabled = false

[subscriber]
  enabled = false
""")

    def argv(self) -> list[str]:
        return [find_binary("influxd"), "run", "-config", str(self.config_path)]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_with_retry(make: type[ManagedServer], workdir: Path, attempts: int = 5,
                     **kwargs: object) -> ManagedServer:
    """Start on a fresh free port, trying again if another process grabs it first."""
    last: Exception | None = None
    for i in range(attempts):
        server = make(workdir=workdir / f"try{i}" if i else workdir, port=free_port(), **kwargs)
        try:
            return server.start()
        except ServerError as e:
            last = e
    raise ServerError(f"could not start {make.__name__}: {last}")
