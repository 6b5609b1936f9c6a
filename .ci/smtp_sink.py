"""A test SMTP receiver for tests/channel_email.rs: never a real mail server.

Accepts every message on HOST:PORT and stores it in MAILDIR/new as
NAME.eml (the exact DATA bytes, nothing added, so tests can compare them with
what the channel rendered) plus NAME.json (the envelope: MAIL FROM and the
RCPT TO addresses). Files are written under MAILDIR/tmp and renamed, so a
reader never sees half a message, and the .json lands before the .eml.

Recipients steer the reply, so tests can provoke failures on purpose:
  reject-…@…  550 (permanent: unknown user)
  defer-…@…   450 (transient: try again later)

Usage: smtp_sink.py HOST PORT MAILDIR   (runs until SIGTERM/SIGINT)
"""

import json
import os
import signal
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir
        self.count = 0
        self.lock = threading.Lock()
        for sub in ("tmp", "new"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject-"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("defer-"):
            return f"450 4.2.0 <{address}>: Recipient address deferred: try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = f"{time.time_ns()}.{os.getpid()}.{self.count}"
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        self._store(name + ".json", json.dumps(meta).encode())
        self._store(name + ".eml", envelope.original_content)
        return f"250 2.0.0 OK queued as {name}"

    def _store(self, filename, data):
        tmp = os.path.join(self.maildir, "tmp", filename)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.maildir, "new", filename))


def main():
    host, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(Sink(maildir), hostname=host, port=port)
    controller.start()
    print(f"smtp_sink: listening on {host}:{port}, storing in {maildir}", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
