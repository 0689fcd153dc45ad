"""The page itself (one page: live video, alarms, events, health) and the language switch."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request
from flask_babel import gettext as _

from common.redirects import safe_next

from . import LANGUAGES

bp = Blueprint("pages", __name__)


def js_strings() -> dict[str, str]:
    """Strings the page's script shows, translated here."""
    return {
        "alarm": _("Alarm: the pillar's button was pressed"), "ack": _("Acknowledge"),
        "acked": _("Acknowledged"), "presses": _("presses"), "ack_all": _("Acknowledge all"),
        "help_coming_hub": _("The centre has accepted it: help is coming"), "live": _("Live"),
        "fallback": _("WebRTC could not connect: showing the MJPEG stream"), "viewers": _("viewers"),
        "up": _("up"), "down": _("down"), "stalled": _("stalled"), "connected": _("connected"), "disconnected": _("disconnected"),
        "never": _("never"), "online": _("online"), "offline": _("offline"), "none": _("none"),
        "clip": _("Clip"), "snapshot": _("Snapshot"), "no_events": _("No events"),
        "seconds_ago": _("s ago"), "free": _("free"),
        "types": {"motion": _("Motion"), "face": _("Face"), "alarm": _("Alarm"), "alarm_update": _("Alarm (again)"),
                  "alarm_ack": _("Alarm acknowledged"), "video_loss": _("Video lost"),
                  "camera_restored": _("Camera restored"), "tamper": _("Tamper"), "mcu_lost": _("Pillar MCU silent"),
                  "mcu_restored": _("Pillar MCU back")},
    }


@bp.route("/")
def index():
    ctx = current_app.extensions["xl"]
    # the page's event stream starts after what the page loads now, so nothing falls between
    return render_template("index.html", cameras=ctx.cameras, strings=js_strings(), last_seq=ctx.store.last_seq(),
                           types=js_strings()["types"], has_pillar=ctx.pillar is not None)


@bp.route("/lang", methods=["POST"])
def lang():
    code = request.form.get("lang", "zh")
    resp = redirect(safe_next(request.form.get("next")))
    if code in LANGUAGES:
        resp.set_cookie("lang", code, max_age=365 * 86400, samesite="Strict", httponly=True)
    return resp
