"""The console's login and logout pages (throttled, CSRF-checked, audited)."""

from __future__ import annotations

import math

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from common.redirects import safe_next

from .. import audit, auth, throttle
from .base import csrf_token, engine

pages = Blueprint("pages", __name__)


@pages.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "")[:64]
        keys = throttle.keys_for_login(username, request.remote_addr or "")
        wait = throttle.wait_s(engine(), keys)
        if wait > 0:
            audit.record(engine(), username, "login_throttled", None, {"remote": request.remote_addr})
            error = _("Too many failed logins; try again in %(min)s min", min=math.ceil(wait / 60))
            return render_template("login.html", error=error, csrf_token=csrf_token()), 429
        user = auth.check_login(engine(), username, request.form.get("password", ""))
        audit.record(engine(), username, "login" if user else "login_failed", None,
                     {"remote": request.remote_addr})
        if user is None:
            throttle.failed(engine(), keys)
            error = _("Wrong user name or password")
        else:
            lang = session.get("lang")
            session.clear()
            session["user"] = user
            if lang:
                session["lang"] = lang
            return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, csrf_token=csrf_token()), 401 if error else 200


@pages.post("/logout")
def logout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("pages.login"))
