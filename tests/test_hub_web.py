"""Hub REST API and pages, on SQLite and PostgreSQL, through Flask's test client."""

from __future__ import annotations

import base64
import re
import time

import pytest

from hub import audit, auth, dispatch, eventlog, registry
from hub.web import create_app
from protocols.ids import EventIdGenerator
from protocols.messages import Event

from .helpers import device_id
from .test_gridregistry import SAMPLE
from hub.gridregistry import import_csv
from hub.db import migrate

TOWN, GRID_A, GRID_B = "330102001000", "330102001001001", "330102001001002"

PASSWORD = "correct horse battery"


@pytest.fixture
def app(engine):
    auth.add_user(engine, "admin", PASSWORD, "admin")
    return create_app(engine, secret_key="k" * 40, offline_after_s=60,
                      health=lambda: {"broker_connected": True, "ingest": {"malformed": 0}})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(engine, app):
    return auth.create_token(engine, "admin", "test")


def _seed(engine, n=25):
    gen = EventIdGenerator()
    devs = [device_id(1), device_id(2)]
    registry.add_device(engine, devs[0], kind="camera-box", name="一号")
    t0 = time.time() - 100
    events = [Event(id=gen.new(int((t0 + i) * 1000)), device_id=devs[i % 2], type="alarm" if i % 5 == 0 else "motion",
                    ts=t0 + i, seq=i, priority=3 if i % 5 == 0 else 1, data={"i": i}) for i in range(n)]
    with engine.begin() as conn:
        registry.ensure_devices(conn, set(devs))
        assert eventlog.store_events(conn, events) == {e.id for e in events}
        assert eventlog.store_events(conn, events[:5]) == set()  # idempotent by id
        registry.touch(conn, devs[0], time.time())
    return devs, events, t0


def test_migrations_are_idempotent(engine):
    migrate(engine)
    migrate(engine)


def test_api_needs_a_token(client, token):
    for path in ("/api/v1/devices", "/api/v1/events"):
        resp = client.get(path)
        assert resp.status_code == 401
        assert resp.json["error"]["code"] == "unauthorized"
        assert client.get(path, headers={"Authorization": "Bearer xlt_wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_devices_with_liveness(client, engine, token):
    devs, _, _ = _seed(engine)
    registry.mark_ingest_started(engine)
    with engine.begin() as conn:
        registry.touch(conn, devs[0], time.time())
    items = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"}).json["items"]
    by_id = {d["id"]: d for d in items}
    assert by_id[devs[0]]["liveness"] == "online" and by_id[devs[0]]["registered"] is True
    assert by_id[devs[0]]["last_seen"].endswith("+00:00")
    # heard of only before this ingest started, and the grace period is not over: unknown
    assert by_id[devs[1]]["liveness"] == "unknown" and by_id[devs[1]]["registered"] is False


def test_events_filters_and_pages(client, engine, token):
    devs, events, t0 = _seed(engine)
    h = {"Authorization": f"Bearer {token}"}
    page = client.get("/api/v1/events?limit=10", headers=h).json
    assert [e["id"] for e in page["items"]] == [e.id for e in reversed(events)][:10]
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/events?limit=10&cursor={page['next_cursor']}", headers=h).json
        seen += [e["id"] for e in page["items"]]
    assert sorted(seen) == sorted(e.id for e in events) and len(seen) == len(events)
    alarms = client.get("/api/v1/events?type=alarm", headers=h).json["items"]
    assert {e["id"] for e in alarms} == {e.id for e in events if e.type == "alarm"}
    mine = client.get(f"/api/v1/events?device={devs[1]}&since={t0 + 20}", headers=h).json["items"]
    assert {e["id"] for e in mine} == {e.id for e in events if e.device_id == devs[1] and e.ts >= t0 + 20}
    utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + 20))
    assert len(client.get(f"/api/v1/events?since={utc}%2B00:00", headers=h).json["items"]) == 5
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + 20 + 8 * 3600))  # no offset: China time
    assert len(client.get(f"/api/v1/events?since={local}", headers=h).json["items"]) == 5
    bad = client.get("/api/v1/events?since=someday", headers=h)
    assert bad.status_code == 400 and "since" in bad.json["error"]["message"]
    assert client.get("/api/v1/events?limit=0", headers=h).status_code == 400


def test_openapi_and_healthz(client):
    doc = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/devices", "/api/v1/events", "/healthz"} <= set(doc["paths"])
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["database"] == "ok"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/%5Cevil.example", "https://evil.example",
                                    "/%0d%0a/evil.example"])
def test_login_and_language_never_redirect_off_site(client, target):
    token = _csrf(client.get("/login").get_data(as_text=True))
    resp = client.post(f"/login?next={target}", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/", target
    resp = client.get(f"/lang/en?next={target}")
    assert resp.status_code == 302 and resp.headers["Location"] == "/", target
    assert client.get("/lang/en?next=/queue%3Fstate%3Dopen").headers["Location"] == "/queue?state=open"


def test_login_page_wrong_password_csrf_and_logout(client, engine):
    _seed(engine)
    assert client.get("/").status_code == 302
    form = client.get("/login").get_data(as_text=True)
    token = _csrf(form)
    no_csrf = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert no_csrf.status_code == 400
    wrong = client.post("/login", data={"username": "admin", "password": "wrong password", "csrf_token": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.get_data(as_text=True)
    ok = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert ok.status_code == 302
    assert "总览" in client.get("/").get_data(as_text=True)
    page = client.get("/devices").get_data(as_text=True)
    assert device_id(1) in page and "一号" in page and "alarm" in page
    # the page's session also reads the API
    assert client.get("/api/v1/devices").status_code == 200
    assert client.post("/logout", data={}).status_code == 400
    assert client.post("/logout", data={"csrf_token": _csrf(page)}).status_code == 302
    assert client.get("/").status_code == 302


def test_passwords_are_hashed_and_checked(engine):
    import_csv(engine, SAMPLE)
    with pytest.raises(auth.AuthError, match="only admins may be unscoped"):
        auth.add_user(engine, "op", "operator password", "operator")
    with pytest.raises(auth.AuthError, match="neither a known area"):
        auth.add_user(engine, "op", "operator password", "operator", "999")
    auth.add_user(engine, "op", "operator password", "operator", TOWN)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE username = 'op'").scalar()
    assert "operator password" not in stored and stored.startswith("scrypt:")
    assert auth.check_login(engine, "op", "operator password")["role"] == "operator"
    assert auth.check_login(engine, "op", "operator passwor") is None
    with pytest.raises(auth.AuthError):
        auth.add_user(engine, "weak", "short", "viewer")


def test_device_secret(engine):
    dev = device_id(3)
    registry.add_device(engine, dev, kind="camera-box", name="x")
    secret = auth.new_device_secret(engine, dev)
    assert auth.check_device_secret(engine, dev, secret)
    assert not auth.check_device_secret(engine, dev, secret + "x")
    assert not auth.check_device_secret(engine, device_id(4), secret)


def test_session_posts_to_the_api_need_the_csrf_header(client, engine):
    devs, events, _ = _seed(engine)
    alarm = next(e for e in events if e.type == "alarm")
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    page_token = _csrf(client.get("/").get_data(as_text=True))
    resp = client.post(f"/api/v1/alarms/{alarm.id}/accept")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "csrf"
    # with the header it passes the CSRF check; these seeded alarms have no ticket (ingest never
    # stores an alarm without one)
    resp = client.post(f"/api/v1/alarms/{alarm.id}/accept", headers={"X-CSRF-Token": page_token})
    assert resp.status_code == 404 and "no ticket for alarm" in resp.json["error"]["message"]


@pytest.fixture
def scoped(engine, app):
    """Two grids of one village, a device and a ticket in each, and users at three levels."""
    import_csv(engine, SAMPLE)
    registry.add_device(engine, device_id(1), kind="camera-box", name="A", grid_code=GRID_A)
    registry.add_device(engine, device_id(2), kind="camera-box", name="B", grid_code=GRID_B)
    gen = EventIdGenerator()
    evs = [Event(id=gen.new(), device_id=device_id(n), type="motion", ts=time.time(), seq=1, priority=1)
           for n in (1, 2)]
    with engine.begin() as conn:
        eventlog.store_events(conn, evs)
    ta = dispatch.create_ticket(engine, category="road", title="A 的事", source="manual", grid_code=GRID_A)
    tb = dispatch.create_ticket(engine, category="road", title="B 的事", source="manual", grid_code=GRID_B)
    tokens = {}
    for name, role, scope in (("worker_a", "grid_worker", GRID_A), ("town_op", "operator", TOWN),
                              ("town_viewer", "viewer", TOWN)):
        auth.add_user(engine, name, "a long password", role, scope)
        tokens[name] = {"Authorization": f"Bearer {auth.create_token(engine, name, 't')}"}
    return {"tickets": (ta, tb), "events": evs, "tokens": tokens}


def test_a_grid_worker_sees_only_their_grid(client, scoped, engine):
    ta, tb = scoped["tickets"]
    h = scoped["tokens"]["worker_a"]
    assert client.get(f"/api/v1/tickets/{tb}", headers=h).status_code == 404
    assert client.get(f"/api/v1/devices/{device_id(2)}", headers=h).status_code == 404
    assert client.get(f"/api/v1/devices/{device_id(1)}", headers=h).status_code == 200
    assert [t["id"] for t in client.get("/api/v1/tickets", headers=h).json["items"]] == [ta]
    assert [d["id"] for d in client.get("/api/v1/devices", headers=h).json["items"]] == [device_id(1)]
    assert [e["device_id"] for e in client.get("/api/v1/events", headers=h).json["items"]] == [device_id(1)]
    assert client.post(f"/api/v1/tickets/{tb}/actions/accept", headers=h).status_code == 404
    # the town operator sees both grids
    town = scoped["tokens"]["town_op"]
    assert sorted(t["id"] for t in client.get("/api/v1/tickets", headers=town).json["items"]) == [ta, tb]


def test_ticket_actions_report_and_audit(client, scoped, engine):
    ta, _ = scoped["tickets"]
    h = scoped["tokens"]["worker_a"]
    assert client.post(f"/api/v1/tickets/{ta}/actions/accept", headers=scoped["tokens"]["town_viewer"]).status_code == 403
    r = client.post(f"/api/v1/tickets/{ta}/actions/accept", headers=h)
    assert r.status_code == 200 and r.json["ticket"]["state"] == "accepted" and r.json["ticket"]["state_zh"] == "已受理"
    assert client.post(f"/api/v1/tickets/{ta}/actions/accept", headers=h).status_code == 409
    for action in ("start", "resolve"):
        assert client.post(f"/api/v1/tickets/{ta}/actions/{action}", headers=h, json={"reason": "修好了"}).status_code == 200
    detail = client.get(f"/api/v1/tickets/{ta}", headers=h).json
    assert [s["action"] for s in detail["timeline"]] == ["report", "dispatch", "accept", "start", "resolve"]
    new = client.post("/api/v1/tickets", headers=h, json={"title": "垃圾堆放", "grid_code": GRID_A})
    assert new.status_code == 201 and new.json["ticket"]["state"] == "dispatched"
    assert client.post("/api/v1/tickets", headers=h, json={"title": "越界", "grid_code": GRID_B}).status_code == 400
    views = audit.rows(engine, action="view_ticket")
    assert [(v["actor"], v["object"]) for v in views] == [("worker_a", str(ta))]
    assert audit.rows(engine, action="registry_import")


def test_console_pages_queue_actions_and_language(client, scoped, engine):
    ta, tb = scoped["tickets"]
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "town_op", "password": "a long password", "csrf_token": token})
    board = client.get("/queue").get_data(as_text=True)
    assert f'data-ticket="{ta}"' in board and f'data-ticket="{tb}"' in board and "已分拨" in board
    csrf = _csrf(board)
    assert client.post(f"/tickets/{ta}/act", data={"action": "accept"}).status_code == 400  # no CSRF token
    r = client.post(f"/tickets/{ta}/act", data={"action": "accept", "csrf_token": csrf, "next": "/queue"})
    assert r.status_code == 302 and dispatch.get_ticket(engine, ta)["state"] == "accepted"
    detail = client.get(f"/tickets/{ta}").get_data(as_text=True)
    assert "town_op" in detail and "已受理" in detail
    assert "处置到位率" in client.get("/stats").get_data(as_text=True)
    client.get("/lang/en")
    assert "Queue board" in client.get("/queue").get_data(as_text=True)
    client.get("/lang/zh")
    reg = client.get("/registry").get_data(as_text=True)
    assert "小和山一网格" in reg and "杨家牌楼一网格" in reg and "绕城一网格" not in reg  # another town
    svg = client.get("/map").get_data(as_text=True)
    assert svg.count("<polygon") == 1 and "小和山一网格" in svg
    # a grid worker of grid A does not see grid B's ticket page
    client.post("/logout", data={"csrf_token": csrf})
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "worker_a", "password": "a long password", "csrf_token": token})
    assert client.get(f"/tickets/{tb}").status_code == 404
    assert client.post(f"/tickets/{tb}/act", data={"action": "accept", "csrf_token": _csrf(
        client.get("/queue").get_data(as_text=True))}).status_code == 404


def test_open311_export_maps_states_to_open_and_closed(client, scoped, engine):
    ta, tb = scoped["tickets"]
    dispatch.act(engine, tb, "void", "town_op", reason="重复")
    h = scoped["tokens"]["town_op"]
    items = {r["service_request_id"]: r for r in client.get("/api/v1/tickets/open311/requests.json", headers=h).json}
    assert (items[str(ta)]["status"], items[str(tb)]["status"]) == ("open", "closed")
    assert items[str(ta)]["requested_datetime"].endswith("+00:00")
    closed = client.get("/api/v1/tickets/open311/requests.json?status=closed", headers=h).json
    assert [r["service_request_id"] for r in closed] == [str(tb)]
    worker = client.get("/api/v1/tickets/open311/requests.json", headers=scoped["tokens"]["worker_a"]).json
    assert [r["service_request_id"] for r in worker] == [str(ta)]


def _jpeg() -> bytes:
    # a tiny baseline JPEG (1x1 gray): SOI, JFIF, quantisation and Huffman tables, one block, EOI
    return bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f"
        "141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100"
        "ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000"
        "017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a2526272829"
        "2a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596"
        "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3"
        "f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")


def test_progress_notes_and_resolution_photos_from_a_phone(client, scoped, engine):
    import io
    ta, tb = scoped["tickets"]
    h = scoped["tokens"]["worker_a"]
    client.post(f"/api/v1/tickets/{ta}/actions/accept", headers=h)
    client.post(f"/api/v1/tickets/{ta}/actions/start", headers=h)
    assert client.post(f"/api/v1/tickets/{ta}/actions/progress", headers=h, json={}).status_code == 409
    r = client.post(f"/api/v1/tickets/{ta}/actions/progress", headers=h, json={"reason": "已联系村委"})
    assert r.status_code == 200 and r.json["ticket"]["state"] == "handling"
    jpeg = _jpeg()
    r = client.post(f"/api/v1/tickets/{ta}/actions/resolve", headers=h,
                    data={"reason": "路灯已换", "photo": (io.BytesIO(jpeg), "done.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 200 and r.json["photo_id"]
    bad = client.post(f"/api/v1/tickets/{ta}/actions/urge", headers=h,
                      data={"photo": (io.BytesIO(b"GIF89a"), "x.gif")}, content_type="multipart/form-data")
    assert bad.status_code == 400
    detail = client.get(f"/api/v1/tickets/{ta}", headers=h).json
    assert [p["purpose"] for p in detail["photos"]] == ["resolve"]
    assert [s["reason"] for s in detail["timeline"] if s["action"] == "progress"] == ["已联系村委"]
    got = client.get(detail["photos"][0]["url"], headers=h)
    assert got.status_code == 200 and got.data == jpeg and got.mimetype == "image/jpeg"
    other = client.get(detail["photos"][0]["url"].replace(f"/{ta}/", f"/{tb}/"), headers=h)
    assert other.status_code == 404
    # a photo on grid B's ticket: the town operator sees it, grid A's worker gets a 404
    town = scoped["tokens"]["town_op"]
    client.post(f"/api/v1/tickets/{tb}/actions/accept", headers=town)
    client.post(f"/api/v1/tickets/{tb}/actions/start", headers=town)
    b_photo = client.post(f"/api/v1/tickets/{tb}/actions/progress", headers=town,
                          data={"reason": "现场照片", "photo": (io.BytesIO(jpeg), "b.jpg")},
                          content_type="multipart/form-data").json["photo_id"]
    assert client.get(f"/api/v1/tickets/{tb}/photos/{b_photo}", headers=town).status_code == 200
    assert client.get(f"/api/v1/tickets/{tb}/photos/{b_photo}", headers=h).status_code == 404
    assert [v["object"] for v in audit.rows(engine, action="view_photo")] == [
        f"{tb}/{b_photo}", f"{ta}/{detail['photos'][0]['id']}"]
    not_jpeg = client.post("/api/v1/tickets", headers=h, data={"title": "x", "grid_code": GRID_A,
                                                               "photo": (io.BytesIO(b"not a jpeg"), "x.jpg")},
                           content_type="multipart/form-data")
    assert not_jpeg.status_code == 400


def test_the_dashboard_shows_camera_thumbnails(client, engine):
    gen = EventIdGenerator()
    dev = device_id(5)
    thumb = base64.b64encode(_jpeg()).decode()
    events = [Event(id=gen.new(), device_id=dev, type="motion", ts=time.time(), seq=1, priority=1,
                    data={"camera": "gate", "thumb": thumb}),
              Event(id=gen.new(), device_id=dev, type="motion", ts=time.time(), seq=2, priority=1,
                    data={"camera": "lane", "thumb": 7})]  # not a picture: no image, no error
    with engine.begin() as conn:
        registry.ensure_devices(conn, {dev})
        eventlog.store_events(conn, events)
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    page = client.get("/").get_data(as_text=True)
    assert f'src="data:image/jpeg;base64,{thumb}"' in page and "移动侦测 · gate" in page
    assert page.count('class="thumb"') == 1


@pytest.mark.parametrize("path", [
    "/api/v1/tickets?cursor=abc", "/api/v1/tickets?limit=abc", "/api/v1/tickets?limit=0", "/api/v1/tickets?limit=-1",
    "/api/v1/tickets/open311/requests.json?limit=x", "/api/v1/tickets?state=open%00", "/api/v1/tickets?grid_code=%00",
    "/api/v1/events?type=motion%00", "/api/v1/events?device=%00", "/api/v1/events?cursor=abc",
    "/api/v1/events?since=nan", "/api/v1/events?since=1e400", "/api/v1/events?limit=99999999999999999999",
    "/api/v1/tickets?cursor=99999999999999999999999",
])
def test_bad_parameters_are_a_400_with_the_error_body(client, token, scoped, path):
    resp = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400, (path, resp.status_code)
    assert resp.json["error"]["code"] == "bad_request" and resp.json["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/tickets/99999999999999999999999", "/api/v1/tickets/2147483648",
                                  "/api/v1/tickets/0", f"/api/v1/devices/{'1' * 20}%00", "/api/v1/devices/%00",
                                  "/api/v1/tickets/1/photos/99999999999999999999"])
def test_ids_that_cannot_exist_are_a_404(client, token, scoped, path):
    resp = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found", path


def test_bad_bodies_are_a_400(client, token, scoped):
    ta, _ = scoped["tickets"]
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for raw in (b'{"reason": NaN}', b'{"reason": "a\\u0000b"}', b"[1]", b"{", b'{"merged_into": 1e400}',
                '{"reason": "x"}'.encode("utf-16")):
        resp = client.post(f"/api/v1/tickets/{ta}/actions/progress", data=raw, headers=h)
        assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_request", raw
    resp = client.post(f"/api/v1/tickets/{ta}/actions/merge", json={"merged_into": 2 ** 40}, headers=h)
    assert resp.status_code == 400


def test_merge_targets_must_be_visible_and_open(client, scoped, engine):
    ta, tb = scoped["tickets"]
    worker = scoped["tokens"]["worker_a"]
    # B's ticket is outside the grid worker's area, 999999 does not exist: both refused
    for target in (tb, 999999):
        resp = client.post(f"/api/v1/tickets/{ta}/actions/merge", json={"merged_into": target}, headers=worker)
        assert resp.status_code == 409 and "in your area" in resp.json["error"]["message"], target
    assert dispatch.get_ticket(engine, ta)["state"] == "dispatched"
    # a ticket in the area but closed is refused too; an open one is fine
    tc = dispatch.create_ticket(engine, category="road", title="C", source="manual", grid_code=GRID_A)
    td = dispatch.create_ticket(engine, category="road", title="D", source="manual", grid_code=GRID_A)
    dispatch.act(engine, tc, "void", "admin", reason="dup")
    resp = client.post(f"/api/v1/tickets/{ta}/actions/merge", json={"merged_into": tc}, headers=worker)
    assert resp.status_code == 409 and "open one" in resp.json["error"]["message"]
    resp = client.post(f"/api/v1/tickets/{ta}/actions/merge", json={"merged_into": td}, headers=worker)
    assert resp.status_code == 200 and resp.json["ticket"]["merged_into"] == td
    # transfer: only to a grid inside the area
    resp = client.post(f"/api/v1/tickets/{td}/actions/transfer", json={"grid_code": GRID_B, "reason": "x"},
                       headers=worker)
    assert resp.status_code == 409 and "in your area" in resp.json["error"]["message"]


def test_console_pages_refuse_bad_parameters_without_a_500(client, scoped):
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    for path in ("/queue?state=%00", "/queue?level=a%00b", "/stream?after=99999999999999999999", "/stream?after=x",
                 "/tickets/99999999999999999999"):
        resp = client.get(path)
        assert resp.status_code in (400, 404), (path, resp.status_code)


def _login(client, username, password, addr):
    token = _csrf(client.get("/login", environ_base={"REMOTE_ADDR": addr}).get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def test_password_guessing_is_throttled_per_address_and_account_across_restarts(engine):
    from hub import throttle
    auth.add_user(engine, "admin", PASSWORD, "admin")

    def fresh_client():  # a new app on the same database: what a hub restart gives
        return create_app(engine, secret_key="k" * 40, offline_after_s=60).test_client()
    client = fresh_client()
    for _ in range(throttle.ADDRESS[0]):
        assert _login(client, "admin", "wrong password", "10.0.0.1").status_code == 401
    refused = _login(client, "admin", PASSWORD, "10.0.0.1")
    assert refused.status_code == 429 and "登录失败次数过多" in refused.get_data(as_text=True)
    assert _login(fresh_client(), "admin", PASSWORD, "10.0.0.1").status_code == 429  # survives a restart
    assert _login(fresh_client(), "admin", PASSWORD, "10.0.0.2").status_code == 302  # another address is fine
    # one account guessed from many addresses is held as well
    for i in range(throttle.ACCOUNT[0]):
        assert _login(fresh_client(), "admin", "wrong", f"10.1.0.{i}").status_code in (401, 429)
    assert _login(fresh_client(), "admin", PASSWORD, "10.2.0.1").status_code == 429
    # the window passes
    keys = throttle.keys_for_login("admin", "10.2.0.1")
    assert throttle.wait_s(engine, keys) > 0
    assert throttle.wait_s(engine, keys, now=time.time() + throttle.ACCOUNT[1] + 1) == 0


def test_token_guessing_is_throttled_per_address(engine, token):
    from hub import throttle
    client = create_app(engine, secret_key="k" * 40, offline_after_s=60).test_client()
    for i in range(throttle.TOKEN[0]):
        resp = client.get("/api/v1/devices", headers={"Authorization": f"Bearer xlt_guess{i}"},
                          environ_base={"REMOTE_ADDR": "10.9.0.1"})
        assert resp.status_code == 401
    resp = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"},
                      environ_base={"REMOTE_ADDR": "10.9.0.1"})
    assert resp.status_code == 429 and resp.json["error"]["code"] == "too_many_attempts"
    resp = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"},
                      environ_base={"REMOTE_ADDR": "10.9.0.2"})
    assert resp.status_code == 200


def test_the_devices_page_shows_a_stalled_camera(client, engine):
    from dataclasses import asdict

    from protocols.messages import Heartbeat, decode_heartbeat, encode_heartbeat
    registry.add_device(engine, device_id(1), kind="camera-box", name="村口")
    hb = decode_heartbeat(encode_heartbeat(Heartbeat(ts=time.time(), uptime_s=5, disk_free_bytes=1, outbox_depth=0,
                                                     cameras={"gate": 0.0, "lane": 12.5},
                                                     camera_states={"gate": "stalled", "lane": "up"})))
    with engine.begin() as conn:
        registry.set_heartbeat(conn, device_id(1), asdict(hb))
    token = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    page = client.get("/devices").get_data(as_text=True)
    assert 'data-camera="gate" data-state="stalled"' in page and "gate 停滞" in page
    assert 'data-camera="lane" data-state="up"' in page and "lane 正常 · 12.5 fps" in page


def test_a_motion_update_completes_only_its_own_devices_motion(engine):
    gen = EventIdGenerator()
    a, b = device_id(1), device_id(2)
    motion = Event(id=gen.new(), device_id=a, type="motion", ts=time.time(), seq=1, priority=1,
                   data={"camera": "gate", "start": 1.0, "zones": ["gate"]})
    forged = Event(id=gen.new(), device_id=b, type="motion_update", ts=time.time(), seq=1, priority=1,
                   data={"motion_id": motion.id, "end": 9.0, "clip": "../../etc/passwd"})
    update = Event(id=gen.new(), device_id=a, type="motion_update", ts=time.time(), seq=2, priority=1,
                   data={"motion_id": motion.id, "camera": "gate", "start": 1.0, "end": 3.5, "peak_area": 0.3})
    with engine.begin() as conn:
        registry.ensure_devices(conn, {a, b})
        eventlog.store_events(conn, [motion, forged, update])
        assert eventlog.merge_motion_updates(conn, [forged, update]) == 1
    stored = eventlog.get_event(engine, motion.id)
    assert stored["data"] == {"camera": "gate", "start": 1.0, "zones": ["gate"], "end": 3.5, "peak_area": 0.3,
                              "ended": True}
