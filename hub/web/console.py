"""County UI pages: dashboard with live alarms (Server-Sent Events), queue board, ticket
detail with actions, statistics. Chinese first; ?lang=en or the switch in the header for
English. Every page is scoped to the user's area like the API."""

from __future__ import annotations

import time

from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from common.redirects import safe_next

from .. import alarms, audit, dispatch, eventlog, notify, readmodel, registry, stats
from ..areas import AreaCode
from ..gridregistry import DEVICE_KINDS
from . import streams
from .base import csrf_token, engine, login_required, user_prefix
from .i18n import CLIP_STATES, DONE, error_text, label, page_names, select_locale
from .live import cameras_of, may_talk
from .params import arg_text

console = Blueprint("console", __name__)

#: buttons offered on a ticket, in this order (labels: hub.web.i18n.ACTIONS)
BUTTONS = ("accept", "start", "resolve", "verify", "reject", "archive", "send_back", "transfer", "void", "progress",
           "urge", "supervise")


def _next_due(t: dict) -> dict:
    clock, at = readmodel.next_due(t)
    if at is None:
        return {"at": None, "left": None, "clock": ""}
    return {"at": at, "left": at - time.time(), "clock": _("Accept by") if clock == "accept" else _("Resolve by")}


def status_since(d: dict) -> float | None:
    """Since when the device is in the state the page shows: its birth or last will when that
    says the same, else since it was last heard."""
    if d.get("status") == d["liveness"] and d.get("status_ts"):
        return d["status_ts"]
    return d.get("last_seen") if d["liveness"] == "offline" else None


@console.app_context_processor
def _helpers():
    return {"lang": select_locale(), "next_due": _next_due, "status_since": status_since,
            "mismatches": registry.mismatches, "clip_states": {k: str(v) for k, v in CLIP_STATES.items()}}


def flash(text: str, kind: str = "ok") -> None:
    """A message on the next page, in the language of this one."""
    session["flash"] = {"kind": kind, "text": str(text)}


@console.get("/lang/<lang>")
def set_lang(lang: str):
    if lang in ("zh", "en"):
        session["lang"] = lang
    return redirect(safe_next(request.args.get("next")))


def _prefix() -> str | None:
    return user_prefix(session["user"])


def _allowed_actions(t: dict) -> list[str]:
    allowed = alarms.allowed_actions(session["user"]["role"], t)
    return [a for a in BUTTONS if a in allowed]


@console.get("/")
@login_required
def dashboard():
    prefix = _prefix()
    figures = streams.counts(engine(), prefix, current_app.extensions["xl"]["offline_after_s"])
    alarm_rows, last_id = readmodel.open_alarms(engine(), prefix)
    notify.shown_on_console(engine(), [t["id"] for t in alarm_rows], session["user"].get("scope_code"))
    events = eventlog.query_events(engine(), limit=20, prefix=prefix)
    page_names().want_devices([t["device_id"] for t in alarm_rows] + [e["device_id"] for e in events])
    return render_template("dashboard.html", counts=figures["states"], liveness=figures["liveness"],
                           alarms=alarm_rows, last_id=last_id, events=events,
                           user=session["user"], csrf_token=csrf_token())


@console.get("/queue")
@login_required
def queue():
    filters = {k: arg_text(k, max_len=32) or "" for k in ("state", "level", "severity")}
    order = "due" if request.args.get("sort") == "due" else "new"
    rows = readmodel.tickets_page(engine(), _prefix(), filters=filters, limit=200, order=order)
    page_names().want_devices(t["device_id"] for t in rows)

    def query(**changes) -> str:
        return urlencode({**{k: v for k, v in filters.items() if v}, "sort": order, **changes})
    return render_template("queue.html", tickets=rows, filters=filters, states=dispatch.STATES, sort=order,
                           query=query, actions={t["id"]: _allowed_actions(t) for t in rows},
                           user=session["user"], csrf_token=csrf_token())


@console.get("/tickets/<id:ticket_id>")
@login_required
def ticket(ticket_id: int):
    t = readmodel.ticket(engine(), _prefix(), ticket_id)
    if t is None:
        abort(404)
    timeline = readmodel.timeline(engine(), ticket_id)
    event = eventlog.get_event(engine(), t["event_id"]) if t["event_id"] else None
    audit.record(engine(), session["user"]["username"], "view_ticket", str(ticket_id))
    cameras, talk = [], False
    live = current_app.extensions["xl"].get("live")
    if t["device_id"] and live is not None and live.enabled:
        scene = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                      prefix=_prefix(), device_id=t["device_id"])
        if scene:
            cameras, talk = cameras_of(scene[0]), may_talk(session["user"], scene[0])
    return render_template("ticket.html", t=dict(t), timeline=timeline, event=event, cameras=cameras, talk=talk,
                           actions=_allowed_actions(dict(t)), user=session["user"], csrf_token=csrf_token(),
                           parties=readmodel.parties(engine(), ticket_id), place=_place(t),
                           may_ack=alarms.may_change(session["user"]["role"]))


def _place(t: dict) -> dict:
    """A small map of the ticket's grid and device (no tiles)."""
    from ..mapview import project
    device = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                   device_id=t["device_id"]) if t["device_id"] else []
    grid_rows = [g for g in readmodel.grids_with_boundary(engine(), [t["grid_code"]]) if t["grid_code"]]
    return project(grid_rows, device)


@console.post("/tickets/<id:ticket_id>/parties/<id:notification_id>/ack")
@login_required
def ack_party(ticket_id: int, notification_id: int):
    """Staff of a notified party acknowledge it (收到)."""
    if readmodel.ticket(engine(), _prefix(), ticket_id) is None:
        abort(404)
    if not alarms.may_change(session["user"]["role"]):
        abort(403)
    try:
        notify.acknowledge(engine(), notification_id, ticket_id, session["user"]["username"], _prefix())
        audit.record(engine(), session["user"]["username"], "ack_notification", str(notification_id))
        flash(_("Acknowledged"))
    except notify.NotYours as exc:
        flash(error_text(exc), "error")
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


@console.post("/tickets/<id:ticket_id>/act")
@login_required
def act(ticket_id: int):
    visible = readmodel.ticket(engine(), _prefix(), ticket_id)
    action = request.form.get("action", "")
    if visible is None:
        abort(404)
    if action not in _allowed_actions(visible):
        flash(_("%(action)s: not allowed for you on this ticket now", action=label("action", action[:40])), "error")
    else:
        try:
            alarms.act(engine(), ticket_id, action, session["user"], scope=_prefix(),
                       reason=request.form.get("reason") or None, grid_code=request.form.get("grid_code") or None)
            current_app.extensions["xl"]["commands_due"]()
            audit.record(engine(), session["user"]["username"], f"ticket_{action}", str(ticket_id))
            flash(DONE[action] % {"ticket": ticket_id} if action in DONE else _("Done"))
        except dispatch.DispatchError as exc:
            flash(error_text(exc), "error")
    return redirect(safe_next(request.form.get("next"), url_for("console.ticket", ticket_id=ticket_id)))


@console.get("/stats")
@login_required
def statistics():
    return render_template("stats.html", s=stats.compute(engine(), _prefix()), user=session["user"],
                           csrf_token=csrf_token())


DEVICES_SHOWN = 200


@console.get("/devices")
@login_required
def device_list():
    """Every device of the area with its state; filters by state, kind and area (first 200)."""
    prefix = _prefix()
    filters = {k: arg_text(k, max_len=20) or "" for k in ("status", "kind", "area")}
    area = filters["area"]
    scope = prefix
    if area:
        try:
            inner = AreaCode.parse(area).prefix
        except ValueError:
            inner = None
        if inner is None or (prefix is not None and not inner.startswith(prefix)):
            abort(404)
        scope = inner
    devices = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                    prefix=scope)
    counts = {k: sum(1 for d in devices if d["liveness"] == k) for k in ("online", "offline", "unknown")}
    total = len(devices)
    shown = [d for d in devices if (not filters["status"] or d["liveness"] == filters["status"])
             and (not filters["kind"] or d["kind"] == filters["kind"])]
    order = {"offline": 0, "unknown": 1, "online": 2}  # what needs a look first
    shown.sort(key=lambda d: (order[d["liveness"]], d.get("name") or d["id"]))
    areas, _, _ = _scoped_registry()
    depth = {"county": 0, "town": 1, "village": 2}
    return render_template("index.html", devices=shown[:DEVICES_SHOWN], more=len(shown) > DEVICES_SHOWN,
                           total=total, counts=counts, filters=filters, kinds=DEVICE_KINDS,
                           areas=[(a["code"], a["name"], depth.get(a["level"], 0)) for a in areas
                                  if a["level"] in ("town", "village")],
                           user=session["user"], csrf_token=csrf_token())


def _scoped_registry():
    return readmodel.registry_view(engine(), _prefix(), lambda code, prefix: AreaCode.parse(code).contains(prefix))


@console.get("/registry")
@login_required
def registry_page():
    from ..gridregistry import ROLES
    area_rows, grid_rows, people_rows = _scoped_registry()
    return render_template("registry.html", areas=area_rows, grids=grid_rows, people=people_rows, roles=ROLES,
                           user=session["user"], csrf_token=csrf_token())


@console.get("/map")
@login_required
def map_page():
    from ..mapview import project
    _, grid_rows, _ = _scoped_registry()
    devices = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                    prefix=_prefix())
    m = project(grid_rows, devices)
    m["alarms"] = readmodel.open_alarm_by_device(engine(), _prefix())
    m["unplaced"] = sum(1 for d in devices if d.get("latitude") is None or d.get("longitude") is None)
    counts = {k: sum(1 for d in devices if d["liveness"] == k) for k in ("online", "offline", "unknown")}
    return render_template("map.html", m=m, counts=counts, user=session["user"], csrf_token=csrf_token())
