"""The console's login and logout pages (throttled, CSRF-checked, audited)."""

from __future__ import annotations

import math

from flask import Blueprint, redirect, render_template, request, session, url_for

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
            error = (f"登录失败次数过多，请 {math.ceil(wait / 60)} 分钟后再试 / Too many failed logins; "
                     f"try again in {math.ceil(wait / 60)} min")
            return render_template("login.html", error=error, csrf_token=csrf_token()), 429
        user = auth.check_login(engine(), username, request.form.get("password", ""))
        audit.record(engine(), username, "login" if user else "login_failed", None,
                     {"remote": request.remote_addr})
        if user is None:
            throttle.failed(engine(), keys)
            error = "用户名或密码错误 / Wrong user name or password"
        else:
            session.clear()
            session["user"] = user
            return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, csrf_token=csrf_token()), 401 if error else 200


@pages.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))
