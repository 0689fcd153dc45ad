"""LAN page users, login, roles and CSRF.

Users live in the device's store with scrypt password hashes (``xl-edge user add``); there is
no default user or password. Roles: ``viewer`` (watch) and ``operator`` (also acknowledge
alarms). Every page and API needs a session; every state-changing request carries the
session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from common import csrf
from common.redirects import safe_next

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
ROLES = ("viewer", "operator")
OPEN_ENDPOINTS = {"auth.login", "pages.lang", "static"}
# a fixed hash to compare against when the user does not exist, so timing does not tell
_DUMMY_HASH = generate_password_hash("not a password of anyone")
MAX_FAILURES, FAILURE_WINDOW_S = 5, 300  # failed logins from one address before it must wait
_failures: dict[str, list[float]] = {}
_failures_lock = threading.Lock()


def _throttled(addr: str) -> bool:
    now = time.monotonic()
    with _failures_lock:
        recent = [t for t in _failures.get(addr, []) if now - t < FAILURE_WINDOW_S]
        _failures[addr] = recent
        return len(recent) >= MAX_FAILURES


def _failed(addr: str) -> None:
    with _failures_lock:
        _failures.setdefault(addr, []).append(time.monotonic())


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def csrf_token() -> str:
    """The session's CSRF token (every state change is checked by common.csrf)."""
    return csrf.token()


def csrf_refused(reason: str):
    if request.path.startswith("/api/"):
        return jsonify(error={"code": "csrf", "message": f"missing or wrong CSRF token: {reason}"}), 403
    return reason, 403


def guard():
    """Before every request: a session for everything but the login page and static files."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not session.get("user"):
        if request.path.startswith("/api/") or request.path.startswith("/media/") or request.path.startswith("/live/"):
            return jsonify(error={"code": "login", "message": "log in first"}), 401
        return redirect(url_for("auth.login", next=request.path))
    return None


def operator_only():
    if session.get("role") != "operator":
        return jsonify(error={"code": "forbidden", "message": "operators only"}), 403
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    ctx = current_app.extensions["xl"]
    error = None
    status = 200
    if request.method == "POST" and _throttled(request.remote_addr or ""):
        error = _("Too many failed logins from this address; try again in a few minutes.")
        status = 429
    elif request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        row = ctx.store.user(name)
        ok = check_password_hash(row[0] if row else _DUMMY_HASH, password) and row is not None
        if ok:
            session.clear()
            session.update(user=name, role=row[1], since=time.time())
            logger.info("LAN page: %s logged in from %s", name, request.remote_addr)
            return redirect(safe_next(request.args.get("next")))
        logger.warning("LAN page: failed login for %r from %s", name, request.remote_addr)
        _failed(request.remote_addr or "")
        error = _("Wrong user name or password.")
        status = 401
    no_users = ctx.store.user_count() == 0
    return render_template("login.html", error=error, no_users=no_users), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
