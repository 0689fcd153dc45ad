"""CSRF protection for both web apps: Flask-WTF's ``CSRFProtect``, set up once here.

Every state-changing request (not GET, HEAD, OPTIONS or TRACE) needs the session's token, as the
form field ``csrf_token`` or the header ``X-CSRF-Token``, unless ``exempt()`` says the request
does not ride on the session cookie (the hub's API with a bearer token). Tokens stay valid for
the session (a console left open all night still works). How a refusal looks is the app's
choice (``on_error``)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, request
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def protect(app: Flask, *, on_error: Callable[[str], object], exempt: Callable[[], bool] = lambda: False) -> None:
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,
                      WTF_CSRF_HEADERS=["X-CSRF-Token", "X-CSRFToken"])
    csrf = CSRFProtect(app)

    @app.before_request
    def _check_csrf():
        if request.method not in SAFE_METHODS and not exempt():
            csrf.protect()

    app.register_error_handler(CSRFError, lambda exc: on_error(exc.description))


def token() -> str:
    """The session's CSRF token, for a form's hidden ``csrf_token`` field or the page's script."""
    return generate_csrf()
