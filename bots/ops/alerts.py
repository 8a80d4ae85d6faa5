"""Alerts that act: an Alertmanager webhook receiver that records every alert and halts bots.

Alertmanager POSTs a notification (webhook payload version 4) to `/alerts`. Every alert in it is
recorded in the store, idempotently per (fingerprint, firing episode, status). A FIRING alert labelled
`action: halt` queues a `stop` command, at most once per firing episode, for the bot in its `bot` label,
or for every bot ("*") when the alert has no `bot` label (a fleet-level alert). The command's author is
the alert, `alertmanager:<alertname>:<fingerprint>`, so the audit trail says which alert stopped a bot.

Answers: 200 with what was done; 400 naming each problem of a payload that is not a v4 notification;
401 without the bearer token when one is configured; 503 when the store is unreachable, so that
Alertmanager retries. Never a traceback. `GET /healthz` (alive) and `GET /readyz` (the store answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import signal
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bots.errors import FleetError
from bots.store import Ledger
from bots.store.alerts import AUTHOR_MAX_CHARS, AlertNotice
from bots.store.control import ALL_BOTS
from settings.fleet import validation_problems

if TYPE_CHECKING:  # aiohttp (~8 MB) loads when the receiver serves: `mmfleet bot run` imports this module
    from aiohttp import web

__all__ = [
    "ACTION_HALT",
    "DEFAULT_PORT",
    "AlertOutcome",
    "AlertReceiver",
    "Notification",
    "PayloadError",
    "WebhookAlert",
    "build_app",
    "command_author",
    "halt_target",
    "parse_notification",
    "parse_time_ns",
    "serve",
]

log = logging.getLogger("mmfleet.alerts")

ACTION_HALT = "halt"
DEFAULT_PORT = 9099
MAX_BODY_BYTES = 4 * 1024 * 1024
_RFC3339 = re.compile(
    r"^(?P<second>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})$"
)
_FINGERPRINT = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_NS_PER_S = 1_000_000_000
BOT_NAME_MAX_CHARS = 128  # the width of the store's bot columns


class PayloadError(FleetError):
    """The request body is not an Alertmanager v4 notification; `problems` say why, one per line."""

    def __init__(self, problems: Collection[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def parse_time_ns(value: str) -> int | None:
    """An RFC 3339 time (Alertmanager's, up to nanoseconds) as ns since the epoch; None for Go's zero
    time ("0001-01-01T00:00:00Z"), which Alertmanager sends as the end of an alert still firing."""
    match = _RFC3339.match(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    zone = match["zone"].upper().replace("Z", "+00:00")
    moment = datetime.fromisoformat(f"{match['second'].replace(' ', 'T')}{zone}")
    if moment.year <= 1:
        return None
    fraction = (match["fraction"] or "").ljust(9, "0")
    return int(moment.timestamp()) * _NS_PER_S + int(fraction)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class WebhookAlert(_Model):
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(alias="startsAt")
    ends_at: str | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time_ns(value)
        return value

    @field_validator("labels")
    @classmethod
    def _bot_label(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value.get("bot", "")) > BOT_NAME_MAX_CHARS:
            raise ValueError(f"the bot label is longer than {BOT_NAME_MAX_CHARS} characters")
        return value

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _FINGERPRINT.match(str(value)):
            raise ValueError("a fingerprint is 1 to 64 letters, digits, '-' or '_'")
        return value

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname") or "unnamed"

    def stable_fingerprint(self) -> str:
        """Alertmanager's fingerprint, or (when a sender left it out) a hash of the labels."""
        if self.fingerprint:
            return self.fingerprint
        digest = hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()
        return digest[:16]

    def notice(self, receiver: str | None) -> AlertNotice:
        starts = parse_time_ns(self.starts_at)
        if starts is None:  # the zero time: an alert with no start; key it on the epoch
            starts = 0
        return AlertNotice(
            fingerprint=self.stable_fingerprint(),
            status=self.status,
            starts_at_ns=starts,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            ends_at_ns=parse_time_ns(self.ends_at) if self.ends_at else None,
            generator_url=self.generator_url or None,
            receiver=receiver,
        )


class Notification(_Model):
    """Alertmanager's webhook payload, version 4."""

    version: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[WebhookAlert]

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"unsupported webhook payload version {value!r}: this receiver reads version 4")
        return value


def parse_notification(body: bytes) -> Notification:
    """The notification in `body`; PayloadError names every problem (JSON path: message)."""
    if not body.strip():
        raise PayloadError(["empty body: expected an Alertmanager webhook notification (JSON, version 4)"])
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError([f"body is not JSON: {exc}"]) from None
    if not isinstance(document, dict):
        raise PayloadError([f"body must be a JSON object, got {type(document).__name__}"])
    try:
        return Notification.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(validation_problems(exc)) from None


def halt_target(labels: Mapping[str, str]) -> str | None:
    """Whom a firing alert with these labels stops: its `bot`, every bot ("*") for a fleet-level alert,
    or nobody unless it is labelled `action: halt`."""
    if labels.get("action") != ACTION_HALT:
        return None
    return labels.get("bot") or ALL_BOTS


def command_author(alertname: str, fingerprint: str) -> str:
    """`alertmanager:<alertname>:<fingerprint>`, the alert name shortened to fit the author column."""
    room = AUTHOR_MAX_CHARS - len("alertmanager::") - len(fingerprint)
    return f"alertmanager:{alertname[:room]}:{fingerprint}"


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """What the receiver did with one alert."""

    alertname: str
    fingerprint: str
    status: str
    new: bool
    halt: str | None  # the bot (or "*") a stop command was queued for by this delivery
    command_id: int | None  # the stop command of this firing episode, new or earlier

    def as_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "new": self.new,
            "halt": self.halt,
            "command_id": self.command_id,
        }


class AlertReceiver:
    """Records notifications in `ledger` and queues the stops; `known_bots` only makes an alert for a
    bot outside the fleet file worth a warning (it is still obeyed: halting is the safe side)."""

    def __init__(self, ledger: Ledger, known_bots: Collection[str] = ()) -> None:
        self.ledger = ledger
        self.known_bots = frozenset(known_bots)

    def receive(self, notification: Notification) -> list[AlertOutcome]:
        """Record every alert; queue a stop for each new firing `action: halt` alert."""
        if notification.truncated_alerts:
            log.warning(
                "notification truncated by Alertmanager (max_alerts): some alerts were not sent",
                extra={
                    "fields": {"truncated": notification.truncated_alerts, "group": notification.group_key}
                },
            )
        receiver = notification.receiver[:256] or None
        return [self._one(alert, receiver) for alert in notification.alerts]

    def _one(self, alert: WebhookAlert, receiver: str | None) -> AlertOutcome:
        notice = alert.notice(receiver)
        target = halt_target(alert.labels) if alert.status == "firing" else None
        author = command_author(alert.alertname, notice.fingerprint)
        payload = {
            "alertname": alert.alertname,
            "fingerprint": notice.fingerprint,
            "starts_at": alert.starts_at,
            "summary": alert.annotations.get("summary", ""),
            "generator_url": alert.generator_url or "",
        }
        record, new = self.ledger.record_alert(
            notice, halt=target, author=author if target else None, payload=payload
        )
        fields = {
            "alertname": alert.alertname,
            "fingerprint": notice.fingerprint,
            "status": alert.status,
            "bot": notice.bot,
            "new": new,
        }
        if new and target is not None:
            if target != ALL_BOTS and self.known_bots and target not in self.known_bots:
                log.warning("halting a bot outside the fleet file", extra={"fields": {**fields}})
            log.warning(
                "alert halts", extra={"fields": {**fields, "target": target, "command": record.command_id}}
            )
        else:
            log.info("alert recorded" if new else "alert already recorded", extra={"fields": fields})
        return AlertOutcome(
            alertname=alert.alertname,
            fingerprint=notice.fingerprint,
            status=alert.status,
            new=new,
            halt=target if new else None,
            command_id=record.command_id,
        )

    def ready(self) -> None:
        """Raise unless the store answers a query."""
        with self.ledger.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def build_app(receiver: AlertReceiver, *, token: str | None = None) -> web.Application:
    """The receiver's HTTP app; with `token`, POST /alerts wants `Authorization: Bearer <token>`."""
    from aiohttp import web  # noqa: PLC0415 - only a receiver serves

    def _problem(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def post_alerts(request: web.Request) -> web.Response:
        if token and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
        ):
            return _problem(401, "missing or wrong bearer token")
        try:
            notification = parse_notification(await request.read())
        except PayloadError as exc:
            log.warning("bad alert payload", extra={"fields": {"problems": list(exc.problems)}})
            return web.json_response(
                {"error": "invalid Alertmanager payload", "problems": exc.problems}, status=400
            )
        try:
            outcomes = await asyncio.to_thread(receiver.receive, notification)
        except (SQLAlchemyError, FleetError) as exc:
            log.error("store unavailable", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:500]}})
            return _problem(503, f"the store is unavailable ({type(exc).__name__}); retry later")
        return web.json_response(
            {
                "received": len(outcomes),
                "recorded": sum(o.new for o in outcomes),
                "halted": [o.halt for o in outcomes if o.halt],
                "alerts": [o.as_json() for o in outcomes],
            }
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(receiver.ready)
        except (SQLAlchemyError, FleetError) as exc:
            return web.Response(status=503, text=f"not ready: store unavailable ({type(exc).__name__})\n")
        return web.Response(text="ready\n")

    @web.middleware
    async def no_tracebacks(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # a bug: log it whole, answer one line
            log.exception("receiver error", extra={"fields": {"path": request.path}})
            return _problem(500, "internal error in the alert receiver; see its log")
        return response

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[no_tracebacks])
    app.add_routes(
        [web.post("/alerts", post_alerts), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )
    return app


async def serve(
    receiver: AlertReceiver,
    host: str,
    port: int,
    *,
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set, or SIGINT/SIGTERM when no event is given."""
    from aiohttp import web  # noqa: PLC0415 - only a receiver serves

    runner = web.AppRunner(build_app(receiver, token=token), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        log.info("alert receiver listening", extra={"fields": {"url": f"http://{host}:{port}/alerts"}})
        await stop.wait()
    finally:
        await runner.cleanup()
