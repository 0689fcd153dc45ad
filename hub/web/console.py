"""County UI pages: dashboard with live alarms (Server-Sent Events), queue board, ticket
detail with actions, statistics. Chinese first; ?lang=en or the switch in the header for
English. Every page is scoped to the user's area like the API."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session, url_for

from common.redirects import safe_next

from .. import alarms, audit, dispatch, eventlog, notify, readmodel, registry, stats
from ..areas import AreaCode
from .base import (csrf_token, device_json, engine, event_json, iso, login_required,
                   user_prefix)
from .live import cameras_of, may_talk
from .params import INT32_MAX, arg_int, arg_text

console = Blueprint("console", __name__)

ACTION_LABELS = {
    "accept": ("受理", "Accept"), "start": ("开始处置", "Start"), "resolve": ("处置完毕", "Resolve"),
    "verify": ("核查通过", "Verify"), "reject": ("核查退回", "Return"), "archive": ("归档", "Archive"),
    "send_back": ("退回", "Send back"), "transfer": ("移交", "Transfer"), "void": ("作废", "Void"),
    "progress": ("处置进展", "Progress note"), "urge": ("催办", "Urge"), "supervise": ("督办", "Supervise"),
}
STATE_EN = {"reported": "reported", "dispatched": "dispatched", "accepted": "accepted", "handling": "handling",
            "resolved": "resolved", "verified": "verified", "returned": "returned", "archived": "archived",
            "merged": "merged", "void": "void"}


@console.app_context_processor
def _helpers():
    lang = session.get("lang", "zh")

    def tr(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    def state_name(state: str) -> str:
        return STATE_EN[state] if lang == "en" else dispatch.STATES[state]
    return {"tr": tr, "lang": lang, "state_name": state_name, "iso": iso}


@console.get("/lang/<lang>")
def set_lang(lang: str):
    if lang in ("zh", "en"):
        session["lang"] = lang
    return redirect(safe_next(request.args.get("next")))


def _prefix() -> str | None:
    return user_prefix(session["user"])


def _allowed_actions(t: dict) -> list[str]:
    allowed = alarms.allowed_actions(session["user"]["role"], t)
    return [a for a in ACTION_LABELS if a in allowed]


@console.get("/")
@login_required
def dashboard():
    prefix = _prefix()
    offline_after = current_app.extensions["xl"]["offline_after_s"]
    devices = registry.list_devices(engine(), offline_after_s=offline_after, prefix=prefix)
    liveness = {k: sum(1 for d in devices if d["liveness"] == k) for k in ("online", "offline", "unknown")}
    alarms, last_id = readmodel.open_alarms(engine(), prefix)
    notify.shown_on_console(engine(), [t["id"] for t in alarms], session["user"].get("scope_code"))
    return render_template("dashboard.html", counts=stats.counts_by_state(engine(), prefix), liveness=liveness,
                           devices=[device_json(d) for d in devices], alarms=alarms, last_id=last_id,
                           events=[event_json(e) for e in eventlog.query_events(engine(), limit=20, prefix=prefix)],
                           user=session["user"], csrf_token=csrf_token())


@console.get("/stream")
@login_required
def stream():
    """New tickets in the user's area as Server-Sent Events (``event: ticket``)."""
    prefix = _prefix()
    db = engine()
    english = session.get("lang") == "en"
    scope_code = session["user"].get("scope_code")
    last = arg_int("after", 0, 0, INT32_MAX)

    def generate():
        nonlocal last
        yield "retry: 2000\n\n"
        quiet = 0.0
        while True:
            rows = readmodel.tickets_after(db, prefix, last)
            notify.shown_on_console(db, [t["id"] for t in rows if t["severity"] == "urgent"], scope_code)
            for t in rows:
                last = max(last, t["id"])
                state = STATE_EN[t["state"]] if english else dispatch.STATES[t["state"]]
                data = {"id": t["id"], "title": t["title"], "severity": t["severity"], "state": state,
                        "grid_code": t["grid_code"], "device_id": t["device_id"], "created_at": iso(t["created_at"])}
                yield f"event: ticket\nid: {t['id']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            quiet = 0.0 if rows else quiet + 1.0
            if quiet >= 15:
                quiet = 0.0
                yield ": keep-alive\n\n"
            time.sleep(1.0)
    return Response(generate(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@console.get("/queue")
@login_required
def queue():
    filters = {k: arg_text(k, max_len=32) or "" for k in ("state", "level", "severity")}
    rows = readmodel.tickets_page(engine(), _prefix(), filters=filters, limit=200)
    return render_template("queue.html", tickets=rows, filters=filters, states=dispatch.STATES,
                           actions={t["id"]: _allowed_actions(t) for t in rows}, labels=ACTION_LABELS,
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
    return render_template("ticket.html", t=dict(t), timeline=timeline, event=event, labels=ACTION_LABELS,
                           cameras=cameras, talk=talk,
                           actions=_allowed_actions(dict(t)), user=session["user"], csrf_token=csrf_token(),
                           parties=readmodel.parties(engine(), ticket_id), party_names=PARTY_NAMES,
                           may_ack=alarms.may_change(session["user"]["role"]))


PARTY_NAMES = {"grid_workers": ("网格员", "grid workers"), "village_monitor": ("村值守员", "village monitor"),
               "police_station": ("派出所", "police station"), "town_centre": ("镇综治中心", "town centre"),
               "county_centre": ("县综治中心", "county centre")}


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
    except notify.NotYours as exc:
        session["flash"] = str(exc)
    return redirect(url_for("console.ticket", ticket_id=ticket_id))


@console.post("/tickets/<id:ticket_id>/act")
@login_required
def act(ticket_id: int):
    visible = readmodel.ticket(engine(), _prefix(), ticket_id)
    action = request.form.get("action", "")
    if visible is None:
        abort(404)
    if action not in _allowed_actions(visible):
        session["flash"] = f"{action}: not allowed"
    else:
        try:
            alarms.act(engine(), ticket_id, action, session["user"], scope=_prefix(),
                       reason=request.form.get("reason") or None, grid_code=request.form.get("grid_code") or None)
            current_app.extensions["xl"]["commands_due"]()
            audit.record(engine(), session["user"]["username"], f"ticket_{action}", str(ticket_id))
        except dispatch.DispatchError as exc:
            session["flash"] = str(exc)
    return redirect(safe_next(request.form.get("next"), url_for("console.ticket", ticket_id=ticket_id)))


@console.get("/stats")
@login_required
def statistics():
    return render_template("stats.html", s=stats.compute(engine(), _prefix()), user=session["user"],
                           csrf_token=csrf_token())


@console.get("/devices")
@login_required
def device_list():
    devices = registry.list_devices(engine(), offline_after_s=current_app.extensions["xl"]["offline_after_s"],
                                    prefix=_prefix())
    return render_template("index.html", devices=[device_json(d) for d in devices],
                           events=[event_json(e) for e in eventlog.query_events(engine(), limit=50,
                                                                                 prefix=_prefix())],
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
    return render_template("map.html", m=project(grid_rows, devices), user=session["user"], csrf_token=csrf_token())
