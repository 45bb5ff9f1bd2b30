"""The fake Runware's admin surface (`/_fake/...`), for a test or benchmark driving it from another process.

`GET /_fake/requests[?task_type=]` lists the tasks received, `GET /_fake/stats` the counters of `FakeRunware.stats`,
`POST /_fake/fail` queues a fault (`{"fault", "times", "task_type", "status", "code", "retry_after", "delay"}`),
`POST /_fake/config` sets `latency`, `cost_override`, `task_errors_as_envelope` or `reject_duplicate_uuids`, and
`POST /_fake/reset` forgets everything but the key, latency and prices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from fakes.runware.faults import Fault

if TYPE_CHECKING:
    from fakes.runware.server import FakeRunware

__all__ = ["add_admin_routes"]


def add_admin_routes(app: web.Application, fake: FakeRunware) -> None:
    """Serve `fake`'s admin surface from `app`."""
    admin = _Admin(fake)
    app.router.add_get("/_fake/requests", admin.requests)
    app.router.add_get("/_fake/stats", admin.stats)
    app.router.add_post("/_fake/fail", admin.fail)
    app.router.add_post("/_fake/config", admin.config)
    app.router.add_post("/_fake/reset", admin.reset)


class _Admin:
    def __init__(self, fake: FakeRunware) -> None:
        self.fake = fake

    async def requests(self, request: web.Request) -> web.Response:
        task_type = request.query.get("task_type")
        return web.json_response(self.fake.tasks_submitted(task_type))

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.fake.stats())

    async def fail(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            raw_fault = str(body["fault"])
            fault = Fault[raw_fault.upper()] if raw_fault.upper() in Fault.__members__ else Fault(raw_fault.lower())
            self.fake.fail_next(
                fault,
                times=int(body.get("times", 1)),
                task_type=body.get("task_type"),
                status=body.get("status"),
                code=body.get("code"),
                retry_after=body.get("retry_after"),
                delay=body.get("delay"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "pending": len(self.fake.pending_faults)})

    async def config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "latency" in body:
                self.fake.latency = float(body["latency"])
            if "cost_override" in body:
                override = body["cost_override"]
                self.fake.cost_override = None if override is None else float(override)
            if "task_errors_as_envelope" in body:
                self.fake.task_errors_as_envelope = bool(body["task_errors_as_envelope"])
            if "reject_duplicate_uuids" in body:
                self.fake.reject_duplicate_uuids = bool(body["reject_duplicate_uuids"])
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response(
            {
                "ok": True,
                "latency": self.fake.latency,
                "cost_override": self.fake.cost_override,
                "task_errors_as_envelope": self.fake.task_errors_as_envelope,
                "reject_duplicate_uuids": self.fake.reject_duplicate_uuids,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.fake.reset()
        return web.json_response({"ok": True})
