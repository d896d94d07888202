"""The load generator, run as its own process so that it does not share an interpreter (GIL,
event loop) with the supervisor; one uvloop event loop, and one HTTP connection per simulated
customer, as each browser tab has its own. (One client pooling all of them costs O(connections)
per request in httpx's pool, which made the load generator the bottleneck.)

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
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvloop
import websockets
import yaml
from websockets.protocol import State

from bench.harness import raise_fd_limit, rss_mb
from servicekit.stack import REPO
from servicekit.widget_client import Stream, WidgetConversation, start_conversation

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

    async def open_customer(
        self, client: httpx.AsyncClient, rng: random.Random
    ) -> tuple[WidgetConversation, Stream, str]:
        locale = "it" if rng.random() < 0.7 else "en"
        async with self.gate:
            conversation = await start_conversation(client, self.args.gateway, self.key, locale)
            stream = Stream(conversation.stream_url())
            await stream.__aenter__()
            try:  # the status frame ends the history: the socket is live
                await stream.receive_until(lambda f: f.get("type") == "status", timeout=self.args.timeout)
            except BaseException:
                await stream.__aexit__()
                raise
        stream.frames.clear()
        return conversation, stream, locale

    async def customer(self, number: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=self.args.gateway, timeout=self.args.timeout, limits=limits) as client:
            await self.chat(client, random.Random(number))

    async def chat(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        counted = False
        while not self.stopping:
            try:
                conversation, stream, locale = await self.open_customer(client, rng)
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
                        keep = await self.turn(conversation, stream, scheduled, rng.choice(self.questions[locale]))
                    finally:
                        self.in_flight -= 1
                        if not self.in_flight:
                            self.idle.set()
                    if not keep:
                        break  # a fresh conversation replaces this one
            finally:
                with contextlib.suppress(Exception):
                    await stream.__aexit__()

    async def turn(self, conversation: WidgetConversation, stream: Stream, scheduled: float, text: str) -> bool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = "ok"
        keep = True
        try:
            async with asyncio.timeout(self.args.timeout):
                response = await conversation.post(text)
                if response.status_code != 202:
                    outcome = f"http_{response.status_code}"
                else:
                    frame = await stream.receive_until(is_ai_message, timeout=self.args.timeout)
                    if offers_handoff(frame["message"]):
                        self.handoffs[text] += 1
                        keep = False
        except TimeoutError:
            outcome = "timeout"
        except Exception as error:
            outcome = type(error).__name__
        finished = loop.time()
        stream.frames.clear()
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

    def __init__(self, args: argparse.Namespace, client: httpx.AsyncClient) -> None:
        self.args = args
        self.client = client
        self.open: list[Any] = []
        self.errors: Counter[str] = Counter()
        self.extensions: Counter[str] = Counter()

    async def create(self) -> list[str]:
        """The conversations, at a bounded rate; returns their stream URLs."""
        key, urls = widget_key(), []
        gate = asyncio.Semaphore(32)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(number: int) -> None:
            await asyncio.sleep(max(0.0, start + number / self.args.create_rate - loop.time()))
            async with gate:
                try:
                    conversation = await start_conversation(self.client, self.args.gateway, key, "it")
                    urls.append(conversation.stream_url())
                except Exception as error:
                    self.errors[f"create:{type(error).__name__}"] += 1

        await asyncio.gather(*(one(n) for n in range(self.args.count)))
        return urls

    async def connect(self, url: str) -> None:
        try:
            # Like a browser, offers permessage-deflate (unless --no-deflate); sends no keepalive pings.
            socket = await websockets.connect(
                url,
                open_timeout=30,
                ping_interval=None,
                close_timeout=2,
                compression=None if self.args.no_deflate else "deflate",
            )
            async with asyncio.timeout(30):
                while json.loads(await socket.recv()).get("type") != "status":
                    pass
            self.extensions[socket.response.headers.get("sec-websocket-extensions", "none")] += 1
            self.open.append(socket)
        except Exception as error:
            self.errors[f"connect:{type(error).__name__}"] += 1

    async def ping(self, sample: int) -> tuple[int, int]:
        """Pings `sample` random open sockets; returns (sampled, answered with pong)."""
        chosen = random.sample(self.open, min(sample, len(self.open)))
        gate = asyncio.Semaphore(200)

        async def one(socket: Any) -> bool:
            async with gate:
                try:
                    await socket.send('{"type":"ping"}')
                    async with asyncio.timeout(10):
                        while json.loads(await socket.recv()).get("type") != "pong":
                            pass
                    return True
                except Exception:
                    return False

        answers = await asyncio.gather(*(one(s) for s in chosen))
        return len(chosen), sum(answers)

    def step(self, started: float, ping: tuple[int, int]) -> dict[str, Any]:
        return {
            "t": round(time.monotonic() - started, 2),
            "sockets": sum(1 for s in self.open if s.state is State.OPEN),
            "rss_mb": round(rss_mb(self.args.pid), 1),
            "pinged": ping[0],
            "pongs": ping[1],
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        urls = await self.create()
        created_in = time.monotonic() - started
        print(f"[loadgen] {len(urls)} conversations created in {created_in:.0f}s", flush=True)
        await asyncio.sleep(2)
        steps = [self.step(started, (0, 0))]
        gate = asyncio.Semaphore(100)

        async def connect(url: str) -> None:
            async with gate:
                await self.connect(url)

        for first in range(0, len(urls), self.args.step):
            await asyncio.gather(*(connect(url) for url in urls[first : first + self.args.step]))
            await asyncio.sleep(2)
            steps.append(self.step(started, await self.ping(50)))
            print(f"[loadgen] {steps[-1]}", flush=True)
        await asyncio.sleep(self.args.hold)  # idle: anything that drops idle sockets shows now
        final = self.step(started, await self.ping(self.args.final_ping))
        still_open = final["sockets"]
        for socket in self.open:
            with contextlib.suppress(Exception):
                await socket.close()
        return {
            "steps": steps,
            "final": final,
            "max_open": max(still_open, *(s["sockets"] for s in steps)),
            "created": len(urls),
            "creation_seconds": round(created_in, 1),
            "errors": dict(self.errors),
            "extensions": dict(self.extensions),
        }


async def run_sockets(args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=args.gateway, timeout=30, limits=limits) as client:
        return await Sockets(args, client).run()


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
