"""The load generator, run as its own process so that it does not share an interpreter (GIL,
event loop) with the supervisor; one uvloop event loop.

It speaks the widget API with aiohttp rather than through `devkit.widget_client` (httpx and
websockets, which the tests use): the generator shares the two cores with the system it measures,
and an httpx request cost it several times the CPU of an aiohttp one. Each simulated customer has
its own HTTP connection, as each browser tab has.

    python -m bench.loadgen turns   --gateway URL --out FILE [--tps --seconds --warmup ...]
    python -m bench.loadgen sockets --gateway URL --out FILE --pid GATEWAY_PID [--count --step ...]
    python -m bench.loadgen operators --gateway URL --routing URL --out FILE --tenant-file F --operators-file F
                                      [--operators --handoffs --seconds --warmup --timeout ...]

It writes raw observations as JSON; bench.report turns them into figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

from bench.capacity import CapacitySearch, step_result
from bench.harness import raise_fd_limit, rss_mb
from devkit.stack import REPO
from servicekit.heap import freeze_startup_heap

TENANT_FILE = REPO / "services" / "gateway" / "demo" / "lucine-di-natale.yaml"  # the seeded demo tenant
QUESTIONS_FILE = REPO / "services" / "ai-responder" / "eval" / "questions.yaml"
FALLBACK_QUESTIONS = {
    "it": ["Quanto costa il biglietto?", "A che ora aprite?", "Dove si parcheggia?", "C'è una navetta?"],
    "en": ["How much is a ticket?", "What time do you open?", "Where can I park?", "Is there a shuttle?"],
}


def widget_key() -> str:
    return str(yaml.safe_load(TENANT_FILE.read_text())["tenant"]["widget_key"])


def questions() -> dict[str, list[str]]:
    """What real visitors ask (the assistant's evaluation set): the in-KB questions that must not
    offer a person, so a conversation stays with the assistant turn after turn."""
    try:
        entries = yaml.safe_load(QUESTIONS_FILE.read_text())["questions"]
    except (OSError, KeyError, TypeError):
        return FALLBACK_QUESTIONS
    found: dict[str, list[str]] = {"it": [], "en": []}
    for entry in entries:
        if entry.get("expect") and not entry.get("handoff") and not entry.get("history") and entry["lang"] in found:
            found[entry["lang"]].append(entry["q"])
    return found if all(found.values()) else FALLBACK_QUESTIONS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def is_ai_message(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message" and frame["message"]["sender"] == "ai"


def offers_handoff(message: dict[str, Any]) -> bool:
    return any(action.get("type") == "request_operator" for action in message.get("smart_actions") or [])


def http_session(gateway: str, connections: int, timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        gateway, connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=timeout)
    )


class Widget:
    """One simulated widget: a conversation and its WebSocket, read all the time as a browser
    does (so the server's pings are answered and a close is noticed at once)."""

    def __init__(self, http: aiohttp.ClientSession, key: str) -> None:
        self.http, self.key = http, key
        self.conversation_id = self.token = ""
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()  # None: the socket closed
        self.reader: asyncio.Task[None] | None = None

    async def start(self, locale: str) -> None:
        async with self.http.post(
            "/v1/conversations", json={"locale": locale}, headers={"X-Widget-Key": self.key}
        ) as response:
            response.raise_for_status()
            body = await response.json()
        self.conversation_id, self.token = body["conversation_id"], body["customer_token"]

    async def connect(self, deflate: bool = False) -> aiohttp.ClientWebSocketResponse:
        """Opens the stream and reads the history up to the status frame: the socket is live."""
        url = f"/v1/conversations/{self.conversation_id}/stream?token={self.token}&after=0"
        # Like a browser: answers the server's pings, sends no keepalive pings of its own.
        self.socket = await self.http.ws_connect(url, compress=15 if deflate else 0, autoping=True, heartbeat=None)
        self.reader = asyncio.create_task(self._read(self.socket))
        await self.receive_until(lambda frame: frame.get("type") == "status")
        return self.socket

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in socket:  # ends when the socket closes
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.frames.put_nowait(json.loads(message.data))
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            self.frames.put_nowait(None)

    @property
    def is_open(self) -> bool:
        return self.socket is not None and not self.socket.closed

    async def post(self, text: str) -> int:
        async with self.http.post(
            f"/v1/conversations/{self.conversation_id}/messages",
            json={"text": text, "client_message_id": uuid.uuid4().hex},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            await response.read()
            return response.status

    async def send(self, text: str) -> None:
        """Sends a message on the stream, as the widget does while its socket is open; the
        gateway answers with an `accepted` or an `error` frame."""
        assert self.socket is not None
        message = {"type": "message", "client_message_id": uuid.uuid4().hex, "text": text}
        await self.socket.send_str(json.dumps(message))

    async def receive_until(self, predicate: Any) -> dict[str, Any]:
        while True:
            frame = await self.frames.get()
            if frame is None:
                self.frames.put_nowait(None)  # stays closed for the next reader
                raise ConnectionError("socket closed")
            if predicate(frame):
                return frame

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await self.reader


class Turns:
    """Open loop: tickets are issued at the target rate whatever the replies do; idle customers
    take them (one turn in flight per customer). A ticket that finds a backlog of a full second
    is shed and counted. Latency runs from just before the message is sent (on the socket, or
    POSTed) to the AI reply frame."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.key = widget_key()
        self.questions = questions()
        self.tickets: asyncio.Queue[float] = asyncio.Queue()
        self.turns: list[tuple[float, float, float, str]] = []  # scheduled, started, finished, outcome
        self.shed: list[float] = []  # scheduled times of shed tickets
        self.errors: Counter[str] = Counter()
        self.handoffs: Counter[str] = Counter()  # question -> handoff offers it got
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.stopping = False
        self.quiet_since = 0.0  # loop time the services were last found quiet from (`wait_quiet`)
        self.gate = asyncio.Semaphore(50)  # conversations being set up at once

    async def open_customer(self, http: aiohttp.ClientSession, rng: random.Random) -> tuple[Widget, str]:
        locale = "it" if rng.random() < 0.7 else "en"
        widget = Widget(http, self.key)
        try:
            async with self.gate, asyncio.timeout(self.args.timeout):
                await widget.start(locale)
                await widget.connect()
        except BaseException:
            await widget.close()
            raise
        return widget, locale

    async def customer(self, number: int) -> None:
        # Its own connections, as a browser tab has: one for HTTP, one for the WebSocket.
        async with http_session(self.args.gateway, 2, self.args.timeout) as http:
            await self.chat(http, random.Random(number))

    async def chat(self, http: aiohttp.ClientSession, rng: random.Random) -> None:
        counted = False
        while not self.stopping:
            try:
                widget, locale = await self.open_customer(http, rng)
            except Exception as error:
                self.errors[f"connect:{type(error).__name__}"] += 1
                await asyncio.sleep(1)
                continue
            if not counted:
                self.ready, counted = self.ready + 1, True
                if self.ready == self.args.customers:
                    self.all_ready.set()
            try:
                while not self.stopping:
                    scheduled = await self.tickets.get()
                    self.in_flight += 1
                    try:
                        keep = await self.turn(widget, scheduled, rng.choice(self.questions[locale]))
                    finally:
                        self.in_flight -= 1
                        if not self.in_flight:
                            self.idle.set()
                    if not keep:
                        break  # a fresh conversation replaces this one
            finally:
                with contextlib.suppress(Exception):
                    await widget.close()

    async def turn(self, widget: Widget, scheduled: float, text: str) -> bool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = "ok"
        keep = True
        try:
            async with asyncio.timeout(self.args.timeout):
                if self.args.messages_over == "http":
                    status = await widget.post(text)
                    if status != 202:
                        outcome = f"http_{status}"
                else:
                    await widget.send(text)
                if outcome == "ok":
                    frame = await widget.receive_until(lambda frame: is_ai_message(frame) or frame["type"] == "error")
                    if frame["type"] == "error":
                        outcome = f"http_{frame['status']}"
                    elif offers_handoff(frame["message"]):
                        self.handoffs[text] += 1
                        keep = False
        except TimeoutError:
            outcome = "timeout"
        except Exception as error:
            outcome = type(error).__name__
        finished = loop.time()
        self.turns.append((scheduled, started, finished, outcome))
        return keep and outcome == "ok"

    async def schedule(self, start: float, end: float, tps: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        tps = tps or self.args.tps
        max_backlog = max(1, int(tps))  # a full second of backlog
        issued = 0
        while (now := loop.time()) < end:
            due = int((now - start) * tps) - issued
            for i in range(due):
                scheduled = start + (issued + i + 1) / tps  # when it fell due
                if self.tickets.qsize() >= max_backlog:
                    self.shed.append(scheduled)
                else:
                    self.tickets.put_nowait(scheduled)
            issued += max(due, 0)
            await asyncio.sleep(0.005)

    async def connect_all(self) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self.customer(n)) for n in range(self.args.customers)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), timeout=180)
        print(f"[loadgen] {self.ready}/{self.args.customers} customers connected", flush=True)
        freeze_startup_heap()  # the generator's own collector pauses would be counted as latency
        return tasks

    async def drain(self) -> int:
        """Drops the tickets not yet taken and lets the turns in flight finish; returns how many
        tickets were dropped."""
        unstarted = self.tickets.qsize()
        while not self.tickets.empty():
            self.tickets.get_nowait()
        if self.in_flight:
            self.idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), timeout=self.args.timeout + 2)
        return unstarted

    async def stop(self, tasks: list[asyncio.Task[None]]) -> None:
        self.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def services_cpu(self) -> float:
        """CPU seconds used so far by the services (`--quiet-pids`)."""
        total = 0
        for pid in self.args.quiet_pids:
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/stat").read_text()
                fields = raw[raw.rindex(")") + 2 :].split()
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    async def wait_quiet(self, timeout: float) -> float:
        """Waits (at most `timeout` seconds) until the services use no more than `--quiet-percent`
        of one core for two half-seconds in a row: the backlog of what came before is worked off.
        Returns the seconds waited; `quiet_since` is when the quiet began."""
        loop = asyncio.get_running_loop()
        start = then = loop.time()
        used, calm = self.services_cpu(), 0
        while self.args.quiet_pids and calm < 2 and loop.time() - start < timeout:
            await asyncio.sleep(0.5)
            now, cpu = loop.time(), self.services_cpu()
            calm = calm + 1 if 100 * (cpu - used) / (now - then) <= self.args.quiet_percent else 0
            then, used = now, cpu
        self.quiet_since = loop.time() - 0.5 * calm  # the start of the calm half-seconds, if any
        return loop.time() - start

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        wall = time.time() - loop.time()  # loop time + wall = wall-clock time
        tasks = await self.connect_all()
        start = loop.time()
        window = (start + self.args.warmup, start + self.args.warmup + self.args.seconds)
        cpu: dict[str, float] = {}
        loop.call_at(window[0], lambda: cpu.update(start=cpu_seconds()))
        loop.call_at(window[1], lambda: cpu.update(end=cpu_seconds()))
        await self.schedule(start, window[1])
        unstarted = self.tickets.qsize()
        if self.in_flight:  # let the turns in flight finish
            self.idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), timeout=self.args.timeout + 2)
        await self.stop(tasks)
        # With `--quiet-pids`: until the services have worked off what the turns left them (the
        # benchmark's CPU per turn, drained, runs from the first turn to then).
        await self.wait_quiet(self.args.quiet_timeout)
        return {
            "origin_wall": start + wall,
            "quiet_at": self.quiet_since - start,
            "window": [window[0] - start, window[1] - start],
            "turns": [(s - start, b - start, f - start, o) for s, b, f, o in self.turns],
            "shed": [s - start for s in self.shed],
            "unstarted_at_end": unstarted,
            "errors": dict(self.errors),
            "handoffs": dict(self.handoffs.most_common()),
            "customers_connected": self.ready,
            "loadgen_cpu_seconds": cpu.get("end", cpu_seconds()) - cpu.get("start", 0.0),
        }


async def run_turns(args: argparse.Namespace) -> dict[str, Any]:
    return await Turns(args).run()


class Capacity(Turns):
    """The turns scenario in short steps of offered rate, chosen by `bench.capacity.CapacitySearch`
    as the steps' results come in (the same customers throughout), then one step at a fraction of
    the capacity found (for the CPU per turn below saturation). Each step: a short warm-up at its
    rate, the measured window, then the backlog dropped and the turns in flight finished, and a
    pause for the system to settle."""

    origin = 0.0  # loop time the steps' windows are counted from

    async def step(self, rate: float, seconds: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        window = (start + self.args.warmup, start + self.args.warmup + seconds)
        cpu: dict[str, float] = {}
        loop.call_at(window[0], lambda: cpu.update(start=cpu_seconds()))
        await self.schedule(start, window[1], rate)
        cpu["end"] = cpu_seconds()
        dropped = await self.drain()
        result = step_result(self.turns, self.shed, window, rate)
        passed = result.passes(self.args.p99_limit)
        print(
            f"[loadgen] {rate:.0f}/s offered: {result.achieved_tps:.1f}/s, p99 {result.p99_ms} ms, "
            f"{result.failed} failed, {result.shed} shed: {'pass' if passed else 'FAIL'}",
            flush=True,
        )
        await asyncio.sleep(self.args.settle)
        settled = await self.wait_quiet(self.args.quiet_timeout / 3)
        return {
            "rate": rate,
            "window": [window[0] - self.origin, window[1] - self.origin],
            "result": result,
            "dropped_at_end": dropped,
            "settle_seconds": round(self.args.settle + settled, 1),
            "loadgen_cpu_seconds": cpu["end"] - cpu.get("start", cpu["end"]),
        }

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        wall = time.time() - loop.time()
        tasks = await self.connect_all()
        waited = await self.wait_quiet(self.args.quiet_timeout)  # the scenario before may have left a backlog
        print(f"[loadgen] services quiet after {waited:.1f}s", flush=True)
        self.origin = loop.time()
        a = self.args
        search = CapacitySearch(a.start_tps, a.step_tps, a.max_tps, a.bisections, a.p99_limit)
        steps = []
        try:
            while (rate := search.next_rate()) is not None:
                step = await self.step(rate, a.seconds)
                search.record(step["result"])
                steps.append(step)
            light = None
            if search.passed and a.light_fraction > 0:
                step = await self.step(round(a.light_fraction * search.passed, 1), a.light_seconds)
                light = {**step, "result": step["result"].as_dict(a.p99_limit)}
        finally:
            await self.stop(tasks)
        return {
            "origin_wall": self.origin + wall,
            "search": search.summary(),
            "steps": [{**step, "result": step["result"].as_dict(a.p99_limit)} for step in steps],
            "light": light,
            "errors": dict(self.errors),
            "customers_connected": self.ready,
        }


async def run_capacity(args: argparse.Namespace) -> dict[str, Any]:
    return await Capacity(args).run()


class Sockets:
    """Idle widget sockets on one gateway process, opened in steps; the gateway's RSS after each."""

    def __init__(self, args: argparse.Namespace, http: aiohttp.ClientSession) -> None:
        self.args = args
        self.http = http
        self.open: list[Widget] = []
        self.errors: Counter[str] = Counter()
        self.extensions: Counter[str] = Counter()

    async def create(self) -> list[Widget]:
        """The conversations, at a bounded rate."""
        key, widgets = widget_key(), []
        gate = asyncio.Semaphore(32)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(number: int) -> None:
            await asyncio.sleep(max(0.0, start + number / self.args.create_rate - loop.time()))
            async with gate:
                try:
                    widget = Widget(self.http, key)
                    await widget.start("it")
                    widgets.append(widget)
                except Exception as error:
                    self.errors[f"create:{type(error).__name__}"] += 1

        await asyncio.gather(*(one(n) for n in range(self.args.count)))
        return widgets

    async def connect(self, widget: Widget) -> None:
        try:
            # Like a browser, offers permessage-deflate (unless --no-deflate).
            async with asyncio.timeout(30):
                socket = await widget.connect(deflate=not self.args.no_deflate)
            self.extensions["permessage-deflate" if socket.compress else "none"] += 1
            self.open.append(widget)
        except Exception as error:
            self.errors[f"connect:{type(error).__name__}"] += 1

    async def ping(self, sample: int) -> tuple[int, int]:
        """Pings `sample` random open sockets; returns (sampled, answered with pong)."""
        chosen = random.sample(self.open, min(sample, len(self.open)))
        gate = asyncio.Semaphore(200)

        async def one(widget: Widget) -> bool:
            assert widget.socket is not None
            async with gate:
                try:
                    await widget.socket.send_str('{"type":"ping"}')
                    async with asyncio.timeout(10):
                        await widget.receive_until(lambda frame: frame.get("type") == "pong")
                    return True
                except Exception:
                    return False

        answers = await asyncio.gather(*(one(w) for w in chosen))
        return len(chosen), sum(answers)

    def step(self, started: float, ping: tuple[int, int]) -> dict[str, Any]:
        return {
            "t": round(time.monotonic() - started, 2),
            "sockets": sum(1 for w in self.open if w.is_open),
            "rss_mb": round(rss_mb(self.args.pid), 1),
            "pinged": ping[0],
            "pongs": ping[1],
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        widgets = await self.create()
        created_in = time.monotonic() - started
        print(f"[loadgen] {len(widgets)} conversations created in {created_in:.0f}s", flush=True)
        await asyncio.sleep(2)
        steps = [self.step(started, (0, 0))]
        gate = asyncio.Semaphore(100)

        async def connect(widget: Widget) -> None:
            async with gate:
                await self.connect(widget)

        for first in range(0, len(widgets), self.args.step):
            await asyncio.gather(*(connect(w) for w in widgets[first : first + self.args.step]))
            await asyncio.sleep(2)
            steps.append(self.step(started, await self.ping(50)))
            print(f"[loadgen] {steps[-1]}", flush=True)
        await asyncio.sleep(self.args.hold)  # idle: anything that drops idle sockets shows now
        final = self.step(started, await self.ping(self.args.final_ping))
        still_open = final["sockets"]
        for widget in self.open:
            with contextlib.suppress(Exception):
                await widget.close()
        return {
            "steps": steps,
            "final": final,
            "max_open": max(still_open, *(s["sockets"] for s in steps)),
            "created": len(widgets),
            "creation_seconds": round(created_in, 1),
            "errors": dict(self.errors),
            "extensions": dict(self.extensions),
        }


async def run_sockets(args: argparse.Namespace) -> dict[str, Any]:
    # Unlimited: every open WebSocket holds one of the session's connections.
    async with http_session(args.gateway, 0, 30) as http:
        return await Sockets(args, http).run()


class Handoff:
    """One conversation handed off: the customer's YES, the offer on an operator's socket, the
    take, the conversation on the operator's socket as theirs, and the operator's first message
    on the customer's socket. Times are the event loop's clock."""

    __slots__ = (
        "conversation_id",
        "delivered",
        "measured",
        "message_at",
        "offer_at",
        "offered",
        "operator_id",
        "outcome",
        "post_at",
        "post_status",
        "scheduled",
        "take_at",
        "take_done_at",
        "take_status",
        "widget",
        "writable",
        "writable_at",
        "yes_at",
        "yes_done_at",
        "yes_status",
    )

    def __init__(self, widget: Widget) -> None:
        self.widget = widget
        self.conversation_id = widget.conversation_id
        self.offered: asyncio.Event = asyncio.Event()
        self.writable: asyncio.Event = asyncio.Event()  # WITH_OPERATOR on the operator's socket
        self.delivered: asyncio.Event = asyncio.Event()  # the operator's message on the customer's
        self.operator_id = ""
        self.measured = False  # in the measured window (not the warm-up)
        self.outcome = "pending"
        self.scheduled = self.yes_at = self.yes_done_at = self.offer_at = self.take_at = -1.0
        self.take_done_at = self.writable_at = self.post_at = self.message_at = -1.0
        self.yes_status = self.take_status = self.post_status = 0

    def row(self, origin: float) -> dict[str, Any]:
        def at(value: float) -> float | None:
            return None if value < 0 else round(value - origin, 4)

        return {
            "conversation_id": self.conversation_id,
            "operator_id": self.operator_id,
            "outcome": self.outcome,
            "measured": self.measured,
            "scheduled": at(self.scheduled),
            "yes": at(self.yes_at),
            "yes_done": at(self.yes_done_at),
            "yes_status": self.yes_status,
            "offer": at(self.offer_at),
            "take": at(self.take_at),
            "take_done": at(self.take_done_at),
            "take_status": self.take_status,
            "writable": at(self.writable_at),
            "post": at(self.post_at),
            "post_status": self.post_status,
            "message": at(self.message_at),
        }


# Routing's tenant-wide frames (every assignment, presence and queue change goes to every operator
# of the tenant) are skipped without parsing them: with 200 operators they are most of the traffic.
OFFER_PREFIX = '{"type":"offer"'
FEED_PREFIX = '{"conversation_id":'
# A handoff is measured until it is done however late (the report counts those over --timeout as
# timeouts): an offer left unanswered would expire and set its operator away, which is the
# generator's doing, not the system's. Only after this long does a side give up.
GIVE_UP_SECONDS = 60.0
GAVE_UP: dict[str, Any] = {"type": "bench-gave-up"}  # put in a customer's frames when its operator's side failed


def from_operator(frame: dict[str, Any]) -> bool:
    return frame is GAVE_UP or (frame.get("type") == "message" and frame["message"]["sender"] == "operator")


class Operator:
    """One simulated operator: logged in, its stream open and read all the time, online. It takes
    each conversation offered to it at once and, as soon as its socket shows the conversation as
    theirs (WITH_OPERATOR: before that the conversation service refuses an operator's message),
    writes to the customer."""

    def __init__(self, scenario: Handoffs, account: dict[str, Any]) -> None:
        self.scenario = scenario
        self.username, self.password = str(account["username"]), str(account["password"])
        self.operator_id = str(account["operator_id"])
        self.http = http_session(scenario.args.gateway, 2, GIVE_UP_SECONDS)
        self.token = ""
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.frames = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def log_in(self) -> None:
        body = {"username": self.username, "password": self.password}
        async with self.http.post("/v1/operators/login", json=body) as response:
            response.raise_for_status()
            self.token = (await response.json())["access_token"]

    async def connect(self) -> None:
        self.socket = await self.http.ws_connect(
            f"/v1/operators/stream?access_token={self.token}", autoping=True, heartbeat=None
        )
        self.reader = asyncio.create_task(self._read(self.socket))
        async with asyncio.timeout(self.scenario.args.timeout):
            await self.ready.wait()

    async def go_online(self) -> None:
        async with self.http.put("/v1/operators/me/status", json={"status": "online"}, headers=self.auth) as response:
            await response.read()
            if response.status not in (200, 202):
                raise RuntimeError(f"status online answered {response.status}")

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                if message.type == aiohttp.WSMsgType.ERROR:
                    break
                continue
            self.frames += 1
            data: str = message.data
            if data.startswith(OFFER_PREFIX):
                frame = json.loads(data)
                if frame.get("event") == "offer_made" and frame["data"]["operator_id"] == self.operator_id:
                    self.scenario.on_offer(self, frame["conversation_id"], loop.time())
            elif data.startswith(FEED_PREFIX):
                frame = json.loads(data)
                if frame.get("type") == "status" and frame.get("status") == "WITH_OPERATOR":
                    self.scenario.on_writable(frame["conversation_id"], loop.time())
            elif not self.ready.is_set() and json.loads(data).get("type") == "ready":
                self.ready.set()
        self.scenario.errors["operator_socket_closed"] += 1

    async def work(self, handoff: Handoff) -> None:
        """Takes the offered conversation and writes the first message."""
        loop = asyncio.get_running_loop()
        cid = handoff.conversation_id
        step = "take"
        try:
            async with asyncio.timeout(GIVE_UP_SECONDS):
                handoff.take_at = loop.time()
                async with self.http.post(f"/v1/conversations/{cid}/take", headers=self.auth) as response:
                    await response.read()
                    handoff.take_status = response.status
                handoff.take_done_at = loop.time()
                if response.status != 200:
                    handoff.outcome = f"take_{response.status}"
                    return
                step = "assignment"
                await handoff.writable.wait()
                step = "message_post"
                handoff.post_at = loop.time()
                body = {"text": "Buongiorno, sono qui per aiutarla.", "client_message_id": uuid.uuid4().hex}
                async with self.http.post(
                    f"/v1/conversations/{cid}/operator-messages", json=body, headers=self.auth
                ) as response:
                    await response.read()
                    handoff.post_status = response.status
                if response.status != 202:
                    handoff.outcome = f"message_{response.status}"
                    return
                step = "message_delivery"
                await handoff.delivered.wait()
                handoff.outcome = "ok" if handoff.message_at >= 0 else "customer_socket_closed"
        except TimeoutError:
            handoff.outcome = f"timeout_{step}"
        except Exception as error:
            handoff.outcome = f"operator_{type(error).__name__}"
        finally:
            if handoff.outcome != "ok":  # the customer stops waiting for a message that will not come
                handoff.widget.frames.put_nowait(GAVE_UP)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader
        await self.http.close()


class Handoffs:
    """Operators online on their streams; customers, each with a conversation and its socket,
    choose YES (`request_operator`) at a steady rate: the handoffs spread evenly over the window
    (after a short warm-up at the same rate). Measured: YES (just before the POST) → the offer frame
    on the offered operator's socket, and take (just before the POST) → the operator's first
    message on the customer's socket."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        tenant = yaml.safe_load(args.tenant_file.read_text())
        self.key = str(tenant["widget_key"])
        self.tenant_id = str(tenant["tenant_id"])
        self.accounts: list[dict[str, Any]] = yaml.safe_load(args.operators_file.read_text())["operators"]
        self.by_conversation: dict[str, Handoff] = {}
        self.errors: Counter[str] = Counter()
        self.repeat_offers = 0
        self.stray_offers = 0
        self.work: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- what the sockets report

    def on_offer(self, operator: Operator, conversation_id: str, at: float) -> None:
        handoff = self.by_conversation.get(conversation_id)
        if handoff is None:
            self.stray_offers += 1
            return
        if handoff.offered.is_set():
            self.repeat_offers += 1  # an offer that expired or was withdrawn went to another operator
            return
        handoff.offer_at, handoff.operator_id = at, operator.operator_id
        handoff.offered.set()
        if handoff.outcome != "pending":
            return  # too late: the customer's side counted a timeout (routing offers it again later)
        task = asyncio.create_task(operator.work(handoff))
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    def on_writable(self, conversation_id: str, at: float) -> None:
        handoff = self.by_conversation.get(conversation_id)
        if handoff is not None and not handoff.writable.is_set():
            handoff.writable_at = at
            handoff.writable.set()

    # ------------------------------------------------------------------------- setting up

    async def operators_online(self, operators: list[Operator]) -> int:
        """Logs in, connects and sets online every operator; returns how many routing has online."""
        gate = asyncio.Semaphore(8)  # a login is an argon2 verification on the gateway

        async def one(operator: Operator) -> bool:
            async with gate:
                try:
                    async with asyncio.timeout(60):
                        await operator.log_in()
                        await operator.connect()
                        await operator.go_online()
                    return True
                except Exception as error:
                    self.errors[f"operator_setup:{type(error).__name__}"] += 1
                    return False

        connected = sum(await asyncio.gather(*(one(o) for o in operators)))
        print(f"[loadgen] {connected}/{len(operators)} operators connected and online", flush=True)
        # Routing learns the presences from the gateway's commands: wait until it has them all.
        online = 0
        async with http_session(self.args.routing, 1, 10) as routing:
            for _ in range(240):
                async with routing.get("/internal/operators", params={"tenant_id": self.tenant_id}) as response:
                    views = await response.json()
                online = sum(1 for view in views if view["presence"] == "online")
                if online >= connected:
                    break
                await asyncio.sleep(0.5)
        print(f"[loadgen] routing has {online} operators online", flush=True)
        return online

    async def customers(self, http: aiohttp.ClientSession, count: int) -> list[Handoff]:
        """The conversations and their open sockets, at a bounded rate, before the clock starts."""
        handoffs: list[Handoff] = []
        gate = asyncio.Semaphore(32)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(number: int) -> None:
            await asyncio.sleep(max(0.0, start + number / self.args.create_rate - loop.time()))
            widget = Widget(http, self.key)
            try:
                async with gate, asyncio.timeout(30):
                    await widget.start("it")
                    await widget.connect()
                handoffs.append(Handoff(widget))
            except Exception as error:
                self.errors[f"customer_setup:{type(error).__name__}"] += 1
                await widget.close()

        await asyncio.gather(*(one(n) for n in range(count)))
        return handoffs

    # ---------------------------------------------------------------------------- the run

    async def customer(self, handoff: Handoff) -> None:
        """YES, then waits for the offer and for the operator's message on its socket."""
        loop = asyncio.get_running_loop()
        widget = handoff.widget
        try:
            async with asyncio.timeout(GIVE_UP_SECONDS):
                handoff.yes_at = loop.time()
                async with widget.http.post(
                    f"/v1/conversations/{handoff.conversation_id}/actions",
                    json={"action": "request_operator"},
                    headers={"Authorization": f"Bearer {widget.token}"},
                ) as response:
                    await response.read()
                    handoff.yes_status = response.status
                handoff.yes_done_at = loop.time()
                if response.status != 202:
                    handoff.outcome = f"yes_{response.status}"
                    return
                await handoff.offered.wait()
        except TimeoutError:
            handoff.outcome = "timeout_offer"
            return
        except Exception as error:
            handoff.outcome = f"customer_{type(error).__name__}"
            return
        # From here the operator's side sets the outcome; the customer reads its socket.
        try:
            async with asyncio.timeout(GIVE_UP_SECONDS):
                frame = await widget.receive_until(from_operator)
            if frame is not GAVE_UP:
                handoff.message_at = loop.time()
        except Exception as error:
            self.errors[f"customer_socket:{type(error).__name__}"] += 1
        finally:
            handoff.delivered.set()

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        wall = time.time() - loop.time()
        operators = [Operator(self, account) for account in self.accounts[: self.args.operators]]
        rate = self.args.handoffs / self.args.seconds
        warmup_count = round(rate * self.args.warmup)
        total = warmup_count + self.args.handoffs
        async with http_session(self.args.gateway, 0, GIVE_UP_SECONDS) as http:
            try:
                online = await self.operators_online(operators)
                handoffs = await self.customers(http, total)
                print(f"[loadgen] {len(handoffs)}/{total} customers connected", flush=True)
                for handoff in handoffs:
                    self.by_conversation[handoff.conversation_id] = handoff
                freeze_startup_heap()  # the generator's own collector pauses would be counted as latency
                await asyncio.sleep(2)  # the setup's last events settle
                start = loop.time()
                window = (start + self.args.warmup, start + self.args.warmup + self.args.seconds)
                cpu: dict[str, float] = {}
                loop.call_at(window[0], lambda: cpu.update(start=cpu_seconds()))
                loop.call_at(window[1], lambda: cpu.update(end=cpu_seconds()))
                customers = []
                for number, handoff in enumerate(handoffs):
                    handoff.scheduled = start + number / rate
                    handoff.measured = number >= warmup_count
                    await asyncio.sleep(max(0.0, handoff.scheduled - loop.time()))
                    customers.append(asyncio.create_task(self.customer(handoff)))
                await asyncio.gather(*customers)
                if self.work:
                    await asyncio.wait(list(self.work), timeout=GIVE_UP_SECONDS)
                await asyncio.sleep(max(0.0, window[1] - loop.time()))
                frames = sum(o.frames for o in operators)
            finally:
                for handoff in self.by_conversation.values():
                    with contextlib.suppress(Exception):
                        await handoff.widget.close()
                await asyncio.gather(*(o.close() for o in operators), return_exceptions=True)
        return {
            "origin_wall": start + wall,
            "window": [window[0] - start, window[1] - start],
            "operators": len(operators),
            "operators_online": online,
            "customers_connected": len(handoffs),
            "handoffs": [h.row(start) for h in handoffs],
            "repeat_offers": self.repeat_offers,
            "stray_offers": self.stray_offers,
            "operator_frames": frames,
            "errors": dict(self.errors),
            "loadgen_cpu_seconds": cpu.get("end", cpu_seconds()) - cpu.get("start", 0.0),
        }


async def run_handoffs(args: argparse.Namespace) -> dict[str, Any]:
    return await Handoffs(args).run()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tps", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument(
        "--messages-over", choices=("socket", "http"), default="socket", help="turns: how customers send a message"
    )
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--pid", type=int, default=0, help="the gateway process whose RSS is read")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--create-rate", type=float, default=400)
    parser.add_argument("--hold", type=float, default=10)
    parser.add_argument("--final-ping", type=int, default=1000)
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    parser.add_argument("--routing", help="the routing service (operators: to see them online)")
    parser.add_argument("--tenant-file", type=Path, help="operators: the benchmark tenant's seed file")
    parser.add_argument("--operators-file", type=Path, help="operators: its operators' seed file")
    parser.add_argument("--operators", type=int, default=200)
    parser.add_argument("--handoffs", type=int, default=2000)
    parser.add_argument("--start-tps", type=float, default=250, help="capacity: the first offered rate")
    parser.add_argument("--step-tps", type=float, default=250, help="capacity: the rise between steps")
    parser.add_argument("--max-tps", type=float, default=3000, help="capacity: the highest rate tried")
    parser.add_argument("--bisections", type=int, default=2, help="capacity: steps after the first failure")
    parser.add_argument("--p99-limit", type=float, default=250, help="capacity: a step's p99 limit (ms)")
    parser.add_argument("--settle", type=float, default=2, help="capacity: pause after a step")
    # turns and capacity: the services, their CPU when quiet (% of a core), the longest wait for quiet (s)
    parser.add_argument("--quiet-pids", type=lambda v: [int(p) for p in v.split(",") if p], default=[])
    parser.add_argument("--quiet-percent", type=float, default=30)
    parser.add_argument("--quiet-timeout", type=float, default=60)
    parser.add_argument("--light-fraction", type=float, default=0.6, help="capacity: the last step, x capacity")
    parser.add_argument("--light-seconds", type=float, default=20, help="capacity: its measured window")
    return parser.parse_args(argv)


SCENARIOS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "turns": run_turns,
    "capacity": run_capacity,
    "sockets": run_sockets,
    "operators": run_handoffs,
}


def main() -> None:
    args = parse()
    raise_fd_limit()
    result = uvloop.run(SCENARIOS[args.scenario](args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
