"""The load generator, run as its own process so that it does not share an interpreter (GIL,
event loop) with the supervisor; one uvloop event loop.

It speaks the widget API with aiohttp rather than through `devkit.widget_client` (httpx and
websockets, which the tests use): the generator shares the two cores with the system it measures,
and an httpx request cost it several times the CPU of an aiohttp one. Each simulated customer has
its own HTTP connection, as each browser tab has.

    python -m bench.loadgen turns   --gateway URL --out FILE [--tps --seconds --warmup ...]
    python -m bench.loadgen sockets --gateway URL --out FILE --pid GATEWAY_PID [--count --step ...]

It writes raw observations as JSON; bench.report turns them into figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

from bench.harness import raise_fd_limit, rss_mb
from devkit.stack import REPO
from servicekit.heap import freeze_startup_heap

TENANT_FILE = REPO / "services" / "gateway" / "tenants" / "lucine-di-natale.yaml"
QUESTIONS_FILE = REPO / "services" / "ai-responder" / "eval" / "questions.yaml"
FALLBACK_QUESTIONS = {
    "it": ["Quanto costa il biglietto?", "A che ora aprite?", "Dove si parcheggia?", "C'è una navetta?"],
    "en": ["How much is a ticket?", "What time do you open?", "Where can I park?", "Is there a shuttle?"],
}


def widget_key() -> str:
    return str(yaml.safe_load(TENANT_FILE.read_text())["widget_key"])


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
    is shed and counted. Latency runs from just before the POST to the AI reply frame."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.key = widget_key()
        self.questions = questions()
        self.tickets: asyncio.Queue[float] = asyncio.Queue()
        self.max_backlog = max(1, int(args.tps))
        self.turns: list[tuple[float, float, float, str]] = []  # scheduled, started, finished, outcome
        self.shed: list[float] = []  # scheduled times of shed tickets
        self.errors: Counter[str] = Counter()
        self.handoffs: Counter[str] = Counter()  # question -> handoff offers it got
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.stopping = False
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
                status = await widget.post(text)
                if status != 202:
                    outcome = f"http_{status}"
                else:
                    frame = await widget.receive_until(is_ai_message)
                    if offers_handoff(frame["message"]):
                        self.handoffs[text] += 1
                        keep = False
        except TimeoutError:
            outcome = "timeout"
        except Exception as error:
            outcome = type(error).__name__
        finished = loop.time()
        self.turns.append((scheduled, started, finished, outcome))
        return keep and outcome == "ok"

    async def schedule(self, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        issued = 0
        while (now := loop.time()) < end:
            due = int((now - start) * self.args.tps) - issued
            for i in range(due):
                scheduled = start + (issued + i + 1) / self.args.tps  # when it fell due
                if self.tickets.qsize() >= self.max_backlog:
                    self.shed.append(scheduled)
                else:
                    self.tickets.put_nowait(scheduled)
            issued += max(due, 0)
            await asyncio.sleep(0.005)

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        wall = time.time() - loop.time()  # loop time + wall = wall-clock time
        tasks = [asyncio.create_task(self.customer(n)) for n in range(self.args.customers)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), timeout=180)
        print(f"[loadgen] {self.ready}/{self.args.customers} customers connected", flush=True)
        freeze_startup_heap()  # the generator's own collector pauses would be counted as latency
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
        self.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "origin_wall": start + wall,
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


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("scenario", choices=["turns", "sockets"])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tps", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--pid", type=int, default=0, help="the gateway process whose RSS is read")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--create-rate", type=float, default=400)
    parser.add_argument("--hold", type=float, default=10)
    parser.add_argument("--final-ping", type=int, default=1000)
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    raise_fd_limit()
    scenario = run_turns if args.scenario == "turns" else run_sockets
    result = uvloop.run(scenario(args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
