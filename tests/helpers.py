"""Real parts for tests: Mosquitto on a free port, PostgreSQL databases, hub and edge processes."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
PG_ADMIN_URL = os.environ.get("XL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
HUB_USER = "xl-hub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host: str, port: int, lab=None, netns: str | None = None) -> bool:
    """Something accepts TCP connections on host:port (inside ``netns`` of ``lab`` if given)."""
    try:
        with lab.inside(netns) if lab else contextlib.nullcontext():
            socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def device_id(n: int, type_code: str = "131") -> str:
    return f"33010200{'00'}{type_code}0{n:06d}"


class Mosquitto:
    """A real Mosquitto with per-user passwords and the project's ACLs, on a free loopback port
    (or on ``host`` inside a network namespace: ``lab`` and ``netns``, see tests/netlab.py)."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", lab=None, netns: str | None = None):
        self.folder = folder
        self.host, self.lab, self.netns = host, lab, netns
        self.port = free_port()
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password

    def _write(self) -> Path:
        pwfile = self.folder / "passwd"
        pwfile.write_text("")
        for name, password in self.users.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(pwfile), name, password], check=True, capture_output=True)
        acl = self.folder / "acl"
        from hub.brokerconf import acl_text
        acl.write_text(acl_text(HUB_USER))  # the ACL `xl-hub broker-config` writes
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to a user that cannot read tmp
            f"listener {self.port} {self.host}\nallow_anonymous false\npassword_file {pwfile}\nacl_file {acl}\n"
            "persistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\nlog_type error\nlog_type warning\n")
        return conf

    def start(self) -> None:
        conf = self._write()
        prefix = self.lab.prefix(self.netns) if self.lab else []
        self.proc = subprocess.Popen([*prefix, MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        wait_for(lambda: listening(self.host, self.port, self.lab, self.netns), 10, "mosquitto to listen", 0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def create_pg_database() -> tuple[str, Callable[[], None]]:
    name = f"xl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return url, drop


class Proc:
    def __init__(self, name: str, args: list[str], folder: Path, *, lab=None, netns: str | None = None):
        self.lab, self.netns = lab, netns
        self.name, self.args, self.folder = name, (lab.prefix(netns) if lab else []) + args, folder
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log, "a")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.folder)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text()


class Hub(Proc):
    """``xl-hub run`` with either a given external broker or its embedded one."""

    def __init__(self, folder: Path, db_url: str, *, mosquitto: Mosquitto | None = None, extra: dict | None = None,
                 host: str = "127.0.0.1", lab=None, netns: str | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.db_url, self.host = db_url, host
        self.web_port = free_port()
        self.mqtt_port = mosquitto.port if mosquitto else free_port()
        cfg: dict = {"database": {"url": db_url}, "web": {"port": self.web_port, "host": host},
                     "ingest": {"offline_after_s": 10}, "log_level": "INFO"}
        if mosquitto:
            password = uuid.uuid4().hex
            mosquitto.add_user(HUB_USER, password)
            (folder / "hub-mqtt-password").write_text(password)
            cfg["broker"] = {"url": f"mqtt://{mosquitto.host}:{mosquitto.port}", "username": HUB_USER,
                             "password_file": "hub-mqtt-password"}
        else:
            cfg["embedded_broker"] = {"port": self.mqtt_port}
        cfg.update(extra or {})
        self.config = folder / "hub.yaml"
        self.config.write_text(json.dumps(cfg))
        super().__init__("hub", [str(BIN / "xl-hub"), "run", "--config", str(self.config)], folder, lab=lab,
                         netns=netns)
        self.mosquitto = mosquitto
        self.engine = sa.create_engine(db_url if not db_url.startswith("sqlite:///") or db_url.startswith("sqlite:////")
                                       else "sqlite:///" + str(folder / db_url[len("sqlite:///"):]))

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([str(BIN / "xl-hub"), *args], input=stdin, text=True, capture_output=True,
                                cwd=self.folder)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def add_device(self, dev: str, kind: str = "camera-box", grid: str | None = None) -> str:
        """Register a device; return its MQTT password (and give it to Mosquitto if used). A
        grid must be in the registry: the sample county is imported first if it is not."""
        if grid and not self._has_grid(grid):
            sample = self.folder / "sample-county.csv"
            sample.write_text((ROOT / "hub" / "samples" / "sample-county.csv").read_text(encoding="utf-8"),
                              encoding="utf-8")
            self.cli("registry", "import", "--config", str(self.config), str(sample))
        pwfile = self.folder / f"{dev}.password"
        self.cli("device", "add", "--config", str(self.config), dev, "--kind", kind, "--name", f"dev {dev[-3:]}",
                 "--password-file", str(pwfile), *(["--grid", grid] if grid else []))
        password = pwfile.read_text().strip()
        if self.mosquitto:
            self.mosquitto.add_user(dev, password)
        return password

    def _has_grid(self, grid: str) -> bool:
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM grids WHERE code = :g"), {"g": grid}).first() is not None
        except sa.exc.DBAPIError:  # no database yet
            return False

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    def _open(self, req: urllib.request.Request, timeout: float) -> tuple[int, dict]:
        with self.lab.inside(self.netns) if self.lab else contextlib.nullcontext():
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return resp.status, json.load(resp) if resp.status != 204 else {}
            except urllib.error.HTTPError as exc:
                return exc.code, json.load(exc)

    def get(self, path: str, token: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"{self.base}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        return self._open(req, 5)

    def post(self, path: str, token: str, body: dict | None = None, timeout: float = 5) -> tuple[int, dict]:
        req = urllib.request.Request(f"{self.base}{path}", method="POST", data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        return self._open(req, timeout)

    def start(self, wait: bool = True) -> None:
        super().start()
        if wait:
            def healthy():
                assert self.running(), self.output()
                try:
                    status, body = self.get("/healthz")
                except OSError:
                    return False
                return status == 200 and body.get("broker_connected")
            wait_for(healthy, 30, "the hub to be healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        self.engine.dispose()
        return super().stop(sig, timeout)

    def health(self) -> dict:
        return self.get("/healthz")[1]

    def event_ids(self, device: str | None = None) -> list[str]:
        q = "SELECT id FROM events" + (" WHERE device_id = :d" if device else "")
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(q), {"d": device})]


class Edge(Proc):
    """``xl-edge run`` with the sample generator as its event source."""

    def __init__(self, folder: Path, dev: str, password: str, mqtt_port: int, *, rate: float = 200,
                 count: int = 0, alarm_every_s: float = 0, kind: str = "camera-box", extra: dict | None = None,
                 broker_host: str = "127.0.0.1", lab=None, netns: str | None = None, **sync):
        folder.mkdir(parents=True, exist_ok=True)
        self.device_id = dev
        self.count = count  # events the sample generator makes before it stops (0: no end)
        (folder / "mqtt-password").write_text(password)
        cfg = {
            "device": {"id": dev, "kind": kind, "model": "test", "name": f"test {dev[-3:]}",
                       "grid_code": "330102001001001", "location": {"latitude": 30.27, "longitude": 120.15}},
            "broker": {"url": f"mqtt://{broker_host}:{mqtt_port}", "password_file": "mqtt-password",
                       "reconnect_min_s": 0.2, "reconnect_max_s": 2, "keepalive_s": 5},
            "sync": {"heartbeat_interval_s": 2, "ack_timeout_s": 5, **sync},
            "demo": {"enabled": count != 0 or rate > 0, "rate_per_s": rate if rate > 0 else 1, "count": count,
                     "alarm_every_s": alarm_every_s},
        }
        if rate <= 0:
            cfg["demo"]["enabled"] = False
        cfg.update(extra or {})
        self.config = folder / "edge.yaml"
        self.config.write_text(json.dumps(cfg))
        self.db_path = folder / "xueliang-edge.db"
        super().__init__("edge", [str(BIN / "xl-edge"), "run", "--config", str(self.config)], folder, lab=lab,
                         netns=netns)

    def _query(self, sql: str) -> list[tuple]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def event_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM events")]

    def outbox_depth(self) -> int:
        rows = self._query("SELECT count(*) FROM outbox")
        return rows[0][0] if rows else -1


class NullModem:
    """Two pty pairs whose master sides are wired together: a serial cable between two real
    tty paths (``a`` and ``b``), for a flasher on one end and a device on the other."""

    def __init__(self, folder: Path):
        import threading
        import tty
        self.fds = []
        self.paths = []
        for name in ("a", "b"):
            master, slave = os.openpty()
            tty.setraw(slave)
            link = folder / f"tty-{name}"
            link.symlink_to(os.ttyname(slave))
            self.fds.append((master, slave))
            self.paths.append(str(link))
        self.a, self.b = self.paths
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        import select
        ma, mb = self.fds[0][0], self.fds[1][0]
        peer = {ma: mb, mb: ma}
        while not self._stop.is_set():
            ready, _, _ = select.select([ma, mb], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(peer[fd], data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for master, slave in self.fds:
            os.close(master)
            os.close(slave)


class Coturn(Proc):
    """coturn (Debian's ``turnserver``) with the config ``xl-hub turn-config`` wrote."""

    def __init__(self, folder: Path, conf: Path, host: str, port: int, *, lab=None, netns: str | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        super().__init__("coturn", [shutil.which("turnserver") or "/usr/bin/turnserver", "-c", str(conf),
                                    "--pidfile", str(folder / "turnserver.pid"), "-V"], folder, lab=lab, netns=netns)

    def start(self) -> None:
        super().start()

        def up():
            assert self.running(), self.output()
            return listening(self.host, self.port, self.lab, self.netns)
        wait_for(up, 15, "coturn to listen", 0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        return super().stop(sig, timeout)


def county_with_relay(folder: Path, lab, *, live: dict | None = None, hub_extra: dict | None = None):
    """Mosquitto, a hub (SQLite) and coturn in ``lab``'s county namespace, coturn configured by
    ``xl-hub turn-config`` and named in the hub's ``live.turn_urls``; none of them started.
    Returns (mosquitto, hub, coturn, the turnserver.conf path)."""
    from .netlab import COUNTY_IP
    mosquitto = Mosquitto(folder / "mosquitto", host=COUNTY_IP, lab=lab, netns=lab.county)
    turn_port = free_port()
    hub = Hub(folder / "hub", f"sqlite:///{folder / 'hub.db'}", mosquitto=mosquitto, host=COUNTY_IP, lab=lab,
              netns=lab.county, extra={**(hub_extra or {}), "live": {
                  "turn_urls": [f"turn:{COUNTY_IP}:{turn_port}?transport=udp"], **(live or {})}})
    conf = folder / "turnserver.conf"
    out = hub.cli("turn-config", "--config", str(hub.config), "--out", str(conf), "--listen-ip", COUNTY_IP,
                  "--port", str(turn_port), "--log-file", str(folder / "turn.log"))
    assert "wrote" in out, out
    coturn = Coturn(folder / "coturn", conf, COUNTY_IP, turn_port, lab=lab, netns=lab.county)
    return mosquitto, hub, coturn, conf


def console_session(port: int, username: str, password: str, lang: str = "zh") -> str:
    """Log in to the hub's console as a browser would (its form and CSRF token; ``lang`` chosen
    first): the session cookie ("name=value")."""
    import http.client
    import re
    import urllib.parse
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/login")
        resp = conn.getresponse()
        page = resp.read().decode()
        cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
        if lang != "zh":
            conn.request("GET", f"/lang/{lang}?next=/login", headers={"Cookie": cookie})
            resp = conn.getresponse()
            resp.read()
            cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        conn.request("POST", "/login", body=urllib.parse.urlencode({"username": username, "password": password,
                                                                    "csrf_token": token}),
                     headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == 302, resp.status
    return resp.getheader("Set-Cookie").split(";", 1)[0]
