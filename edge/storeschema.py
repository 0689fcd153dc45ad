"""The edge store's schema: its migrations, applied in order by ``edge.store.Store``."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xueliang-edge")



@migrations()
def m001_events_and_outbox(db: Database) -> None:
    db["events"].create({
        "id": str, "seq": int, "type": str, "priority": int, "ts": float, "data": str,
        "created_at": float, "synced_at": float,
    }, pk="id", not_null={"seq", "type", "priority", "ts", "data", "created_at"})
    db["events"].create_index(["seq"], unique=True)
    db["events"].create_index(["type", "ts"])
    db["outbox"].create({"seq": int, "event_id": str, "priority": int, "payload": bytes},
                        pk="seq", not_null={"event_id", "priority", "payload"})
    db["outbox"].create_index(["priority", "seq"])
    db["outbox"].create_index(["event_id"], unique=True)


@migrations()
def m002_media(db: Database) -> None:
    """Files that belong to events: snapshots, thumbnails, face crops, clips."""
    db["media"].create({"id": int, "event_id": str, "kind": str, "path": str, "bytes": int, "created_at": float},
                       pk="id", not_null={"event_id", "kind", "path", "bytes", "created_at"})
    db["media"].create_index(["kind", "created_at"])
    db["media"].create_index(["event_id"])
    db["media"].create_index(["path"], unique=True)


@migrations()
def m003_users(db: Database) -> None:
    """People who may open the device's LAN page (hashed passwords)."""
    db["users"].create({"name": str, "password_hash": str, "role": str, "created_at": float}, pk="name",
                       not_null={"password_hash", "role", "created_at"})


@migrations()
def m004_alarms_and_commands(db: Database) -> None:
    """Each alarm's state (pressed → sent → received → help_coming → closed), kept by
    ``edge.alarms``; and the ids of hub commands already applied, so each is applied once."""
    db["alarms"].create({"id": str, "state": str, "ts": float, "presses": int, "updated_at": float,
                         "by": str, "via": str}, pk="id", not_null={"state", "ts", "presses", "updated_at"})
    db["alarms"].create_index(["ts"])
    db["applied_commands"].create({"id": str, "command": str, "applied_at": float}, pk="id",
                                  not_null={"command", "applied_at"})
    # alarms stored before this version: received if the hub has them, help coming if acknowledged
    db.execute("INSERT INTO alarms (id, state, ts, presses, updated_at) SELECT id, CASE "
               "WHEN id IN (SELECT json_extract(data, '$.alarm_id') FROM events WHERE type = 'alarm_ack') "
               "THEN 'help_coming' WHEN synced_at IS NOT NULL THEN 'received' ELSE 'pressed' END, ts, "
               "coalesce(json_extract(data, '$.presses'), 1), created_at FROM events WHERE type = 'alarm'")


@migrations()
def m005_uploads(db: Database) -> None:
    """Clips the hub asked for (an ``upload_clip`` command), or an alarm's, to upload."""
    db["uploads"].create({"event_id": str, "state": str, "reason": str, "created_at": float, "updated_at": float},
                         pk="event_id", not_null={"state", "created_at", "updated_at"})
