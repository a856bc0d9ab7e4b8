"""An SMTP server on loopback that keeps every mail it is given (for the tests)."""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class SmtpSink:
    mails: list[Mail] = field(default_factory=list)

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                sender, recipients = "", []
                self.reply("220 sink ready")
                while line := self.rfile.readline():
                    verb = line[:4].decode().upper()
                    if verb in ("HELO", "EHLO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender = _address(line)
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        recipients.append(_address(line))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        body = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk[1:] if chunk.startswith(b"..") else chunk
                        sink.mails.append(Mail(sender, recipients, message_from_bytes(body)))
                        sender, recipients = "", []
                        self.reply("250 kept")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # RSET, NOOP, ...
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _address(line: bytes) -> str:
    text = line.decode().split(":", 1)[1]
    return text.strip().split()[0].strip("<>")
