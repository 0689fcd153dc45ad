"""The LAN page's security: every page and API needs a session, every state change needs the
CSRF token, media downloads cannot leave the media folder, operators only acknowledge."""

from __future__ import annotations

import json
import re

import pytest

from protocols.deviceconfig import EdgeConfig
from edge.store import Store
from edge.web import EventFeed, WebContext, create_app
from edge.web.auth import hash_password

from .helpers import device_id

PASSWORD = "a long enough password"


@pytest.fixture
def app(tmp_path):
    from edge.web import auth
    auth._failures.clear()
    cfg = EdgeConfig.model_validate({
        "device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                   "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
        "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"},
        "media": {"path": str(tmp_path / "media")}, "web": {}})
    store = Store(tmp_path / "edge.db", cfg.device.id)
    store.put_user("op", hash_password(PASSWORD), "operator")
    store.put_user("view", hash_password(PASSWORD), "viewer")
    (tmp_path / "media" / "cam" / "d").mkdir(parents=True)
    clip = tmp_path / "media" / "cam" / "d" / "e1-clip.mp4"
    clip.write_bytes(bytes(range(256)) * 40)
    ev = store.add("motion", {"camera": "cam", "clip": "cam/d/e1-clip.mp4"})
    store.add_media(ev.id, "clip", "cam/d/e1-clip.mp4", clip.stat().st_size)
    (tmp_path / "secret.txt").write_text("not for the page")
    app = create_app(WebContext(cfg, cfg.web, store, EventFeed()), secret=b"k" * 32)
    app.config["TESTING"] = True
    yield app
    store.close()


def logged_in(app, user="op"):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"name": user, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    # a login starts a new session, with a new token: the page after it carries it
    index = client.get("/").get_data(as_text=True)
    token = json.loads(re.search(r'<script id="xl-config" type="application/json">(.*?)</script>', index,
                                 re.S).group(1))["csrf"]
    return client, token


def rules(app, method):
    for rule in app.url_map.iter_rules():
        if method in rule.methods and rule.endpoint not in ("static",):
            url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "cam" if m.group(1) == "camera" else "x", rule.rule)
            yield rule.endpoint, url


def test_every_page_and_api_needs_a_session(app):
    client = app.test_client()
    checked = 0
    for endpoint, url in rules(app, "GET"):
        if endpoint == "auth.login":
            continue
        resp = client.get(url)
        assert resp.status_code in (302, 401), (url, resp.status_code)
        if resp.status_code == 302:
            assert "/login" in resp.headers["Location"]
        checked += 1
    assert checked >= 7


def test_every_state_change_needs_the_csrf_token(app):
    client, token = logged_in(app)
    checked = 0
    for endpoint, url in rules(app, "POST"):
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            resp = client.post(url, headers=headers, json={})
            assert resp.status_code == 403, (url, headers, resp.status_code)
        checked += 1
    assert checked >= 5
    # with the token the same requests get past the check (and meet their own rules)
    assert client.post("/api/alarms/nope/ack", headers={"X-CSRF-Token": token}).status_code == 404
    assert client.post("/login", data={"name": "op", "password": "wrong"}).status_code == 403  # login too


def test_wrong_password_is_refused_and_no_user_has_a_default(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for name, password in (("op", "wrong password"), ("admin", "admin"), ("admin", ""), ("nobody", PASSWORD)):
        resp = client.post("/login", data={"name": name, "password": password, "csrf_token": token})
        assert resp.status_code == 401
    assert client.get("/api/health").status_code == 401


def test_guessing_passwords_is_slowed_down(app):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    for _ in range(5):
        assert client.post("/login", data={"name": "op", "password": "guess", "csrf_token": token}).status_code == 401
    # the sixth try waits, even with the right password
    assert client.post("/login", data={"name": "op", "password": PASSWORD, "csrf_token": token}).status_code == 429


def test_clip_download_refuses_path_traversal_and_unknown_files(app):
    client, _ = logged_in(app, "view")
    for url in ("/media/../secret.txt", "/media/..%2fsecret.txt", "/media/cam/../../secret.txt",
                "/media/%2e%2e/secret.txt", "/media//etc/passwd", "/media/cam/d/other.mp4", "/media/../edge.db"):
        with client.get(url, follow_redirects=True) as resp:
            assert resp.status_code == 404 and b"not for the page" not in resp.data, url
    whole = client.get("/media/cam/d/e1-clip.mp4")
    assert whole.status_code == 200 and len(whole.data) == 10240
    part = client.get("/media/cam/d/e1-clip.mp4", headers={"Range": "bytes=256-511"})
    assert part.status_code == 206 and part.data == bytes(range(256))
    assert part.headers["Content-Range"] == "bytes 256-511/10240"
    whole.close()
    part.close()


def test_only_operators_acknowledge(app):
    store = app.extensions["xl"].store
    alarm = store.add("alarm", {"source": "button", "presses": 1})
    client, token = logged_in(app, "view")
    assert client.post(f"/api/alarms/{alarm.id}/ack", headers={"X-CSRF-Token": token}).status_code == 403
    client, token = logged_in(app, "op")
    assert client.get("/api/alarms").get_json()["items"][0]["id"] == alarm.id
    resp = client.post(f"/api/alarms/{alarm.id}/ack", headers={"X-CSRF-Token": token})
    assert resp.status_code == 200
    # the banner stays, calm, saying who acknowledged it; nothing waits any more
    [item] = client.get("/api/alarms").get_json()["items"]
    assert (item["id"], item["state"], item["waiting"], item["by"], item["via"]) == (alarm.id, "help_coming", False,
                                                                                    "op", "lan")
    assert client.post(f"/api/alarms/{alarm.id}/ack", headers={"X-CSRF-Token": token}).status_code == 404
    ack = store.events(type="alarm_ack")[0]
    assert ack["data"] == {"alarm_id": alarm.id, "by": "op", "via": "lan"} and ack["priority"] == 3


def test_events_api_filters_and_pages(app):
    store = app.extensions["xl"].store
    for i in range(30):
        store.add("face" if i % 3 == 0 else "motion", {"camera": "a" if i % 2 else "b", "i": i})
    client, _ = logged_in(app)
    faces = client.get("/api/events?type=face&limit=100").get_json()["items"]
    assert len(faces) == 10 and all(e["type"] == "face" for e in faces)
    cam_a = client.get("/api/events?camera=a&limit=100").get_json()["items"]
    assert {e["camera"] for e in cam_a} == {"a"} and len(cam_a) == 15
    first = client.get("/api/events?limit=10").get_json()
    second = client.get(f"/api/events?limit=10&before={first['next_before']}").get_json()
    assert first["items"][-1]["seq"] > second["items"][0]["seq"]
    assert client.get("/api/events?since=yesterday").status_code == 400


def test_translations_are_complete_and_compiled():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "scripts" / "translations.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_users_flashed_with_the_config_log_in_with_a_hash_never_a_password(tmp_path):
    import subprocess

    from protocols.configdoc import ConfigError
    from protocols.deviceconfig import parse_config

    from .helpers import BIN
    out = subprocess.run([str(BIN / "xl-edge"), "user", "hash", "--password-stdin"], input=PASSWORD + "\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith("scrypt:") and PASSWORD not in out
    base = {"device": {"id": device_id(1), "kind": "camera-box", "model": "t", "name": "t",
                       "grid_code": "330102001001001", "location": {"latitude": 30, "longitude": 120}},
            "broker": {"url": "mqtt://127.0.0.1:1", "password": "not-used-here"}}
    import json
    with pytest.raises(ConfigError, match="password_hash"):
        parse_config(json.dumps({**base, "web": {"users": [{"name": "m", "password_hash": PASSWORD}]}}),
                     str(tmp_path / "bad.yaml"))
    cfg = parse_config(json.dumps({**base, "web": {"users": [{"name": "m", "role": "operator", "password_hash": out}]}}),
                       str(tmp_path / "edge.yaml"))
    store = Store(tmp_path / "edge.db", cfg.device.id)
    app = create_app(WebContext(cfg, cfg.web, store, EventFeed()), secret=b"k" * 32)
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"name": "m", "password": PASSWORD, "csrf_token": token}).status_code == 302
    assert client.get("/api/health").get_json()["device"]["id"] == cfg.device.id
    store.close()


def test_a_media_file_replaced_by_a_symlink_is_not_served(app, tmp_path):
    client, _ = logged_in(app, "view")
    clip = tmp_path / "media" / "cam" / "d" / "e1-clip.mp4"
    with client.get("/media/cam/d/e1-clip.mp4") as resp:
        assert resp.status_code == 200
    clip.unlink()
    clip.symlink_to(tmp_path / "secret.txt")
    resp = client.get("/media/cam/d/e1-clip.mp4")
    assert resp.status_code == 404 and b"not for the page" not in resp.data
    # a folder on the way replaced by a link is refused as well
    clip.unlink()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e1-clip.mp4").write_bytes(b"not for the page")
    (tmp_path / "media" / "cam" / "d").rmdir()
    (tmp_path / "media" / "cam" / "d").symlink_to(tmp_path / "elsewhere")
    resp = client.get("/media/cam/d/e1-clip.mp4")
    assert resp.status_code == 404 and b"not for the page" not in resp.data


@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/\\evil.example", "https://evil.example/",
                                    "/%0a/evil.example", "http:/evil.example", " /x", "/\t/evil.example"])
def test_login_and_language_never_redirect_off_site(app, target):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post(f"/login?next={target}", data={"name": "op", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/", target
    client, token = logged_in(app)
    resp = client.post("/lang", data={"lang": "en", "next": target.replace("%09", "\t").replace("%0a", "\n"),
                                      "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/", target
