"""Hub web UI and REST API (Flask application factory and its blueprints).

Pages use a session login with CSRF-protected forms; the API under /api/v1 takes a bearer token
(``xl-hub token create``) or the page's session. Errors from the API are one JSON envelope:
``{"error": {"code", "message"}}``. Modules: ``base`` (shared helpers), ``params`` (every
request parameter checked), ``api``, ``tickets``, ``console``, ``auth`` (login), ``openapi``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, request, session
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from common import csrf

from .. import __version__
from . import i18n
from .api import api
from .auth import pages
from .console import console
from .clips import clips_api
from .live import live_api, live_pages
from .params import ApiError, IdConverter
from .tickets import tickets_api

HUB = Path(__file__).resolve().parent.parent


def create_app(engine: sa.Engine, *, secret_key: str, offline_after_s: float = 90.0,
               health: Callable[[], dict[str, Any]] | None = None,
               commands_due: Callable[[], None] | None = None, live: Any = None, clips: Any = None,
               timezone: str = "Asia/Shanghai") -> Flask:
    """``commands_due``: tells the command sender that a change wrote commands (it also polls);
    ``timezone``: of the times on pages and CSV files."""
    if not secret_key or len(secret_key) < 32:
        raise ValueError("the web secret key must be at least 32 characters")
    app = Flask(__name__, root_path=str(HUB), template_folder="templates", static_folder="static")
    app.url_map.converters["id"] = IdConverter
    app.config.update(SECRET_KEY=secret_key, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.extensions["xl"] = {"engine": engine, "offline_after_s": offline_after_s,
                            "health": health or (lambda: {}),
                            "commands_due": commands_due or (lambda: None),
                            "live": live,  # hub.live.LiveSessions (None: no live video in this app)
                            "clips": clips}  # hub.clips.ClipStore (None: no clip uploads in this app)
    i18n.init_app(app, timezone)
    app.register_blueprint(api)
    app.register_blueprint(tickets_api)
    app.register_blueprint(pages)
    app.register_blueprint(console)
    app.register_blueprint(live_api)
    app.register_blueprint(live_pages)
    app.register_blueprint(clips_api)
    # a bearer token (staff) or a device's Basic credential does not ride on the session cookie: no
    # CSRF check for them
    csrf.protect(app, on_error=_csrf_refused,
                 exempt=lambda: request.headers.get("Authorization", "").startswith(("Bearer ", "Basic ")))

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error={"code": exc.code, "message": exc.message}), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.path == "/healthz":
            return jsonify(error={"code": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code
        return _error_page(exc.code or 500)

    @app.errorhandler(500)
    def _server_error(exc):
        if request.path.startswith("/api/"):
            return jsonify(error={"code": "internal_server_error", "message": "the hub failed; see its log"}), 500
        return _error_page(500)

    @app.get("/healthz")
    def healthz():
        body: dict[str, Any] = {"version": __version__}
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            body["database"] = "ok"
        except sa.exc.SQLAlchemyError as exc:
            body["database"] = f"error: {type(exc).__name__}"
        body.update(current_app.extensions["xl"]["health"]())
        ok = body["database"] == "ok" and body.get("broker_connected", True)
        body["status"] = "ok" if ok else "degraded"
        return jsonify(body), 200 if ok else 503

    return app


def _error_page(code: int):
    """An error page in the reader's language (never Flask's English one)."""
    titles = {400: _("The request was not understood"), 403: _("You may not do this"),
              404: _("No such page, or not in your area"), 405: _("Not allowed this way"),
              413: _("Too large"), 429: _("Too many requests; wait a moment")}
    title = titles.get(code, _("Something went wrong at the hub"))
    text = _("Error %(code)s", code=code)
    return render_template("error.html", title=title, text=text, user=session.get("user"),
                           csrf_token=None), code


def _csrf_refused(reason: str):
    """API calls on the page's session get the JSON error; pages a plain 400."""
    if request.path.startswith("/api/"):
        return jsonify(error={"code": "csrf", "message": f"X-CSRF-Token header missing or wrong: {reason}"}), 400
    return render_template("error.html", title=_("This form has expired"), text=_("Reload the page and try again."),
                           user=session.get("user"), csrf_token=None), 400
