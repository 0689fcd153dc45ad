"""Leases in the database: the jobs that must run on exactly one hub node (escalation and
maintenance tickets, sending commands, delivering webhooks, sweeping clips and live sessions)
run only where their lease is held. A node takes a lease that is free or has lapsed and keeps
it by renewing it; when the node dies, another takes it over once it lapses (``ttl_s``). One
conditional UPDATE decides, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from .schema import leases
from .sqlutil import insert_ignore

logger = logging.getLogger(__name__)

#: this process, as lease holder: host, pid and a random part (a restarted node is a new holder)
NODE = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, engine: sa.Engine, name: str, ttl_s: float, holder: str = NODE):
        self.engine, self.name, self.ttl_s, self.holder = engine, name, ttl_s, holder
        self._until = 0.0  # our own view of how long we hold it (renewed well before that)
        self._lock = threading.Lock()

    def held(self, now: float | None = None) -> bool:
        """True if this node holds the lease (taking or renewing it as needed)."""
        now = time.time() if now is None else now
        with self._lock:
            if now < self._until - self.ttl_s * 2 / 3:  # renewed less than a third of a lease ago
                return True
            try:
                got = self._take(now)
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("lease %s: database unreachable (%s); not running its job", self.name,
                               type(exc).__name__)
                got = False
            if got and self._until <= now:
                logger.info("lease %s taken by %s", self.name, self.holder)
            elif not got and self._until > now:
                logger.warning("lease %s lost by %s", self.name, self.holder)
            self._until = now + self.ttl_s if got else 0.0
            return got

    def _take(self, now: float) -> bool:
        c = leases.c
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(leases, conn.dialect.name).values(name=self.name, holder="", expires_at=0.0))
            return conn.execute(leases.update().where(c.name == self.name)
                                .where(sa.or_(c.holder == self.holder, c.expires_at < now))
                                .values(holder=self.holder, expires_at=now + self.ttl_s)).rowcount == 1

    def release(self) -> None:
        """Hand the lease over at once (a clean stop)."""
        with self._lock:
            self._until = 0.0
            try:
                with self.engine.begin() as conn:
                    conn.execute(leases.update().where(leases.c.name == self.name)
                                 .where(leases.c.holder == self.holder).values(expires_at=0.0))
            except sa.exc.SQLAlchemyError:
                pass


def only_with(lease: Lease, work: Callable[[], object]) -> Callable[[], object]:
    """``work`` that runs only while ``lease`` is held (for a Periodic job)."""
    def run():
        if lease.held():
            return work()
        return None
    return run

