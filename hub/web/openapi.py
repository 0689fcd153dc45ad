"""OpenAPI 3.1 document of the hub's REST API."""

from __future__ import annotations

from typing import Any

from protocols.ids import DEVICE_ID_RE, EVENT_ID_RE

from ..dispatch import CATEGORIES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": _ERROR}}}


#: what every API operation may answer besides its own responses (hub.web.params checks every parameter)
_COMMON = {"400": _err("A parameter or the body is not valid"), "401": _err("No or bad token"),
           "404": _err("Not found (or outside your area)"), "413": _err("Body too large"),
           "429": _err("Too many wrong tokens from this address; try again later")}
_TEXT = {"type": "string", "maxLength": 64, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
_EVENT_ID = {"type": "string", "pattern": f"^{EVENT_ID_RE.pattern}$"}
_ID = {"type": "integer", "minimum": 1, "maximum": 2 ** 31 - 1}
_SESSION = {"type": "string", "pattern": "^[0-9a-f]{32}$"}


def document(version: str) -> dict[str, Any]:
    doc = _document(version)
    for path, item in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in item.values():
            operation["responses"] = {**_COMMON, **operation["responses"]}
            if "requestBody" in operation:
                operation["responses"].setdefault("403", _err("Your role may not do this"))
    return doc


def _document(version: str) -> dict[str, Any]:
    err = _err
    return {
        "openapi": "3.1.0",
        "info": {"title": "Xueliang hub API", "version": version},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Token from `xl-hub token create`"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Device": {"type": "object", "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]{20}$"}, "kind": {"type": "string"},
                    "model": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
                    "grid_code": {"type": ["string", "null"]}, "location": {"type": "object"},
                    "registered": {"type": "boolean"}, "software": {"type": ["string", "null"]},
                    "liveness": {"enum": ["online", "offline", "unknown"]},
                    "last_seen": {"type": ["string", "null"], "format": "date-time"},
                    "heartbeat": {"type": ["object", "null"]},
                    "reported_mismatch": {"type": "object", "description":
                                          "kind / grid_code as the device reports them, where they differ "
                                          "from the registry (whose values stand)"}}},
                "Event": {"type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "device_id": {"type": "string"},
                    "type": {"type": "string"}, "priority": {"type": "integer", "minimum": 0, "maximum": 3},
                    "ts": {"type": "string", "format": "date-time"}, "seq": {"type": "integer"},
                    "data": {"type": "object"}, "stored_at": {"type": "string", "format": "date-time"}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/devices": {"get": {
                "summary": "All devices with liveness (online / offline / unknown) and last-seen time",
                "responses": {"200": {"description": "Devices", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"items": {"type": "array",
                                                               "items": {"$ref": "#/components/schemas/Device"}}}}}}},
                              "401": err("No or bad token")}}},
            "/api/v1/events": {"get": {
                "summary": "Events, newest first, paginated by cursor",
                "parameters": [
                    {"name": "device", "in": "query", "schema": {**_TEXT, "maxLength": 20}},
                    {"name": "type", "in": "query", "schema": {**_TEXT, "maxLength": 32}},
                    {"name": "since", "in": "query", "description": "unix seconds or ISO 8601",
                     "schema": _TEXT},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "cursor", "in": "query", "description": "next_cursor of the previous page",
                     "schema": _EVENT_ID},
                ],
                "responses": {"200": {"description": "A page of events", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                        "next_cursor": {"type": ["string", "null"]}}}}}},
                              "400": err("Bad filter"), "401": err("No or bad token")}}},
            "/api/v1/alarms/{alarm_id}/accept": {"post": {
                "summary": "Accept an alarm's ticket (one operator wins); the pillar's LED shows 'help coming'",
                "parameters": [{"name": "alarm_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                "responses": {"202": {"description": "Accepted; 'help coming' is queued for the device and sent "
                                                     "until the device acks it"},
                              "401": err("No or bad token"), "403": err("Role may not accept alarms"),
                              "404": err("No such alarm in your area"), "409": err("Already accepted")}}},
            "/api/v1/devices/{device_id}": {"get": {
                "summary": "One device inside the caller's area (404 outside it)",
                "parameters": [{"name": "device_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": f"^{DEVICE_ID_RE.pattern}$"}}],
                "responses": {"200": {"description": "The device"}, "404": err("No such device in your area")}}},
            "/api/v1/tickets": {
                "get": {"summary": "Tickets in the caller's area, newest first (filters: state, level, category, "
                                   "severity, grid_code, mine=1; cursor)",
                        "parameters": [
                            *({"name": n, "in": "query", "schema": {**_TEXT, "maxLength": 32}}
                              for n in ("state", "level", "category", "severity", "grid_code")),
                            {"name": "mine", "in": "query", "schema": {"enum": ["0", "1"]}},
                            {"name": "cursor", "in": "query", "description": "next_cursor of the previous page",
                             "schema": _ID},
                            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        ],
                        "responses": {"200": {"description": "A page of tickets"}, "401": err("No or bad token")}},
                "post": {"summary": "Report a matter (巡查上报) in a grid of the caller's area",
                         "requestBody": {"content": {"application/json": {"schema": {
                             "type": "object", "required": ["title", "grid_code"],
                             "properties": {"title": {"type": "string"}, "grid_code": {"type": "string"},
                                            "category": {"type": "string", "enum": list(CATEGORIES)},
                                            "description": {"type": "string"}}}}}},
                         "responses": {"201": {"description": "The new ticket, dispatched to its grid"},
                                       "400": err("Bad title or grid"), "403": err("Viewers cannot report")}}},
            "/api/v1/tickets/{ticket_id}": {"get": {
                "summary": "A ticket with its timeline (viewing it is audited)",
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": {"description": "Ticket and timeline"}, "404": err("No such ticket in your area")}}},
            "/api/v1/tickets/{ticket_id}/parties/{notification_id}/ack": {"post": {
                "summary": "A notified party (五方联动) acknowledges the ticket's notification; the first stands",
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": _ID},
                               {"name": "notification_id", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": {"description": "Acknowledged"}, "401": err("No or bad token"),
                              "403": err("Viewers cannot acknowledge"),
                              "404": err("No such ticket, or no such notification of your area on it")}}},
            "/api/v1/tickets/{ticket_id}/actions/{action}": {"post": {
                "summary": "dispatch, send_back, accept, start, progress (a note), resolve, verify, reject, archive, "
                           "transfer, merge, void, urge, supervise; JSON, or multipart with a JPEG `photo` for "
                           "progress and resolve",
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": _ID},
                               {"name": "action", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "reason": {"type": "string"}, "grid_code": {"type": "string"},
                    "merged_into": {"type": "integer"}}}}}},
                "responses": {"200": {"description": "The changed ticket"}, "403": err("Role may not make this change (viewers; an alarm's accept, send_back, transfer, merge "
                                          "and void are for operators and admins)"),
                              "404": err("No such ticket in your area"),
                              "409": err("Not allowed from this state, or someone else changed it first")}}},
            "/api/v1/tickets/{ticket_id}/photos/{photo_id}": {"get": {
                "summary": "A ticket's photo (JPEG; viewing it is audited)",
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": _ID},
                               {"name": "photo_id", "in": "path", "required": True, "schema": _ID}],
                "responses": {"200": {"description": "image/jpeg"}, "404": err("No such photo in your area")}}},
            "/api/v1/tickets/open311/requests.json": {"get": {
                "summary": "Tickets in the caller's area as Open311 GeoReport v2 requests (status open|closed)",
                "parameters": [{"name": "status", "in": "query", "schema": {"enum": ["open", "closed"]}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                           "maximum": 1000}}],
                "responses": {"200": {"description": "Service requests"}}}},
            "/api/v1/devices/{device_id}/live": {"post": {
                "summary": "Start a live view (视频巡查) of one of the device's cameras: the session id and its TURN "
                           "credentials (relay only); the view is recorded (视频调阅登记)",
                "parameters": [{"name": "device_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": f"^{DEVICE_ID_RE.pattern}$"}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["camera"], "properties": {
                        "camera": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"},
                        "page": {"enum": ["device", "ticket", "wall", "map", "api"]},
                        "quality": {"enum": ["main", "wall"]},
                        "reason": {"type": ["string", "null"], "maxLength": 200},
                        "ticket_id": {"type": ["integer", "null"], "minimum": 1, "maximum": 2147483647},
                        "talk": {"type": "boolean", "description": "talk-back: the offer carries the operator's "
                                                                   "microphone, the device answers with its own"}}}}}},
                "responses": {"201": {"description": "Session: id, ice_servers, ice_transport_policy, keepalive_s"},
                              "400": err("Bad camera, page, quality or reason (or a reason is required)"),
                              "401": err("No or bad token"), "403": err("Viewers may watch but not talk"),
                              "404": err("No such device or camera in your area"),
                              "409": err("The device's viewer limit is reached (names who is watching)"),
                              "503": err("Live video is not configured (live.turn_urls)")}}},
            "/api/v1/live/{session_id}/offer": {"post": {
                "summary": "The browser's offer (SDP with its candidates) in, the device's answer out (passed over "
                           "MQTT; waits up to live.answer_timeout_s)",
                "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _SESSION}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["sdp"], "properties": {"sdp": {"type": "string"}}}}}},
                "responses": {"200": {"description": "{type: answer, sdp}"}, "400": err("Not an SDP offer"),
                              "401": err("No or bad token"), "404": err("No such session of yours"),
                              "409": err("Session used or ended, or the device refused"),
                              "503": err("The hub is not connected to the broker"),
                              "504": err("The device did not answer (offline?)")}}},
            "/api/v1/live/{session_id}/keepalive": {"post": {
                "summary": "The view goes on (every keepalive_s; a view without one for live.keepalive_timeout_s "
                           "has ended)",
                "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _SESSION}],
                "responses": {"204": {"description": "Kept"}, "401": err("No or bad token"),
                              "404": err("No such session of yours"), "409": err("The session has ended")}}},
            "/api/v1/live/{session_id}/close": {"post": {
                "summary": "End the view (recorded with its duration; the device stops sending)",
                "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _SESSION}],
                "responses": {"204": {"description": "Ended"}, "401": err("No or bad token"),
                              "404": err("No such session of yours")}}},
            "/api/v1/events/{event_id}/clip": {
                "post": {"summary": "Ask the event's device for its clip (a durable command; the device uploads it)",
                         "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                         "responses": {"202": {"description": "The clip's state"}, "401": err("No or bad token"),
                                       "404": err("No such event in your area")}},
                "get": {"summary": "The clip (video/mp4; range requests) once it is at the hub; viewing it is audited",
                        "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                        "responses": {"200": {"description": "video/mp4", "content": {"video/mp4": {}}},
                                      "206": {"description": "A range of it", "content": {"video/mp4": {}}},
                                      "401": err("No or bad token"),
                                      "404": err("No such event in your area, or its clip is not at the hub"),
                                      "503": err("Clip uploads are not running in this hub process")}}},
            "/api/v1/events/{event_id}/clip/status": {"get": {
                "summary": "Where the clip is: none, requested, uploading (bytes), complete, refused (why), expired",
                "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                "responses": {"200": {"description": "The clip's state"}, "401": err("No or bad token"),
                              "404": err("No such event in your area")}}},
            "/api/v1/devices/{device_id}/clips/{event_id}": {
                "get": {"summary": "For the device (HTTP Basic: device id, MQTT password): how much of the clip the "
                                   "hub holds",
                        "parameters": [{"name": "device_id", "in": "path", "required": True,
                                        "schema": {"type": "string", "pattern": f"^{DEVICE_ID_RE.pattern}$"}},
                                       {"name": "event_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                        "responses": {"200": {"description": "{received, state, sha256}"},
                                      "401": err("Not the device's credential"),
                                      "404": err("No such event of this device"),
                                      "503": err("Clip uploads are not running in this hub process")}},
                "put": {"summary": "For the device: one piece of a clip (Content-Range: bytes START-END/TOTAL, "
                                   "X-Content-SHA256 of the whole file; pieces of at most 1 MiB, in order)",
                        "parameters": [{"name": "device_id", "in": "path", "required": True,
                                        "schema": {"type": "string", "pattern": f"^{DEVICE_ID_RE.pattern}$"}},
                                       {"name": "event_id", "in": "path", "required": True, "schema": _EVENT_ID}],
                        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                             "format": "binary"}}}},
                        "responses": {"200": {"description": "The clip's state after the piece"},
                                      "400": err("Bad Content-Range or X-Content-SHA256"),
                                      "401": err("Not the device's credential"),
                                      "404": err("No such event of this device"),
                                      "409": err("A gap: error.received says where to go on"),
                                      "413": err("The clip is larger than media.max_clip_mb"),
                                      "422": err("The whole file does not match its SHA-256, or is not an MP4"),
                                      "503": err("Clip uploads are not running in this hub process")}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                             "responses": {"200": {"description": "OpenAPI 3.1 document",
                                                                   "content": {"application/json": {}}}}}},
            "/healthz": {"get": {"summary": "Liveness of database and broker, ingest counters", "security": [],
                                 "responses": {"200": {"description": "Healthy"}, "503": {"description": "Degraded"}}}},
        },
    }
