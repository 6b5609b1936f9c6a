#!/usr/bin/python3
"""The delivery fault soak: the release binary for minutes, under faults, then
a count of what was lost or sent twice.

Run it (after `cargo build --release --locked`) with the system Python, which
has Debian's python3-aiosmtpd (`.ci/start-smtp.sh` installs it):

    /usr/bin/python3 tests/soak/soak.py --bin target/release/bi-agent --seconds 300

Everything runs on 127.0.0.1 with ports the OS picks; nothing else is needed.
Every random choice comes from `--seed` (default 1): the same seed gives the
same world, fault and kill schedules (what the daemon does in between still
depends on timing).

The world. A SQLite warehouse holds 30 alert keys (`k(key, v)`); the rule
`flip` fires per key while `v > 100` (`group = false`), with one `notify`
action to the role `ops` = Slack incoming webhook + a CRM webhook endpoint +
an e-mail address, and a message naming the key and the agent's episode
number ("k07 episode 3 fired"). The driver flips every key between firing
(v = 200) and quiet (v = 0), each phase lasting 4-10 s; the last 5 keys fire
for 130-200 s instead, longer than the first retry backoff, so that later
cycles' retries of failed targets are actually sent. A phase ends only once
the agent has taken notice of it (its alert state, written ahead before
anything is sent, shows it; after 60 s the phase ends anyway and that is a
failure), so every episode spans a cycle and the agent's episode numbers are
the driver's: 1, 2, 3... per key. That is the ground truth.

The faults. Each HTTP receiver (Slack, CRM) switches every 8-20 s among
`healthy` (200; twice as likely), `500`, `429` (Retry-After: 2), `slow`
(answers 200 after 3 s, beyond the agent's 2 s timeout: the message arrived
but the agent could not know), `stopped` (the receiver is gone: listener
closed, connection refused, requests it was answering cut) and `dropped` (the
request is read, then the connection is closed with no answer, as when a
receiver crashes or a proxy cuts the request: the agent cannot know either).
The SMTP receiver (aiosmtpd) is stopped and started a few times, and one time
in four instead takes messages but closes the connection before its final
250. The daemon is killed with SIGKILL at random moments, at least 20 times
in 5 minutes, and restarted at once: some just after a receiver got a request
(a send in flight), some in the first cycle of a fresh process (which carries
what the killed one left); twice it gets SIGTERM instead. At the end every
key goes quiet, every receiver is healthy for 20 s, and the daemon gets
SIGTERM.

What a receiver *accepted* (answered 2xx, or read in `slow`/`dropped` mode)
is logged with the key and episode parsed from the body (and the CRM's
`Idempotency-Key`). The checks, against the memory database's effect log:

 1. no silent loss: every episode that fired for >= 3 s reached each of the
    three targets, or its effect is `failed`, `unknown` or `retrying` (what
    `bi-agent status` shows); an effect `sent` that no receiver got is a loss
    too;
 2. no duplicate: a receiver accepting one (key, episode) twice is a
    duplicate unless its effect is `unknown`; for the CRM, requests with the
    same Idempotency-Key count once (and that key must be its effect's);
 3. `PRAGMA integrity_check` is ok; `bi-agent status` exits 0 and its
    "Being retried" / "May or may not have arrived" counts match the table;
    no effect is left `dispatching`; the agent's episode counters are the
    driver's, and no message or effect names an episode that never was;
 4. no panic in any daemon log; every line a JSON object without a key twice;
    every process logged "Daemon started"; each SIGTERM ends with exit 0 and
    "Daemon stopped";

then the figures (kills, episodes, deliveries per target, unknowns, retries,
duplicates, losses). On failure the work directory (config, every daemon's
log, memory, soak-result.json with the ground truth, what every receiver
accepted and the fault timeline) is kept and the exit code is 1.
"""

import argparse
import email
import email.policy
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import struct
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit(
        "soak: aiosmtpd is missing: run with /usr/bin/python3 and install "
        "python3-aiosmtpd (.ci/start-smtp.sh does)"
    )

# aiosmtpd and asyncio complain about connections the soak cuts on purpose.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

KEYS = 30
FIRING_V, QUIET_V = 200.0, 0.0
PHASE_S = (4.0, 10.0)  # each phase lasts this long at least (then until noticed)
# The last LONG_KEYS keys fire for this long instead: longer than the first
# retry backoff (30 s), so later cycles' retries of failed targets are sent.
# (In-cycle attempts count towards that backoff: after a first cycle's 3
# attempts the next try is 120 s later; an open circuit breaker waits 60 s.)
LONG_KEYS, LONG_FIRING_S = 5, (130.0, 200.0)
NOTICE_GRACE_S = 60.0  # a phase the agent has not noticed this long after its end is flipped anyway (and reported)
MIN_EPISODE_S = 3.0  # shorter episodes (only the final ones can be) are not held to the loss check
MODE_S = (8.0, 20.0)  # each HTTP receiver's mode lasts this long
# healthy twice as likely. `dropped`: the request is read (the message
# arrived), then the connection is closed with no answer, as when a receiver
# crashes or a proxy cuts the request: like `slow`, the agent cannot know.
MODES = ["healthy", "healthy", "500", "429", "slow", "stopped", "dropped"]
SLOW_S = 3.0  # beyond the agent's 2 s timeout
# The SMTP receiver: up, then down (stopped) or, one time in four, `dropping`
# (it takes the message, then closes the connection instead of the final 250).
SMTP_UP_S, SMTP_DOWN_S, SMTP_DROP_CHANCE = (20.0, 45.0), (5.0, 12.0), 0.25
KILL_EVERY_S = (4.0, 17.0)  # between a restart and the next kill
# How a kill is timed: just after a receiver got a request (a send in flight),
# in the first cycle of a fresh process (the one that carries what the killed
# one left), or anywhere.
KILL_TIMING = [("in_flight", 0.45), ("first_cycle", 0.2), ("anywhere", 0.35)]
SIGTERMS = 2
SETTLE_S = 20.0  # at the end: all quiet, all healthy, this long
START_TIMEOUT_S = 60.0  # for "Daemon started"

# Info events counted in the figures: is each path exercised?
NOTABLE = [
    "Carrying an action a failed cycle planned but did not finish",
    "Delivered on a retry",
    "Action delivered to every target after retries",
    "Delivery not retried any more",
    "Found cycles left running by a previous process; marked interrupted",
]
TARGETS = {"slack": "slack:#ops", "crm": "webhook:crm", "email": "email:ops@example.test"}
ACTION_PREFIX = "flip/notify/key="
MESSAGE_RE = re.compile(r"\b(k\d{2}) episode (\d+) fired\b")
SLACK_PATH = "/slack/hook/T0SOAK/B0SOAK/s0akw3bh00k"
CRM_PATH = "/crm"

CONFIG = """\
# The delivery soak's config (written by tests/soak/soak.py).
[agent]
name = "soak"
interval = "1s"
max_actions_per_cycle = 100
shutdown_grace = "8s"

[memory]
path = "{memory}"

[log]
level = "info"
format = "json"

[sources.wh]
kind = "sql"
url = "sqlite://{warehouse}?mode=ro"
sql = "SELECT key, v FROM k"
timeout = "5s"

[channels.slack]
kind = "slack"
webhook_url = "http://127.0.0.1:{slack_port}{slack_path}"
timeout = "2s"
per_second = 100.0

[channels.email]
kind = "email"
smtp_url = "smtp://127.0.0.1:{smtp_port}?tls=none"
from = "bi-agent@example.test"
timeout = "2s"

[endpoints.crm]
url = "http://127.0.0.1:{crm_port}{crm_path}"
timeout = "2s"

[roles]
ops = ["slack:#ops", "webhook:crm", "email:ops@example.test"]

[guardrails]
max_notifications_per_hour = 100000
repeat_interval = "1d"
group_wait = "0s"
retry_for = "10m"

[[rules]]
name = "flip"
source = "wh"
when = "v > 100.0"
group = false
  [[rules.actions]]
  id = "notify"
  kind = "notify"
  to = ["ops"]
  subject = "{{{{ key }}}} fired"
  message = "{{{{ key }}}} episode {{{{ alert.episode }}}} fired"
"""


# -- Small tools ---------------------------------------------------------------


class Clock:
    def __init__(self):
        self.start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.start


CLOCK = Clock()


def log(text):
    print(f"[soak {CLOCK.elapsed():6.1f}s] {text}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SoakFailure(Exception):
    """The run cannot go on."""


def wait_until(what, condition, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SoakFailure(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)


def parse_message(text):
    """The distinct (key, episode) pairs a message body names."""
    return sorted({(k, int(e)) for k, e in MESSAGE_RE.findall(text or "")})


class Hits:
    """Counts requests arriving at any receiver, so a kill can follow one."""

    def __init__(self):
        self.cond = threading.Condition()
        self.n = 0

    def hit(self):
        with self.cond:
            self.n += 1
            self.cond.notify_all()

    def wait_next(self, timeout):
        with self.cond:
            start = self.n
            return self.cond.wait_for(lambda: self.n > start, timeout)


HITS = Hits()


# -- Receivers -----------------------------------------------------------------


class HttpReceiver:
    """One fake HTTP receiver (Slack incoming webhook or the CRM) whose mode
    the soak switches; `stopped` closes its listener."""

    def __init__(self, name, path, port):
        self.name, self.path, self.port = name, path, port
        self.lock = threading.Lock()
        self.mode = "healthy"
        self.server = None
        self.accepted = []  # {t, pairs, mode, idem}
        self.requests = {}  # mode -> count
        self.seen = set()  # every (key, episode) any request named, whatever the mode
        self.inflight = set()  # connections whose request is being answered
        self.bad = []  # requests that were not understood

    def start(self):
        for attempt in range(50):
            try:
                server = Quiet(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        server.daemon_threads = True
        server.receiver = self
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.server = server

    def stop(self):
        """The receiver goes away: no listener, and the requests it was
        answering are cut (a stopped server holds no connections)."""
        server, self.server = self.server, None
        if server:
            server.shutdown()
            server.server_close()
        with self.lock:
            cut = list(self.inflight)
            self.inflight.clear()
        for conn in cut:
            cut_connection(conn)

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
        if mode == "stopped" and self.server:
            self.stop()
        elif mode != "stopped" and not self.server:
            self.start()

    def handle(self, handler, body):
        with self.lock:
            mode = self.mode
            self.requests[mode] = self.requests.get(mode, 0) + 1
        HITS.hit()
        if handler.path != self.path:
            self.bad.append(f"POST {handler.path}")
            return handler.reply(404, b"not found")
        if mode == "stopped":  # accepted just before the listener closed: never read
            handler.close_connection = True
            return cut_connection(handler.connection)
        text = body.decode("utf-8", "replace")
        pairs = parse_message(text)
        with self.lock:
            self.seen.update(pairs)
        if mode in ("healthy", "slow", "dropped"):
            if len(pairs) != 1:
                self.bad.append(f"{self.name}: body names {pairs}: {text[:300]}")
            with self.lock:
                self.accepted.append(
                    {
                        "t": round(CLOCK.elapsed(), 3),
                        "pairs": pairs,
                        "mode": mode,
                        "idem": handler.headers.get("Idempotency-Key"),
                    }
                )
            if mode == "dropped":
                handler.close_connection = True
                return cut_connection(handler.connection)
            with self.lock:
                self.inflight.add(handler.connection)
            try:
                if mode == "slow":
                    time.sleep(SLOW_S)
                with self.lock:
                    if handler.connection not in self.inflight:
                        return  # cut by a stop meanwhile
                return handler.reply(200, b"ok" if self.name == "slack" else b'{"id": "task"}')
            finally:
                with self.lock:
                    self.inflight.discard(handler.connection)
        if mode == "429":
            return handler.reply(429, b"rate_limited", {"Retry-After": "2"})
        return handler.reply(500, b"internal_error")


def cut_connection(conn):
    """Closes a connection with no answer (reset, not an orderly end)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a cut connection is expected here
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status, data, headers=None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            # One request per connection: a stopped receiver then has no
            # idle keep-alive connection left that could still take one.
            self.send_header("Connection", "close")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the agent gave up (timeout) or was killed
        self.close_connection = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.receiver.handle(self, body)


class SmtpReceiver:
    """aiosmtpd, stopped and started a few times."""

    def __init__(self, port):
        self.port = port
        self.controller = None
        self.lock = threading.Lock()
        self.accepted = []  # {t, pairs, to}
        self.bad = []
        self.seen = set()  # (key, episode) of every message that reached DATA
        self.dropping = False  # take the message, then close without the final reply
        self.dropped = 0

    def start(self):
        if self.controller:
            return
        for attempt in range(50):
            try:
                c = Controller(SmtpHandler(self), hostname="127.0.0.1", port=self.port)
                c.start()
                self.controller = c
                return
            except (OSError, RuntimeError):
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def stop(self):
        c, self.controller = self.controller, None
        if c:
            c.stop()

    @property
    def up(self):
        return self.controller is not None


class SmtpHandler:
    def __init__(self, receiver):
        self.receiver = receiver

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        HITS.hit()
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        text = plain.get_content() if plain is not None else ""
        pairs = parse_message(text)
        r = self.receiver
        with r.lock:
            r.seen.update(pairs)
            if len(pairs) != 1:
                r.bad.append(f"email: body names {pairs}: {text[:300]}")
            r.accepted.append(
                {
                    "t": round(CLOCK.elapsed(), 3),
                    "pairs": pairs,
                    "to": list(envelope.rcpt_tos),
                    "mode": "dropped" if r.dropping else "healthy",
                }
            )
            if r.dropping:
                r.dropped += 1
                server.transport.abort()
        return "250 2.0.0 OK"


# -- The schedules (seeded) ----------------------------------------------------


def mode_schedule(rng):
    """An endless sequence of (mode, seconds), never the same mode twice in a row."""
    last = None
    while True:
        mode = rng.choice([m for m in MODES if m != last])
        last = mode
        yield mode, rng.uniform(*MODE_S)


class Faults(threading.Thread):
    """Switches the receivers' modes on their seeded schedules."""

    def __init__(self, seed, slack, crm, smtp):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.plans = [
            (slack, mode_schedule(random.Random(f"{seed}-slack"))),
            (crm, mode_schedule(random.Random(f"{seed}-crm"))),
        ]
        self.smtp = smtp
        self.smtp_rng = random.Random(f"{seed}-smtp")
        self.switches = {"slack": 0, "crm": 0, "smtp_stops": 0, "smtp_drops": 0}
        self.timeline = []  # (t, receiver, mode)

    def run(self):
        now = time.monotonic()
        due = [now + 3.0 for _ in self.plans]  # healthy for the first seconds
        smtp_due = now + self.smtp_rng.uniform(*SMTP_UP_S)
        while not self.stopping.wait(0.05):
            now = time.monotonic()
            for i, (receiver, plan) in enumerate(self.plans):
                if now >= due[i]:
                    mode, seconds = next(plan)
                    receiver.set_mode(mode)
                    self.switches[receiver.name] += 1
                    self.timeline.append((round(CLOCK.elapsed(), 2), receiver.name, mode))
                    due[i] = now + seconds
            if now >= smtp_due:
                if self.smtp.up and not self.smtp.dropping:
                    if self.smtp_rng.random() < SMTP_DROP_CHANCE:
                        self.smtp.dropping = True
                        self.switches["smtp_drops"] += 1
                        self.timeline.append((round(CLOCK.elapsed(), 2), "smtp", "dropping"))
                    else:
                        self.smtp.stop()
                        self.switches["smtp_stops"] += 1
                        self.timeline.append((round(CLOCK.elapsed(), 2), "smtp", "stopped"))
                    smtp_due = now + self.smtp_rng.uniform(*SMTP_DOWN_S)
                else:
                    self.smtp.dropping = False
                    self.smtp.start()
                    self.timeline.append((round(CLOCK.elapsed(), 2), "smtp", "healthy"))
                    smtp_due = now + self.smtp_rng.uniform(*SMTP_UP_S)

    def heal(self):
        """Stops switching; every receiver healthy."""
        self.stopping.set()
        self.join(timeout=10)
        for receiver, _ in self.plans:
            receiver.set_mode("healthy")
            self.timeline.append((round(CLOCK.elapsed(), 2), receiver.name, "healthy"))
        self.smtp.dropping = False
        self.smtp.start()
        self.timeline.append((round(CLOCK.elapsed(), 2), "smtp", "healthy"))


# -- The world and its ground truth --------------------------------------------


class World(threading.Thread):
    """Flips the keys and records every episode. A phase lasts its seeded
    duration and at least until the agent's persisted alert state shows it
    (so every episode is seen by a cycle and numbered as the driver counts)."""

    def __init__(self, seed, warehouse, memory):
        super().__init__(daemon=True)
        self.warehouse, self.memory = warehouse, memory
        self.keys = [f"k{i:02d}" for i in range(KEYS)]
        self.rngs = {k: random.Random(f"{seed}-key-{k}") for k in self.keys}
        self.firing = {k: False for k in self.keys}
        self.episode = {k: 0 for k in self.keys}
        now = time.monotonic()
        # Staggered first quiet phases, so the keys do not all fire at once.
        self.min_end = {k: now + self.rngs[k].uniform(1.0, PHASE_S[1]) for k in self.keys}
        self.phase_start = {k: CLOCK.elapsed() for k in self.keys}
        self.truth = []  # {key, episode, start, end}: every episode, in order
        self.current = {}  # key -> its open truth entry
        self.unnoticed = []  # (key, phase, episode) flipped without the agent noticing
        self.late = []  # how long each phase outlasted its drawn duration, waiting to be noticed
        self.finishing = False
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.agent_states = {}
        with sqlite3.connect(warehouse) as db:
            db.execute("CREATE TABLE k (key TEXT PRIMARY KEY, v REAL NOT NULL)")
            db.executemany("INSERT INTO k VALUES (?, ?)", [(k, QUIET_V) for k in self.keys])
        db.close()

    def read_agent(self):
        """key -> (state, held, episode) as the agent last wrote them."""
        if not os.path.exists(self.memory):
            return {}
        try:
            db = sqlite3.connect(f"file:{self.memory}?mode=ro", uri=True, timeout=5)
            try:
                rows = db.execute(
                    "SELECT labels, state, held, episode FROM alert_instances WHERE rule = 'flip'"
                ).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return None  # not migrated yet, or busy: try again
        out = {}
        for labels, state, held, episode in rows:
            try:
                key = json.loads(labels).get("key")
            except ValueError:
                continue
            out[key] = (state, held, episode)
        return out

    def noticed(self, key, states):
        state, held, episode = states.get(key, ("inactive", None, 0))
        effective = held if state in ("no_data", "error") and held else state
        if self.firing[key]:
            return effective == "firing" and episode == self.episode[key]
        return effective != "firing" and episode == self.episode[key]

    def flip(self, key, noticed):
        firing = not self.firing[key]
        if not self.finishing:
            self.late.append(max(0.0, time.monotonic() - self.min_end[key]))
        t = CLOCK.elapsed()
        with sqlite3.connect(self.warehouse, timeout=30) as db:
            db.execute("UPDATE k SET v = ? WHERE key = ?", (FIRING_V if firing else QUIET_V, key))
        db.close()
        with self.lock:
            if not noticed:
                self.unnoticed.append((key, "firing" if self.firing[key] else "quiet", self.episode[key], round(t, 2)))
            if firing:
                self.episode[key] += 1
                entry = {"key": key, "episode": self.episode[key], "start": round(t, 3), "end": None}
                self.truth.append(entry)
                self.current[key] = entry
            else:
                self.current.pop(key)["end"] = round(t, 3)
            self.firing[key] = firing
            self.phase_start[key] = t
        long = firing and key in self.keys[KEYS - LONG_KEYS:]
        self.min_end[key] = time.monotonic() + self.rngs[key].uniform(*(LONG_FIRING_S if long else PHASE_S))

    def run(self):
        while not self.stopping.wait(0.2):
            states = self.read_agent()
            if states is None:
                continue
            self.agent_states = states
            now = time.monotonic()
            for key in self.keys:
                if self.finishing and not self.firing[key]:
                    continue
                due = self.finishing or now >= self.min_end[key]
                if not due:
                    continue
                noticed = self.noticed(key, states)
                if noticed or now >= self.min_end[key] + NOTICE_GRACE_S:
                    self.flip(key, noticed)

    def all_quiet_and_noticed(self):
        states = self.read_agent() or {}
        return all(not self.firing[k] and self.noticed(k, states) for k in self.keys)

    def firing_count(self):
        return sum(self.firing.values())


# -- The daemon ------------------------------------------------------------------


class Daemon:
    """One `bi-agent run` process with its JSON log in its own file."""

    def __init__(self, binary, config, env, log_path):
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "run", "-c", config],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.end = None  # how it ended: "SIGKILL", "SIGTERM", or None (still running)
        self.timing = None  # when it was stopped (KILL_TIMING)
        self.exit_code = None

    def lines(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()

    def events(self):
        out = []
        for line in self.lines():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"message": line, "level": "RAW"}
            if not isinstance(event, dict):
                event = {"message": line, "level": "RAW"}
            if "message" not in event and isinstance(event.get("fields"), dict):
                event["message"] = event["fields"].get("message", "")
            out.append(event)
        return out

    def started(self):
        return any(e.get("message") == "Daemon started" for e in self.events())

    def alive(self):
        return self.proc.poll() is None

    def kill(self, sig):
        self.end = "SIGKILL" if sig == signal.SIGKILL else "SIGTERM"
        self.proc.send_signal(sig)
        try:
            self.exit_code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
            self.end += " (did not stop in 30 s: SIGKILL)"
        self.log_file.close()


class Soak:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.binary = os.path.abspath(args.bin)
        self.config = os.path.join(workdir, "agent.toml")
        self.memory = os.path.join(workdir, "memory.db")
        self.warehouse = os.path.join(workdir, "warehouse.db")
        self.slack = HttpReceiver("slack", SLACK_PATH, free_port())
        self.crm = HttpReceiver("crm", CRM_PATH, free_port())
        self.smtp = SmtpReceiver(free_port())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BI_AGENT_")}
        self.env.pop("RUST_LOG", None)
        self.daemons = []
        self.kill_rng = random.Random(f"{args.seed}-kills")
        self.failures = []
        self.notes = []

    @property
    def daemon(self):
        return self.daemons[-1] if self.daemons else None

    def write_config(self):
        text = CONFIG.format(
            memory=self.memory,
            warehouse=self.warehouse,
            slack_port=self.slack.port,
            slack_path=SLACK_PATH,
            smtp_port=self.smtp.port,
            crm_port=self.crm.port,
            crm_path=CRM_PATH,
        )
        with open(self.config, "w") as f:
            f.write(text)

    def cli(self, *args, timeout=60):
        return subprocess.run(
            [self.binary, *args, "-c", self.config], capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def start_daemon(self):
        n = len(self.daemons)
        d = Daemon(self.binary, self.config, self.env, os.path.join(self.workdir, f"daemon-{n:02d}.log"))
        self.daemons.append(d)
        try:
            wait_until(f"daemon-{n:02d}: Daemon started", lambda: d.started() or not d.alive(), START_TIMEOUT_S, 0.05)
        except SoakFailure:
            raise SoakFailure(f"daemon-{n:02d} did not log `Daemon started` within {START_TIMEOUT_S:.0f}s")
        if not d.alive():
            raise SoakFailure(f"daemon-{n:02d} exited ({d.proc.returncode}) at start:\n" + "\n".join(d.lines()[-20:]))

    def stop_daemon(self, sig):
        d = self.daemon
        d.kill(sig)
        if sig == signal.SIGTERM:
            if d.exit_code != 0:
                self.failures.append(f"{os.path.basename(d.log_path)}: exit code {d.exit_code} after SIGTERM (expected 0)")
            if not any(e.get("message") == "Daemon stopped" for e in d.events()):
                self.failures.append(f"{os.path.basename(d.log_path)}: no `Daemon stopped` after SIGTERM")

    def run(self):
        args = self.args
        self.slack.start()
        self.crm.start()
        self.smtp.start()
        self.world = World(args.seed, self.warehouse, self.memory)
        self.write_config()
        done = self.cli("check")
        if done.returncode != 0:
            raise SoakFailure(f"bi-agent check exited {done.returncode}: {done.stdout}{done.stderr}")
        self.faults = Faults(args.seed, self.slack, self.crm, self.smtp)
        self.start_daemon()
        self.world.start()
        self.faults.start()
        log(
            f"daemon up; {KEYS} keys; Slack :{self.slack.port}, CRM :{self.crm.port}, SMTP :{self.smtp.port}; "
            f"seed {args.seed}; {args.seconds}s"
        )

        # The kills: SIGTERM at two seeded places among the expected kills.
        expected = max(3, int(args.seconds / (sum(KILL_EVERY_S) / 2 + 1.0)))
        terms = set(self.kill_rng.sample(range(1, expected), min(SIGTERMS, expected - 1)))
        kills = 0
        last_report = 0.0
        while True:
            timing = self.kill_rng.choices([t for t, _ in KILL_TIMING], [w for _, w in KILL_TIMING])[0]
            wait = self.kill_rng.uniform(*KILL_EVERY_S) if timing != "first_cycle" else self.kill_rng.uniform(0.2, 1.5)
            offset = self.kill_rng.uniform(0.0, 0.4)
            sig = signal.SIGTERM if kills in terms else signal.SIGKILL
            if CLOCK.elapsed() + wait >= args.seconds:
                break
            end = time.monotonic() + wait
            while time.monotonic() < end:
                time.sleep(min(0.5, max(0.0, end - time.monotonic())))
                if not self.daemon.alive():
                    raise SoakFailure(
                        f"{os.path.basename(self.daemon.log_path)} exited by itself ({self.daemon.proc.returncode}):\n"
                        + "\n".join(self.daemon.lines()[-20:])
                    )
                if CLOCK.elapsed() - last_report >= 30:
                    last_report = CLOCK.elapsed()
                    self.progress(kills)
            if timing == "in_flight":  # just after a receiver got a request: a send is in flight
                HITS.wait_next(5.0)
                time.sleep(offset)
            self.stop_daemon(sig)
            self.daemon.timing = timing
            kills += 1
            self.start_daemon()

        log("finishing: every key quiet, every receiver healthy")
        self.faults.heal()
        self.world.finishing = True
        try:
            wait_until("every key quiet and noticed by the agent", self.world.all_quiet_and_noticed, 120, 0.2)
        except SoakFailure as e:
            self.failures.append(str(e))
        time.sleep(SETTLE_S)
        self.stop_daemon(signal.SIGTERM)
        self.world.stopping.set()
        self.world.join(timeout=10)
        self.run_seconds = CLOCK.elapsed()
        log(f"daemon stopped; run took {self.run_seconds:.0f}s")

    def progress(self, kills):
        a = {r.name: len(r.accepted) for r in (self.slack, self.crm)}
        log(
            f"kills {kills}, episodes {len(self.world.truth)}, firing {self.world.firing_count()}, "
            f"accepted slack {a['slack']} crm {a['crm']} email {len(self.smtp.accepted)}; "
            f"modes slack={self.slack.mode} crm={self.crm.mode} smtp={'up' if self.smtp.up else 'down'}"
        )

    def shutdown(self):
        for d in self.daemons:
            if d.alive():
                d.proc.kill()
                d.proc.wait()
        if hasattr(self, "world"):
            self.world.stopping.set()
        if hasattr(self, "faults"):
            self.faults.stopping.set()
        self.slack.stop()
        self.crm.stop()
        self.smtp.stop()


# -- The checks ------------------------------------------------------------------


def memory_rows(path, sql, params=()):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def check(soak):
    failures = soak.failures
    world = soak.world
    truth = {(e["key"], e["episode"]): e for e in world.truth}

    # The effect log, per (key, episode, target).
    effects = {}
    by_hash = {}
    rows = memory_rows(
        soak.memory,
        "SELECT key, action_id, episode, repeat, channel, target, status, attempts, error, created_at, updated_at "
        "FROM effects WHERE dry_run = 0",
    )
    strays = []
    for key, action, episode, repeat, channel, target, status, attempts, error, created, updated in rows:
        if not action.startswith(ACTION_PREFIX):
            strays.append((key, status))
            continue
        k = action[len(ACTION_PREFIX):]
        e = {
            "effect": key,
            "status": status,
            "attempts": attempts,
            "error": error,
            "repeat": repeat,
            "created_at": created,
            "updated_at": updated,
        }
        slot = (k, episode, target)
        if slot in effects:
            failures.append(f"two effects for {slot}: {effects[slot]['effect']} and {key}")
        effects[slot] = e
        by_hash[hashlib.sha256(key.encode()).hexdigest()] = (k, episode, target)
    if strays:
        failures.append(f"effects of other actions: {strays[:5]}")

    # What each receiver accepted, per (key, episode).
    received = {t: {} for t in TARGETS.values()}
    bad = soak.slack.bad + soak.crm.bad + soak.smtp.bad
    for name, receiver in (("slack", soak.slack), ("crm", soak.crm)):
        for a in receiver.accepted:
            for pair in a["pairs"]:
                received[TARGETS[name]].setdefault(pair, []).append(a)
    for a in soak.smtp.accepted:
        if a["to"] != ["ops@example.test"]:
            bad.append(f"email to {a['to']}")
        for pair in a["pairs"]:
            received[TARGETS["email"]].setdefault(pair, []).append(a)
    if bad:
        failures.append(f"{len(bad)} requests the receivers did not understand: {bad[:5]}")

    # The CRM's Idempotency-Key names the effect it belongs to.
    crm = TARGETS["crm"]
    mismatched = []
    for pair, got in received[crm].items():
        for a in got:
            slot = by_hash.get(a["idem"] or "")
            if slot != (pair[0], pair[1], crm):
                mismatched.append((pair, a["idem"], slot))
    if mismatched:
        failures.append(f"CRM requests whose Idempotency-Key is not their effect's: {mismatched[:5]}")

    # Messages or effects for episodes that never were.
    phantom = sorted({(k, e, t) for t, got in received.items() for (k, e) in got if (k, e) not in truth})
    phantom += sorted({s for s in effects if (s[0], s[1]) not in truth})
    if phantom:
        failures.append(f"{len(phantom)} messages or effects for episodes that never happened: {phantom[:10]}")

    # The agent's episode counters are the driver's.
    agent = world.read_agent() or {}
    off = {k: (world.episode[k], agent.get(k, (None, None, 0))[2]) for k in world.keys}
    off = {k: v for k, v in off.items() if v[0] != v[1]}
    if off:
        failures.append(f"episode counters (driver, agent) differ: {off}")
    if world.unnoticed:
        failures.append(
            f"{len(world.unnoticed)} phases the agent did not notice within {NOTICE_GRACE_S:.0f}s: {world.unnoticed[:10]}"
        )

    # 1. Zero silent losses; 2. zero duplicates except unknown.
    losses, false_sent, duplicates = [], [], []
    per_target = {t: {"delivered": 0, "failed": 0, "unknown": 0, "retrying": 0, "lost": 0} for t in TARGETS.values()}
    held_to_check = 0
    for (k, ep), e in sorted(truth.items()):
        end = e["end"] if e["end"] is not None else soak.run_seconds
        long_enough = end - e["start"] >= MIN_EPISODE_S
        held_to_check += long_enough
        for target in TARGETS.values():
            got = received[target].get((k, ep), [])
            effect = effects.get((k, ep, target))
            status = effect["status"] if effect else None
            if got:
                distinct = {a["idem"] for a in got} if target == crm else range(len(got))
                if len(distinct) > 1 and status != "unknown":
                    duplicates.append(
                        {
                            "key": k,
                            "episode": ep,
                            "target": target,
                            "accepted": [(a["t"], a.get("mode"), (a.get("idem") or "")[:12]) for a in got],
                            "effect": effect,
                        }
                    )
            if not long_enough:
                continue
            if got:
                per_target[target]["delivered"] += 1
            elif status in ("failed", "unknown", "retrying"):
                per_target[target][status] += 1
            else:
                per_target[target]["lost"] += 1
                loss = {"key": k, "episode": ep, "target": target, "window": (e["start"], e["end"]), "effect": effect}
                (false_sent if status == "sent" else losses).append(loss)
    if losses:
        failures.append(f"{len(losses)} silent losses (no message, no failed/unknown/retrying effect)")
    if false_sent:
        failures.append(f"{len(false_sent)} effects recorded `sent` that no receiver got")
    if duplicates:
        failures.append(f"{len(duplicates)} duplicates (one episode accepted twice, effect not unknown)")

    # 3. The memory file and `bi-agent status`.
    integrity = memory_rows(soak.memory, "PRAGMA integrity_check")
    if integrity != [("ok",)]:
        failures.append(f"PRAGMA integrity_check: {integrity[:5]}")
    counts = dict(memory_rows(soak.memory, "SELECT status, COUNT(*) FROM effects WHERE dry_run = 0 GROUP BY status"))
    done = soak.cli("status")
    if done.returncode != 0:
        failures.append(f"bi-agent status exited {done.returncode}: {done.stderr.strip()[:500]}")
    else:
        retried = re.search(r"^Being retried \((\d+)\):", done.stdout, re.M)
        unknown = re.search(r"^May or may not have arrived \((\d+);", done.stdout, re.M)
        seen = (int(retried.group(1)) if retried else None, int(unknown.group(1)) if unknown else None)
        expected = (counts.get("retrying", 0), counts.get("unknown", 0))
        if seen != expected:
            failures.append(f"bi-agent status: being retried / may or may not have arrived {seen}, effects table {expected}")
    if counts.get("dispatching"):
        failures.append(f"{counts['dispatching']} effects still `dispatching` after a clean stop")

    # 4. The logs.
    warnings = {}
    notable = {m: 0 for m in NOTABLE}
    twice = {}  # log messages whose JSON object holds a key twice (a reader keeps only one of them)
    for d in soak.daemons:
        name = os.path.basename(d.log_path)
        lines = d.lines()
        panics = [line for line in lines if re.search(r"panic", line, re.I)]
        if panics:
            failures.append(f"{name}: panic: {panics[0][:500]}")
        events = d.events()
        if not any(e.get("message") == "Daemon started" for e in events):
            failures.append(f"{name}: no `Daemon started`")
        for line in lines:
            try:
                pairs = json.loads(line, object_pairs_hook=lambda p: p)
            except ValueError:
                continue
            if isinstance(pairs, list):
                keys = [k for k, _ in pairs]
                for k in sorted({k for k in keys if keys.count(k) > 1}):
                    m = f"{dict(pairs).get('message')!r} has {k!r} twice"
                    twice[m] = twice.get(m, 0) + 1
        raw = [e["message"] for e in events if e.get("level") == "RAW" and e["message"].strip()]
        if raw:
            failures.append(f"{name}: non-JSON lines: {raw[:3]}")
        for e in events:
            if e.get("message") in notable:
                notable[e["message"]] += 1
            if e.get("level") in ("WARN", "ERROR"):
                m = f"{e.get('level')} {e.get('message')}"
                warnings[m] = warnings.get(m, 0) + 1

    if twice:
        failures.append(
            f"{sum(twice.values())} JSON log lines hold a key twice (readers keep one): "
            + "; ".join(f"{m} x{n}" for m, n in sorted(twice.items(), key=lambda x: -x[1]))
        )

    # 5. The figures.
    kills = sum(1 for d in soak.daemons if d.end == "SIGKILL")
    terms = sum(1 for d in soak.daemons if d.end and d.end.startswith("SIGTERM"))
    if soak.args.seconds >= 300 and kills < 20:
        failures.append(f"only {kills} SIGKILLs in the run (at least 20 wanted)")
    retries = sum(max(0, e["attempts"] - 1) for e in effects.values())
    unknowns = sum(1 for e in effects.values() if e["status"] == "unknown")
    statuses = {}
    for (k, ep, target), e in effects.items():
        statuses.setdefault(target, {}).setdefault(e["status"], 0)
        statuses[target][e["status"]] += 1
    cycles = dict(memory_rows(soak.memory, "SELECT status, COUNT(*) FROM cycles GROUP BY status"))
    longest = memory_rows(soak.memory, "SELECT MAX(duration_ms) FROM cycles")[0][0] or 0
    late = sorted(world.late)
    timings = {}
    for d in soak.daemons:
        if d.end == "SIGKILL":
            timings[d.timing] = timings.get(d.timing, 0) + 1
    # Unknown effects whose message never reached the receiver at all (in
    # any mode): claimed, but the process died before the request left.
    reached = {TARGETS["slack"]: soak.slack.seen, TARGETS["crm"]: soak.crm.seen, TARGETS["email"]: soak.smtp.seen}
    never_sent = {
        t: sum(1 for (k, ep, tt), e in effects.items() if tt == t and e["status"] == "unknown" and (k, ep) not in reached[t])
        for t in TARGETS.values()
    }

    print()
    print("== figures")
    print(f"run length          {soak.run_seconds:.0f} s (seed {soak.args.seed})")
    print(
        f"daemon processes    {len(soak.daemons)}: {kills} SIGKILL ({json.dumps(timings, sort_keys=True)}), "
        f"{terms} SIGTERM (the last one included)"
    )
    print(f"cycles              {json.dumps(cycles, sort_keys=True)}; longest {longest / 1000:.1f} s")
    if late:
        print(
            f"phases              {len(late)} ended; waiting for the agent to notice stretched "
            f"{sum(1 for x in late if x > 1.0)} by over 1 s (longest {late[-1]:.1f} s)"
        )
    print(
        f"episodes            {len(truth)} over {KEYS} keys; {held_to_check} fired >= {MIN_EPISODE_S:.0f} s "
        f"(held to the loss check)"
    )
    print(f"receiver modes      {json.dumps(soak.faults.switches)} switches; requests by mode: "
          f"slack {json.dumps(soak.slack.requests, sort_keys=True)}, crm {json.dumps(soak.crm.requests, sort_keys=True)}")
    print("per target          delivered / recorded failed, unknown, retrying / lost   (episodes >= 3 s)")
    for name, target in TARGETS.items():
        p = per_target[target]
        print(
            f"  {target:<24} {p['delivered']:4d} / {p['failed']:3d} failed, {p['unknown']:3d} unknown, "
            f"{p['retrying']:3d} retrying / {p['lost']:3d} lost; messages accepted "
            f"{sum(len(v) for v in received[target].values())}; effects {json.dumps(statuses.get(target, {}), sort_keys=True)}"
        )
    print(
        f"unknowns            {unknowns} effects; of them never reached the receiver in any mode: "
        + ", ".join(f"{t} {n}" for t, n in never_sent.items())
    )
    print(f"retries             {retries} (sum of attempts - 1 over {len(effects)} effects)")
    kinds = {}
    for d in duplicates:
        modes = "+".join(sorted({a[1] or "accepted" for a in d["accepted"]}))
        kind = f"{d['target']} effect {d['effect']['status'] if d['effect'] else 'none'}, accepted in {modes}"
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"duplicates          {len(duplicates)}" + (": " + "; ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) if kinds else ""))
    print(f"losses              {len(losses)} silent + {len(false_sent)} recorded sent but never received")
    print("log events          " + "; ".join(f"{m} x{n}" for m, n in notable.items()))
    if warnings:
        print("log warnings        " + "; ".join(f"{m} x{n}" for m, n in sorted(warnings.items(), key=lambda x: -x[1])[:12]))

    for title, items in (("silent losses", losses), ("recorded sent, never received", false_sent), ("duplicates", duplicates)):
        if items:
            print(f"\n== {title} ({len(items)}; first 20)")
            for item in items[:20]:
                print("  " + json.dumps(item, default=str))

    with open(os.path.join(soak.workdir, "soak-result.json"), "w") as f:
        json.dump(
            {
                "clock_start_wall": time.time() - CLOCK.elapsed(),  # soak times t are seconds after this
                "truth": world.truth,
                "received": {t: {f"{k}#{e}": v for (k, e), v in got.items()} for t, got in received.items()},
                "losses": losses,
                "false_sent": false_sent,
                "duplicates": duplicates,
                "faults": soak.faults.timeline,
                "daemons": [(os.path.basename(d.log_path), d.end, d.exit_code) for d in soak.daemons],
            },
            f,
            indent=1,
            default=str,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/bi-agent", help="the bi-agent binary to drive")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to run under faults (then ~30 s to settle)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the world, the faults and the kills")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, logs, memory) on success too")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"soak: {args.bin} is not an executable: build it with `cargo build --release --locked`")

    workdir = tempfile.mkdtemp(prefix="bi-agent-soak-")
    soak = Soak(args, workdir)
    aborted = None
    try:
        soak.run()
    except SoakFailure as e:
        aborted = str(e)
    finally:
        if aborted is None:
            soak.shutdown()
    if aborted:
        soak.failures.append(f"aborted: {aborted}")
        soak.run_seconds = CLOCK.elapsed()
        if soak.daemon and soak.daemon.alive():
            soak.daemon.kill(signal.SIGTERM)
        soak.shutdown()
    if hasattr(soak, "world") and os.path.exists(soak.memory):
        try:
            check(soak)
        except Exception as e:  # a check that cannot run is a failure, said plainly
            import traceback

            traceback.print_exc()
            soak.failures.append(f"the checks could not run: {e}")

    if soak.failures:
        print("\nSOAK FAILED")
        for f in soak.failures:
            print(f"  FAIL {f}")
        print(f"\nwork directory kept: {workdir}")
        return 1
    print("\nsoak: nothing lost, nothing duplicated")
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
