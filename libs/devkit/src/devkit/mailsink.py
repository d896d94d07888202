"""A local SMTP server that keeps every mail it receives as an `.eml` file, for developers and tests.

    python -m devkit.mailsink --port 1025 --dir .local/mail [--host 127.0.0.1] [--delay 0]

Nothing is relayed anywhere. Each accepted mail is one file named by the time it arrived and a
random suffix (never by its Message-ID: a mail sent twice must show as two files). A file is
written under a temporary name and renamed, so a reader never sees half a mail. `--delay` makes the
server slow: it waits that long after the mail's data before accepting it (a client that goes
away meanwhile has sent nothing: aiosmtpd drops the unfinished handling with the connection).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _KeepAsFile:
    """The aiosmtpd handler: writes each mail's content to `directory`."""

    def __init__(self, directory: Path, delay_seconds: float) -> None:
        self.directory = directory
        self.delay_seconds = delay_seconds

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        partial = self.directory / f".{name}.part"
        partial.write_bytes(content)
        partial.rename(self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


class MailSink:
    """The SMTP server on a thread of its own (aiosmtpd's `Controller`), so that it answers while
    the caller's event loop is busy, or blocked:

        with MailSink(directory, port=free_port()) as sink:
            ...
            mails = sink.mails()
    """

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 1025, delay_seconds: float = 0.0):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.host, self.port = host, port
        self.handler = _KeepAsFile(directory, delay_seconds)
        # Mails up to 10 MB; a line length check would refuse nothing a client of ours sends.
        self._controller = Controller(self.handler, hostname=host, port=port, data_size_limit=10 * 1024 * 1024)

    @property
    def delay_seconds(self) -> float:
        return self.handler.delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, seconds: float) -> None:
        self.handler.delay_seconds = seconds

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def mails(self) -> list[EmailMessage]:
        """Every mail received so far, oldest first."""
        return read_mails(self.directory)


def read_mails(directory: Path) -> list[EmailMessage]:
    """The mails of a sink's folder, oldest first, parsed with the modern email policy."""
    mails: list[EmailMessage] = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mails.append(message)
    return mails


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devkit.mailsink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".local/mail"), help="folder the .eml files go to")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before accepting each mail")
    args = parser.parse_args(argv)
    sink = MailSink(args.dir, host=args.host, port=args.port, delay_seconds=args.delay).start()
    print(f"mail sink on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    stopped = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stopped.set)
        await stopped.wait()

    try:
        asyncio.run(wait())
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
