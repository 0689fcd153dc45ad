"""The console's language and times: one gettext catalogue (Flask-Babel, ``hub/translations``;
English is the source language, Chinese the default), labels for every identifier a page shows
(states, actions, levels, categories, event types, parties, roles, kinds), and local times in
the hub's ``timezone``. Identifiers stay English in code, data and the API; only pages and
CSV files go through here."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, request, session
from flask_babel import Babel, force_locale, gettext as _, lazy_gettext as L_

from common.explained import Explained

from ..names import Names

LANGUAGES = ("zh", "en")
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

STATES = {"reported": L_("reported"), "dispatched": L_("dispatched"), "accepted": L_("accepted"),
          "handling": L_("handling"), "resolved": L_("resolved"), "verified": L_("verified"),
          "returned": L_("returned"), "archived": L_("archived"), "merged": L_("merged"), "void": L_("void")}
#: buttons and timeline entries
ACTIONS = {"report": L_("Report"), "dispatch": L_("Dispatch"), "accept": L_("Accept"), "start": L_("Start"),
           "resolve": L_("Resolve"), "verify": L_("Verify"), "reject": L_("Return"), "archive": L_("Archive"),
           "send_back": L_("Send back"), "transfer": L_("Transfer"), "merge": L_("Merge"), "void": L_("Void"),
           "progress": L_("Progress note"), "urge": L_("Urge"), "supervise": L_("Supervise"),
           "escalate": L_("Escalate"), "lan_ack": L_("Village monitor acknowledged")}
#: what a done action says back on the page
DONE = {"accept": L_("Ticket #%(ticket)s accepted"), "start": L_("Ticket #%(ticket)s: handling started"),
        "resolve": L_("Ticket #%(ticket)s resolved"), "verify": L_("Ticket #%(ticket)s verified"),
        "reject": L_("Ticket #%(ticket)s returned for more work"), "archive": L_("Ticket #%(ticket)s archived"),
        "send_back": L_("Ticket #%(ticket)s sent back"), "transfer": L_("Ticket #%(ticket)s transferred"),
        "merge": L_("Ticket #%(ticket)s merged"), "void": L_("Ticket #%(ticket)s voided"),
        "progress": L_("Progress note added to ticket #%(ticket)s"), "urge": L_("Ticket #%(ticket)s urged"),
        "supervise": L_("Ticket #%(ticket)s put under supervision")}
LEVELS = {"village": L_("village"), "town": L_("town"), "county": L_("county")}
SEVERITIES = {"urgent": L_("urgent"), "normal": L_("normal")}
CATEGORIES = {"alarm": L_("panic alarm"), "night_intrusion": L_("night intrusion"), "security": L_("public security"),
              "fire": L_("fire"), "road": L_("roads"), "dispute": L_("dispute"), "safety": L_("safety hazard"),
              "environment": L_("environment"), "maintenance": L_("device maintenance"), "other": L_("other")}
EVENTS = {"motion": L_("motion"), "motion_update": L_("motion (end)"), "face": L_("face"),
          "video_loss": L_("video lost"), "camera_restored": L_("video restored"), "tamper": L_("tampering"),
          "mcu_lost": L_("controller lost"), "mcu_restored": L_("controller restored"), "alarm": L_("panic button"),
          "alarm_update": L_("alarm update"), "alarm_ack": L_("alarm acknowledged")}
PARTIES = {"grid_workers": L_("grid workers"), "village_monitor": L_("village monitor"),
           "police_station": L_("police station"), "town_centre": L_("town centre"),
           "county_centre": L_("county centre")}
ROLES = {"grid_leader": L_("grid leader"), "grid_worker_full": L_("full-time grid worker"),
         "grid_worker_part": L_("part-time grid worker"), "grid_instructor": L_("grid instructor"),
         "police": L_("police officer"), "village_operator": L_("village operator"),
         "town_operator": L_("town operator"), "county_operator": L_("county operator"),
         "admin": L_("administrator"), "operator": L_("operator"), "grid_worker": L_("grid worker"),
         "viewer": L_("viewer")}
KINDS = {"camera-box": L_("camera box"), "alarm-pillar": L_("alarm pillar"), "unknown": L_("not registered")}
GRID_KINDS = {"general": L_("general"), "special": L_("special")}
LIVENESS = {"online": L_("online"), "offline": L_("offline"), "unknown": L_("unknown")}
CAMERA_STATES = {"up": L_("working"), "down": L_("disconnected"), "stalled": L_("stalled")}
CLIP_STATES = {"none": L_("not asked for"), "requested": L_("asked of the device"), "uploading": L_("uploading"),
               "complete": L_("at the centre"), "refused": L_("refused"), "expired": L_("expired")}
VIEW_OUTCOMES = {"waiting": L_("connecting"), "live": L_("watching"), "closed": L_("closed"), "failed": L_("failed"),
                 "refused": L_("refused by the device"), "lapsed": L_("page gone")}
PAGES = {"ticket": L_("ticket page"), "device": L_("device page"), "wall": L_("video wall"), "api": L_("API")}
LABELS = {"state": STATES, "action": ACTIONS, "level": LEVELS, "severity": SEVERITIES, "category": CATEGORIES,
          "event": EVENTS, "party": PARTIES, "role": ROLES, "kind": KINDS, "grid_kind": GRID_KINDS,
          "liveness": LIVENESS, "camera_state": CAMERA_STATES, "clip": CLIP_STATES, "outcome": VIEW_OUTCOMES,
          "page": PAGES}


def label(kind: str, value: Any) -> str:
    """The label of identifier ``value`` of ``kind`` (a key of LABELS) in the page's language;
    an identifier the catalogue does not know is shown as it is."""
    if value is None:
        return ""
    found = LABELS[kind].get(value)
    return str(found) if found is not None else str(value)


def select_locale() -> str:
    if request and request.args.get("lang") in LANGUAGES:
        return request.args["lang"]
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "zh"


def zone() -> ZoneInfo:
    return current_app.extensions["xl"]["zone"]


def local_time(ts: float | None, *, seconds: bool = True) -> str:
    """A time on a page or in a CSV: local wall time in the hub's zone, ``2026-11-24 19:03:16``."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, zone()).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_iso(ts: float | None) -> str:
    """The same time in ISO 8601 with the zone's offset (a ``<time datetime>`` attribute)."""
    return datetime.fromtimestamp(ts, zone()).isoformat(timespec="seconds") if ts else ""


def duration(seconds: float) -> str:
    """``1 h 05 min`` / ``4 min`` / ``35 s`` in the page's language."""
    seconds = abs(int(seconds))
    if seconds >= 3600:
        return _("%(h)d h %(m)02d min", h=seconds // 3600, m=seconds % 3600 // 60)
    if seconds >= 60:
        return _("%(m)d min", m=seconds // 60)
    return _("%(s)d s", s=seconds)


def error_text(exc: Explained) -> str:
    """A domain error in the page's language; identifiers among its parameters become labels."""
    params = dict(exc.params)
    for key in ("action", "state", "role"):
        if key in params:
            params[key] = label(key, params[key])
    return _(exc.template, **params)


_GRID_REASON = re.compile(r"grid (\d+)$")
_MISSED = re.compile(r"(village|town|county) missed the (accept|resolve) deadline$")


def reason_text(row: dict[str, Any], names: Any = None) -> str:
    """A timeline row's reason: people's words as they wrote them; what the hub wrote itself
    (dispatch, escalation, a LAN acknowledgement) in the page's language."""
    reason = row.get("reason") or ""
    if row.get("actor") == "system" and row.get("action") == "dispatch":
        found = _GRID_REASON.match(reason)
        if found:
            code = found.group(1)
            return _("to grid %(grid)s", grid=names.grid(code) if names else code)
        if reason == "no grid":
            return _("no grid: waits for a dispatcher")
    if row.get("actor") == "system" and row.get("action") == "escalate":
        found = _MISSED.match(reason)
        if found:
            clock = _("accept") if found.group(2) == "accept" else _("resolve")
            return _("%(level)s missed the %(clock)s deadline", level=label("level", found.group(1)), clock=clock)
    if row.get("action") == "lan_ack":
        return _("acknowledged on the pillar's LAN page")
    return reason


def ticket_title(t: dict[str, Any], names: Any = None) -> str:
    """Titles the hub writes itself (a panic button, a silent device) in the page's language; a
    person's or a rule's title as written."""
    device = (names.device(t["device_id"]) if names and t.get("device_id") else t.get("device_id")) or ""
    if t.get("source") == "alarm":
        return _("Panic button: %(device)s", device=device) if device else _("Panic button")
    if t.get("source") == "offline" and t.get("category") == "maintenance":
        return _("Device offline: %(device)s", device=device)
    return t.get("title") or ""


def page_names() -> Names:
    """The names of areas, grids and devices for this request (read once per page)."""
    if "names" not in g:
        g.names = Names(current_app.extensions["xl"]["engine"])
    return g.names


def in_chinese(fn, *args, **kwargs):
    """Run ``fn`` with the catalogue's Chinese (the API's ``state_zh``)."""
    with force_locale("zh"):
        return str(fn(*args, **kwargs))


def init_app(app: Flask, timezone: str) -> None:
    app.config.update(BABEL_DEFAULT_LOCALE="zh", BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    app.extensions["xl"]["zone"] = ZoneInfo(timezone)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(label=label, when=local_time, when_iso=local_iso, duration=duration,
                                 reason_text=reason_text, ticket_title=ticket_title,
                                 names=page_names)
