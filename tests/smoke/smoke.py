#!/usr/bin/python3
"""The production smoke run: the release binary, end to end, on loopback.

Run it (after `cargo build --release --locked`) with the system Python, which
has Debian's python3-aiosmtpd (`.ci/start-smtp.sh` installs it):

    /usr/bin/python3 tests/smoke/smoke.py --bin target/release/bi-agent

PostgreSQL comes from BI_AGENT_TEST_POSTGRES_URL (`eval "$(bash
.ci/start-databases.sh)"` exports it); everything else is started here, on
127.0.0.1 with ports the OS picks: one HTTP server that fakes the Slack
incoming webhook, the Slack Web API (chat.postMessage), a CRM endpoint, an
OpenAI-compatible LLM, an HTTP JSON analytics API and the Prometheus query
API; and an SMTP receiver (aiosmtpd). The data world (a SQLite warehouse and
one PostgreSQL table) holds fixed numbers: nothing depends on the date or the
time of day.

The run, one function per phase (PHASES at the bottom), each waiting for
conditions with deadlines rather than sleeping:

 1. setup      `bi-agent check`, `bi-agent run` with the config from
               agent.toml.in, /healthz, /readyz, `bi-agent health`
 2. report     the scheduled report (first cycle) with its LLM narrative, by e-mail
 3. fire       every rule but the stock ones (phase 8) fires in one cycle:
               revenue_drop's two regions as one group message (Slack webhook
               + e-mail), the other rules' own messages, two investigations
               with LLM summaries, one accepted (and one refused) LLM
               proposal, two CRM tasks waiting for approval
 4. approval   `bi-agent approvals`, `approve` one, `reject` the other: one CRM POST,
               its Idempotency-Key the SHA-256 of its effect key
 5. reload     a broken file is refused (`Config reload rejected`), then Slack
               switched from the incoming webhook to chat.postMessage in the
               file, SIGHUP, `Config reloaded`
 6. resolve    the warehouse recovers: two resolution messages via chat.postMessage
 7. cli_report `bi-agent report weekly_review`, live, with narrative
 8. deliveries exactly once, per target: the widgets run out, stock_low (Slack
               #stock + e-mail) and stock_out (Slack #purchasing) fire; the
               fake Slack answers 500 to #stock until the action was seen
               `partial`, and a later cycle's retry delivers it (one outcome
               record); it takes the first #purchasing request and hangs up,
               so that delivery is `unknown`, never re-sent, listed by
               `actions --unknown` and `status`, until `resolve-effect
               --resend` has the next cycle send it once more
 9. settle     a few more cycles: nothing more may arrive anywhere
10. status     `bi-agent status` (--json and text), `actions`, `patterns`, `plan`,
               and the memory database: no cycle but ok, LLM calls and tokens,
               grounded summaries, approvals, the effect log
11. metrics    /metrics from [server] listen, deliveries per channel and status
12. stop       SIGTERM: exit 0, `Daemon stopped`
13. restart    the daemon again on the same memory: nothing is sent twice

then the exact count at every receiver (EXPECTED), no panic in the log, and no
secret in the log or the memory. On failure it prints what was expected and
what was seen, the tail of the daemon's log, and exits 1.

To add a feature to the run: give it its config in agent.toml.in, a phase
function (appended to PHASES) that waits for what it should cause, and its
counts in EXPECTED.
"""

import argparse
import email
import email.policy
import email.utils
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit(
        "smoke: aiosmtpd is missing: run with /usr/bin/python3 and install "
        "python3-aiosmtpd (.ci/start-smtp.sh does)"
    )

HERE = os.path.dirname(os.path.abspath(__file__))

# The whole run after the build must stay within 3 minutes; waits stop early
# (and fail) once this budget is spent, so a broken binary fails fast.
RUN_BUDGET_S = 170.0
# The longest any one condition is waited for.
WAIT_S = 30.0

# -- What must arrive, exactly ------------------------------------------------

# Every receiver's exact count over the whole run (daemon + CLI commands).
EXPECTED = {
    # revenue_drop's group message (Northeast + West), error_rate_high{job=api},
    # and the LLM's accepted proposal: all before the reload.
    "slack_webhook_posts": 3,
    # revenue_drop/recovered for Northeast and West (after the reload),
    # `bi-agent report weekly_review` to #analytics, and (the delivery phase)
    # stock_low to #stock on a later cycle's retry and stock_out to
    # #purchasing once more after `resolve-effect --resend`.
    "slack_api_posts": 5,
    # chat.postMessage requests to #stock answered 500: the first cycle's
    # attempts (guardrails.retry_attempts, 3 by default), none after.
    "slack_api_refused": 3,
    # chat.postMessage requests taken and hung up on: the first to #purchasing.
    "slack_api_unanswered": 1,
    # hourly_summary (scheduled), revenue_drop's group message, bounce_high,
    # signups_short{plan=pro}, weekly_review (CLI), stock_low to stock@ (the
    # lists phase's own agent and its e-mail to lists@ are counted there).
    "emails": 6,
    # revenue_drop/crm_task for Northeast, approved; West's was rejected.
    "crm_posts": 1,
    # One planning request when everything fires, one when revenue_drop
    # resolves, one when the stock rules fire.
    "llm_plan": 3,
    # One summary per investigation (Northeast, West).
    "llm_summary": 2,
    # hourly_summary in the daemon, weekly_review from the CLI.
    "llm_narrative": 2,
    # Requests the fake LLM could not classify, or found malformed.
    "llm_bad_requests": 0,
    # Requests to a path no fake serves.
    "unexpected_requests": 0,
}
EXPECTED_EMAILS_PER_RECIPIENT = {
    "reports@example.com": 1,
    "director@example.com": 1,
    "growth@example.com": 2,
    "analysts@example.com": 1,
    "stock@example.com": 1,
}
# Accepted chat.postMessage requests only (not the refused or unanswered ones).
EXPECTED_SLACK_API_PER_CHANNEL = {"#ops": 2, "#analytics": 1, "#stock": 1, "#purchasing": 1}
# The only ERROR lines in the first daemon's log: the deliberately broken reload.
EXPECTED_ERRORS = {"Config reload rejected; the running config stays": 1}

# Tokens the fake LLM reports per request kind: (prompt, completion).
LLM_USAGE = {"plan": (200, 40), "summary": (120, 30), "narrative": (90, 25)}

# The fake LLM's narratives and summaries: the first sentence quotes a number
# from the data it was shown (kept by grounding), the second invents one
# (removed by grounding).
GROUNDED = "The largest figure in the data is {number}."
INVENTED = "Revenue will grow by 47.3% next quarter."

# Secrets the agent gets through ${VAR}: none may reach its log or memory.
SECRETS = {
    "SMOKE_SLACK_WEBHOOK_URL": None,  # filled in with the port
    "SMOKE_SLACK_BOT_TOKEN": "xoxb-smoke-bot-token-5ecret",
    "SMOKE_LLM_API_KEY": "sk-smoke-llm-key-5ecret",
    "SMOKE_CRM_TOKEN": "crm-smoke-token-5ecret",
    "SMOKE_ANALYTICS_TOKEN": "analytics-smoke-token-5ecret",
}
WEBHOOK_SECRET_PATH = "/slack/webhook/T0SMOKE/B0SMOKE/w3bh00k5ecret"


# -- Small tools ---------------------------------------------------------------


class SmokeFailure(Exception):
    """A phase cannot go on (the checks so far are still reported)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clock:
    """The run's time budget."""

    def __init__(self):
        self.start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.start

    def left(self):
        return RUN_BUDGET_S - self.elapsed()


CLOCK = Clock()


def log(text):
    print(f"[smoke {CLOCK.elapsed():6.1f}s] {text}", flush=True)


def wait_until(what, condition, timeout=None, interval=0.1):
    """Polls `condition` until it returns something truthy; raises on timeout."""
    timeout = WAIT_S if timeout is None else timeout
    deadline = time.monotonic() + max(0.0, min(timeout, CLOCK.left()))
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SmokeFailure(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(interval)


class Checks:
    """Every assertion, kept: the run reports all of them at the end."""

    def __init__(self):
        self.passed = []
        self.failed = []

    def equal(self, what, expected, seen):
        if expected == seen:
            self.passed.append(what)
        else:
            self.failed.append(f"{what}: expected {expected!r}, seen {seen!r}")
        return expected == seen

    def true(self, what, condition, detail=""):
        if condition:
            self.passed.append(what)
        else:
            self.failed.append(f"{what}{': ' + detail if detail else ''}")
        return bool(condition)


CHECKS = Checks()


# -- The fakes -----------------------------------------------------------------


class Receivers:
    """What each fake received, in order (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}

    def add(self, kind, item):
        with self.lock:
            self.got.setdefault(kind, []).append(item)

    def list(self, kind):
        with self.lock:
            return list(self.got.get(kind, []))

    def count(self, kind):
        return len(self.list(kind))


RECEIVED = Receivers()


class SlackFaults:
    """How the fake chat.postMessage misbehaves, per Slack channel: `refuse`
    answers HTTP 500 until cleared; `hang_up` takes the request (reads it
    whole) and closes the connection without an answer, that many times."""

    def __init__(self):
        self.lock = threading.Lock()
        self.refusing = set()
        self.hang_ups = {}

    def refuse(self, channel, on=True):
        with self.lock:
            (self.refusing.add if on else self.refusing.discard)(channel)

    def hang_up(self, channel, times):
        with self.lock:
            self.hang_ups[channel] = times

    def fault(self, channel):
        """What to do with one request to `channel`: None, "refuse" or "hang_up"."""
        with self.lock:
            if channel in self.refusing:
                return "refuse"
            if self.hang_ups.get(channel, 0) > 0:
                self.hang_ups[channel] -= 1
                return "hang_up"
            return None


SLACK_FAULTS = SlackFaults()

# The fake JSON analytics API answer (a single row).
WEB_ENGAGEMENT = {"bounce_rate": 0.72, "funnel": {"overall_rate": 0.031}, "site": "shop"}
# The fake Prometheus vector: `api` is over the 5 % threshold, `worker` is not.
PROM_SERIES = [("api", "0.09"), ("worker", "0.01")]
PROM_QUERY = "sum by (job) (rate(http_errors_total[5m]))"


def first_grouped_number(text):
    """The first number written with thousands separators (e.g. 70,000)."""
    match = re.search(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?![\w,])", text)
    return match.group(0) if match else None


def fake_llm(request, headers):
    """Answers one chat-completions request; returns (kind, answer body)."""
    problems = []
    if headers.get("Authorization") != f"Bearer {SECRETS['SMOKE_LLM_API_KEY']}":
        problems.append("missing or wrong Authorization")
    if request.get("model") != "smoke-model":
        problems.append(f"model {request.get('model')!r}")
    messages = request.get("messages") or []
    roles = [m.get("role") for m in messages]
    if roles != ["system", "user"]:
        problems.append(f"message roles {roles}")
    for key in ("max_tokens", "max_completion_tokens", "temperature"):
        if key not in request:
            problems.append(f"no {key}")

    def content(i):
        c = messages[i].get("content") if len(messages) > i else ""
        if isinstance(c, list):
            c = "".join(part.get("text", "") for part in c)
        return c or ""

    system, user = content(0), content(1)
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema") or {}
        if schema.get("name") != "proposals" or schema.get("strict") is not True:
            problems.append(f"json_schema {schema.get('name')!r} strict={schema.get('strict')!r}")
        kind = "plan"
    elif "proposals" in system:
        # A fallback mode: the fake answers json_schema fine, so none is expected.
        problems.append(f"planning request in fallback mode {response_format or 'text'}")
        kind = "plan"
    elif system.startswith("You explain the findings"):
        kind = "narrative" if "<context>\nthe scheduled report" in user else "summary"
    else:
        kind = "unknown"
        problems.append("request of unknown kind")

    if kind == "plan":
        text = json.dumps({"proposals": plan_proposals(user)})
    elif kind in ("summary", "narrative"):
        data = user.split("<data>", 1)[-1]
        number = first_grouped_number(data)
        text = (GROUNDED.format(number=number) if number else "The data shows a change.") + " " + INVENTED
    else:
        text = "?"
    prompt, completion = LLM_USAGE.get(kind, (1, 1))
    RECEIVED.add(
        "llm",
        {"kind": kind, "problems": problems, "user": user, "answer": text},
    )
    if problems:
        RECEIVED.add("llm_bad", {"kind": kind, "problems": problems})
    answer = {
        "id": f"chatcmpl-smoke-{RECEIVED.count('llm')}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "smoke-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    if kind == "narrative":
        # Like llama.cpp and other local servers at times: no id, object or
        # created. The agent must take the answer without logging it.
        for field in ("id", "object", "created"):
            del answer[field]
    return answer


def plan_proposals(user):
    """Proposals for a planning request: when error_rate_high fired, one
    valid notify about its instance (accepted and run) and one aimed at a raw
    address (refused); otherwise (a resolution, the stock rules firing), none."""
    changes = re.findall(r"^- (\S+) (\".*?\"): (\w+)$", user, re.M)
    if not any(r == "error_rate_high" and t == "Fired" for r, _, t in changes):
        return []
    instance = ""
    m = re.search(r"^- instance error_rate_high\{(\".*?\")\}", user, re.M)
    if m:
        instance = "error_rate_high{" + json.loads(m.group(1)) + "}"
    else:
        RECEIVED.add("llm_bad", {"kind": "plan", "problems": ["no error_rate_high instance in the situation"]})
    base = {
        "after": [],
        "priority": 2,
        "queries": [],
        "endpoint": "",
        "confidence": 0.9,
    }
    return [
        dict(
            base,
            id="ops_followup",
            kind="notify",
            instance=instance,
            to=["ops"],
            subject="LLM: check the API error rate",
            message="The API error rate is high: check the latest deploy.",
            reasoning="error rate above threshold",
        ),
        dict(
            base,
            id="leak",
            kind="notify",
            instance="",
            to=["ceo@example.com"],
            subject="LLM: should never be sent",
            message="This proposal names an address and must be dropped.",
            reasoning="testing the allowlist",
        ),
    ]


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/web/engagement":
            ok = self.headers.get("Authorization") == f"Bearer {SECRETS['SMOKE_ANALYTICS_TOKEN']}"
            RECEIVED.add("web", {"authorized": ok})
            if not ok:
                return self.reply(401, {"error": "unauthorized"})
            return self.reply(200, WEB_ENGAGEMENT)
        if url.path == "/prom/api/v1/query":
            query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
            RECEIVED.add("prom", {"query": query})
            if query != PROM_QUERY:
                return self.reply(400, {"status": "error", "errorType": "bad_data", "error": "unexpected query"})
            now = 1_700_000_000.0
            # `sum by (job)` drops the metric name, as real Prometheus does.
            result = [{"metric": {"job": job}, "value": [now, v]} for job, v in PROM_SERIES]
            return self.reply(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        RECEIVED.add("unexpected", f"GET {self.path}")
        return self.reply(404, {"error": "not found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        headers = self.headers  # case-insensitive
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if url.path == WEBHOOK_SECRET_PATH:
            RECEIVED.add("slack_webhook", body)
            return self.reply(200, b"ok", "text/plain")
        if url.path == "/slack/api/chat.postMessage":
            ok = headers.get("Authorization") == f"Bearer {SECRETS['SMOKE_SLACK_BOT_TOKEN']}"
            fault = SLACK_FAULTS.fault((body or {}).get("channel") if isinstance(body, dict) else None)
            if fault == "refuse":
                RECEIVED.add("slack_api_refused", {"body": body, "at": time.monotonic()})
                return self.reply(500, {"ok": False, "error": "smoke: refused"})
            if fault == "hang_up":
                # Taken, never answered: the connection closes with no response.
                RECEIVED.add("slack_api_unanswered", {"body": body, "at": time.monotonic()})
                self.close_connection = True
                return None
            # The lists phase's own agent posts to #lists: counted there.
            kind = "lists_slack" if (body or {}).get("channel") == "#lists" else "slack_api"
            RECEIVED.add(kind, {"body": body, "authorized": ok})
            if not ok:
                return self.reply(200, {"ok": False, "error": "invalid_auth"})
            ts = f"1700000000.{RECEIVED.count(kind):06d}"
            return self.reply(200, {"ok": True, "channel": "C0SMOKE", "ts": ts})
        if url.path == "/slack/api/files.getUploadURLExternal":
            ok = headers.get("Authorization") == f"Bearer {SECRETS['SMOKE_SLACK_BOT_TOKEN']}"
            form = urllib.parse.parse_qs(raw.decode())
            RECEIVED.add("slack_upload_url", {"form": form, "authorized": ok})
            upload = f"http://127.0.0.1:{self.server.server_address[1]}/slack/upload/F0SMOKE"
            return self.reply(200, {"ok": ok, "upload_url": upload, "file_id": "F0SMOKE"})
        if url.path == "/slack/upload/F0SMOKE":
            RECEIVED.add("slack_upload", {"bytes": raw, "authorization": headers.get("Authorization")})
            return self.reply(200, b"OK", "text/plain")
        if url.path == "/slack/api/files.completeUploadExternal":
            ok = headers.get("Authorization") == f"Bearer {SECRETS['SMOKE_SLACK_BOT_TOKEN']}"
            RECEIVED.add("slack_upload_complete", {"body": body, "authorized": ok})
            return self.reply(200, {"ok": ok, "files": [{"id": "F0SMOKE"}]})
        if url.path == "/crm/tasks":
            ok = headers.get("Authorization") == f"Bearer {SECRETS['SMOKE_CRM_TOKEN']}"
            RECEIVED.add("crm", {"body": body, "authorized": ok, "idempotency_key": headers.get("Idempotency-Key")})
            return self.reply(201 if ok else 401, {"id": "task-1"} if ok else {"error": "unauthorized"})
        if url.path == "/lists/hook":
            RECEIVED.add("lists_hook", body)
            return self.reply(200, {})
        if url.path == "/lists/crm":
            RECEIVED.add("lists_crm", body)
            return self.reply(200, {})
        if url.path == "/llm/v1/chat/completions":
            if not isinstance(body, dict):
                RECEIVED.add("llm_bad", {"kind": "?", "problems": ["body is not a JSON object"]})
                return self.reply(400, {"error": {"message": "bad request"}})
            return self.reply(200, fake_llm(body, headers))
        RECEIVED.add("unexpected", f"POST {self.path}")
        return self.reply(404, {"error": "not found"})


class SmtpHandler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        RECEIVED.add(
            "email",
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "text": plain.get_content() if plain is not None else "",
                "date": str(message.get("Date", "")),
                "message_id": str(message.get("Message-ID", "")),
                "in_reply_to": str(message.get("In-Reply-To", "")),
                "attachments": [
                    (part.get_filename(), part.get_content_type(), part.get_content())
                    for part in message.iter_attachments()
                ],
            },
        )
        return "250 2.0.0 OK"


# -- The data world --------------------------------------------------------------

REGIONS = [  # region, revenue_7d, revenue_prev_7d: Northeast -30 %, West -20 %, South +5 %
    ("Northeast", 70_000, 100_000),
    ("West", 80_000, 100_000),
    ("South", 105_000, 100_000),
]
CATEGORIES = [  # region, category, revenue_7d, revenue_prev_7d (sums match REGIONS)
    ("Northeast", "electronics", 25_000, 52_000),
    ("Northeast", "home", 30_000, 31_000),
    ("Northeast", "toys", 15_000, 17_000),
    ("West", "electronics", 30_000, 33_000),
    ("West", "home", 28_000, 45_000),
    ("West", "toys", 22_000, 22_000),
    ("South", "electronics", 40_000, 38_000),
    ("South", "home", 35_000, 34_000),
    ("South", "toys", 30_000, 28_000),
]
SIGNUPS = [("basic", 120, 100), ("pro", 40, 60)]  # plan, signups, target: pro is short
STOCK = [("gadgets", 40, 10), ("widgets", 50, 10)]  # item, units, minimum: none short


def make_warehouse(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE region_week (region TEXT PRIMARY KEY, revenue_7d INTEGER, revenue_prev_7d INTEGER)")
        db.executemany("INSERT INTO region_week VALUES (?, ?, ?)", REGIONS)
        db.execute(
            "CREATE TABLE category_week (region TEXT, category TEXT, revenue_7d INTEGER, revenue_prev_7d INTEGER)"
        )
        db.executemany("INSERT INTO category_week VALUES (?, ?, ?, ?)", CATEGORIES)
        db.execute("CREATE TABLE stock (item TEXT PRIMARY KEY, units INTEGER, minimum INTEGER)")
        db.executemany("INSERT INTO stock VALUES (?, ?, ?)", STOCK)
    db.close()


def recover_warehouse(path):
    """Northeast and West back to last week's level: revenue_drop resolves."""
    with sqlite3.connect(path, timeout=10) as db:
        db.execute("UPDATE region_week SET revenue_7d = revenue_prev_7d WHERE region IN ('Northeast', 'West')")
    db.close()


def empty_stock(path):
    """The widgets run out: stock_low and stock_out fire for item=widgets."""
    with sqlite3.connect(path, timeout=10) as db:
        db.execute("UPDATE stock SET units = 0 WHERE item = 'widgets'")
    db.close()


def make_postgres(url):
    if not shutil.which("psql"):
        raise SmokeFailure("psql is not installed (apt-get install postgresql-client)")
    rows = ", ".join(f"('{p}', {s}, {t})" for p, s, t in SIGNUPS)
    sql = (
        "DROP TABLE IF EXISTS bi_agent_smoke_signups; "
        "CREATE TABLE bi_agent_smoke_signups (plan text PRIMARY KEY, signups integer NOT NULL, target integer NOT NULL); "
        f"INSERT INTO bi_agent_smoke_signups VALUES {rows};"
    )
    done = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise SmokeFailure(f"psql could not create the PostgreSQL table: {done.stderr.strip()}")


def drop_postgres(url):
    subprocess.run(
        ["psql", url, "-qAt", "-c", "DROP TABLE IF EXISTS bi_agent_smoke_signups"],
        capture_output=True,
        timeout=60,
    )


# -- The daemon and the CLI ------------------------------------------------------


class Daemon:
    """`bi-agent run` with its JSON log in a file, read as it grows."""

    def __init__(self, binary, config, env, workdir, name="daemon"):
        self.binary, self.config, self.env = binary, config, env
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.out_path = os.path.join(workdir, f"{name}.stdout")
        self.proc = None
        self.events = []
        self.raw_lines = []
        self._offset = 0
        self._partial = b""

    def start(self):
        self.log_file = open(self.log_path, "wb")
        self.out_file = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "run", "-c", self.config],
            stdout=self.out_file,
            stderr=self.log_file,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )

    def read(self):
        """Reads new log lines; returns every event so far."""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace")
            self.raw_lines.append(text)
            try:
                event = json.loads(text)
            except ValueError:
                event = {"message": text, "level": "RAW"}
            if not isinstance(event, dict):
                event = {"message": text, "level": "RAW"}
            if "message" not in event and isinstance(event.get("fields"), dict):
                event["message"] = event["fields"].get("message", "")
            self.events.append(event)
        return self.events

    def messages(self, text):
        return [e for e in self.read() if e.get("message") == text]

    def count(self, text):
        return len(self.messages(text))

    def wait_log(self, text, at_least=1, timeout=None):
        return wait_until(f"log line {text!r} x{at_least}", lambda: self.count(text) >= at_least, timeout)

    def cycles_completed(self):
        return self.count("Cycle completed")

    def wait_cycles(self, n, timeout=None):
        """Waits until `n` more cycles completed than now."""
        target = self.cycles_completed() + n
        self.wait_log("Cycle completed", target, timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=40):
        self.read()
        return "\n".join(self.raw_lines[-n:])

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Run:
    """Everything the phases share."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.binary = os.path.abspath(args.bin)
        self.config = os.path.join(workdir, "agent.toml")
        self.memory = os.path.join(workdir, "memory.db")
        self.warehouse = os.path.join(workdir, "warehouse.db")
        self.http_port = 0
        self.smtp_port = free_port()
        self.metrics_port = free_port()
        self.pg_url = os.environ.get("BI_AGENT_TEST_POSTGRES_URL", "")
        self.env = {}
        self.daemon = None
        # Every daemon process started (the final checks read all their logs).
        self.daemons = []
        # Everything the CLI commands printed (checked for secrets).
        self.cli_output = []
        self.http = None
        self.smtp = None
        self.utc_day = time.strftime("%Y-%m-%d", time.gmtime())
        # Approval ids by action id, as `bi-agent approvals` listed them.
        self.approvals = {}

    def write_config(self, slack_mode, broken=False):
        with open(os.path.join(HERE, "agent.toml.in")) as f:
            text = f.read()
        if slack_mode == "webhook":
            slack = 'webhook_url = "${SMOKE_SLACK_WEBHOOK_URL}"'
        else:
            slack = f'token = "${{SMOKE_SLACK_BOT_TOKEN}}"\napi_url = "http://127.0.0.1:{self.http_port}/slack/api"'
        values = {
            "MEMORY": self.memory,
            "WAREHOUSE": self.warehouse,
            "HTTP_PORT": str(self.http_port),
            "SMTP_PORT": str(self.smtp_port),
            "METRICS_PORT": str(self.metrics_port),
            "SLACK_MODE": slack,
        }
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        if broken:  # an unknown key: `bi-agent check` and a reload must refuse it
            text = text.replace("[agent]\n", "[agent]\nsmoke_bogus_key = 1\n", 1)
        left = re.findall(r"@@\w+@@", text)
        if left:
            raise SmokeFailure(f"agent.toml.in: unknown placeholders {left}")
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def cli(self, *args, timeout=60):
        done = subprocess.run(
            [self.binary, *args, "-c", self.config],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        self.cli_output.append(done.stdout + done.stderr)
        return done

    def start_daemon(self, name):
        self.daemon = Daemon(self.binary, self.config, self.env, self.workdir, name)
        self.daemons.append(self.daemon)
        self.daemon.start()
        self.daemon.wait_log("Daemon started")

    def cli_json(self, *args):
        done = self.cli(*args, "--json")
        if done.returncode != 0:
            raise SmokeFailure(f"bi-agent {' '.join(args)} --json exited {done.returncode}: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def memory_query(self, sql, params=()):
        db = sqlite3.connect(f"file:{self.memory}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()


# -- Phases ----------------------------------------------------------------------


def phase_setup(run):
    """Fakes, data world, config; then the daemon."""
    run.http = ThreadingHTTPServer(("127.0.0.1", 0), FakeHandler)
    run.http.daemon_threads = True
    run.http_port = run.http.server_address[1]
    threading.Thread(target=run.http.serve_forever, daemon=True).start()
    run.smtp = Controller(SmtpHandler(), hostname="127.0.0.1", port=run.smtp_port)
    run.smtp.start()

    if not run.pg_url:
        raise SmokeFailure(
            "BI_AGENT_TEST_POSTGRES_URL is not set: run `eval \"$(bash .ci/start-databases.sh)\"` first"
        )
    make_warehouse(run.warehouse)
    make_postgres(run.pg_url)

    SECRETS["SMOKE_SLACK_WEBHOOK_URL"] = f"http://127.0.0.1:{run.http_port}{WEBHOOK_SECRET_PATH}"
    run.env = {k: v for k, v in os.environ.items() if not k.startswith("BI_AGENT__")}
    run.env.pop("RUST_LOG", None)
    run.env.pop("BI_AGENT_CONFIG", None)
    run.env.update(SECRETS)
    run.env["SMOKE_PG_URL"] = run.pg_url
    run.write_config("webhook")

    done = run.cli("check")
    CHECKS.equal("bi-agent check exits 0", 0, done.returncode)
    if done.returncode != 0:
        raise SmokeFailure(f"bi-agent check: {done.stdout}{done.stderr}")

    run.start_daemon("daemon")
    healthz = wait_until("/healthz answers", lambda: http_get(run, "/healthz"))
    CHECKS.equal("/healthz", (200, "ok"), (healthz[0], healthz[1].strip()))
    # The first cycle's end, however it ended (a panic is caught at the end).
    wait_until(
        "the first cycle to end",
        lambda: any(
            e.get("message") in ("Cycle completed", "Cycle failed", "Cycle panicked; recorded, the daemon goes on")
            for e in run.daemon.read()
        ),
    )
    ready = http_get(run, "/readyz") or (None, "")
    CHECKS.equal("/readyz after the first cycle", (200, True), (ready[0], json_or_none(ready[1], "ready")))
    done = run.cli("health")
    CHECKS.true("bi-agent health exits 0", done.returncode == 0, done.stdout + done.stderr)
    log(f"daemon up (pid {run.daemon.proc.pid}); fakes on :{run.http_port}, SMTP :{run.smtp_port}")


def phase_scheduled_report(run):
    """hourly_summary runs in the first cycle, with a grounded narrative."""
    mail = wait_until("the hourly_summary e-mail", lambda: emails_to("reports@example.com"))[0]
    CHECKS.true("hourly_summary subject", mail["subject"] == "Hourly summary (smoke)", mail["subject"])
    CHECKS.true("hourly_summary body has the wow table", "Northeast" in mail["text"] and "South" in mail["text"])
    narrative = [r for r in RECEIVED.list("llm") if r["kind"] == "narrative"]
    CHECKS.equal("narrative requests by the first report", 1, len(narrative))
    if narrative:
        grounded = narrative[0]["answer"].split(" Revenue will")[0]
        CHECKS.true("hourly_summary carries the grounded narrative", grounded in mail["text"], mail["text"][-300:])
    CHECKS.true("hourly_summary drops the invented sentence", INVENTED not in mail["text"])


# revenue_drop's runbook_url in agent.toml.in.
RUNBOOK = "https://wiki.example.com/runbooks/revenue-drop"


def phase_fire(run):
    """Everything fires in one cycle: group message, investigations, proposals, approvals."""
    post = wait_until("revenue_drop's group message on the Slack webhook", lambda: slack_webhook_with("Northeast"))
    text = json.dumps(post)
    CHECKS.true("group message lists Northeast and West", "Northeast" in text and "West" in text, text[:400])
    CHECKS.true("group message leaves South out", "South" not in text)
    CHECKS.true("group message says 2 firing", "2 firing" in text, text[:400])
    buttons = [e for b in (post.get("blocks") or []) if b.get("type") == "actions" for e in b.get("elements", [])]
    CHECKS.equal("group message's runbook button", [RUNBOOK], [e.get("url") for e in buttons])
    wait_until("the group e-mail to director@", lambda: emails_to("director@example.com"))
    mail = emails_to("director@example.com")[0]
    CHECKS.true(
        "group e-mail lists both regions",
        "Northeast" in mail["text"] and "West" in mail["text"] and "2 firing" in mail["subject"],
        mail["subject"],
    )
    CHECKS.true("group e-mail links the runbook", f"Runbook: {RUNBOOK}" in mail["text"], mail["text"][-300:])
    wait_until("error_rate_high{job=api} on Slack", lambda: slack_webhook_with("Error rate of api"))
    wait_until("the LLM proposal on Slack", lambda: slack_webhook_with("LLM: check the API error rate"))
    wait_until("two e-mails to growth@", lambda: len(emails_to("growth@example.com")) >= 2)
    growth = " | ".join(m["text"] for m in emails_to("growth@example.com"))
    CHECKS.true("signups_short names plan pro", "Signups for pro" in growth, growth[:300])
    CHECKS.true("bounce_high mailed", "bounce rate is above" in growth, growth[:300])
    approvals = wait_until(
        "two CRM tasks waiting for approval",
        lambda: (lambda a: a if len(a) >= 2 else None)(run.cli_json("approvals")),
    )
    run.approvals = {a["action"]["id"]: a["id"] for a in approvals}
    CHECKS.equal(
        "approvals waiting",
        ["revenue_drop/crm_task/region=Northeast", "revenue_drop/crm_task/region=West"],
        sorted(run.approvals),
    )
    wait_until("two LLM summaries", lambda: llm_count("summary") >= 2)
    # The investigations ran in the firing cycle; let it finish and record.
    run.daemon.wait_cycles(1)
    dropped = [e for e in run.daemon.read() if e.get("message") == "LLM proposal dropped"]
    CHECKS.true(
        "the LLM proposal to a raw address is dropped",
        any(e.get("proposal") == "leak" and "roles, not addresses" in str(e.get("reason")) for e in dropped),
        str(dropped)[:300],
    )
    accepted = [e for e in run.daemon.read() if e.get("message") == "LLM proposal accepted"]
    CHECKS.true(
        "the valid LLM proposal is accepted",
        any(e.get("action") == "llm/ops_followup/job=api" for e in accepted),
        str(accepted)[:300],
    )


def phase_approval(run):
    """approve one CRM task, reject the other: exactly one POST arrives."""
    northeast = run.approvals.get("revenue_drop/crm_task/region=Northeast")
    west = run.approvals.get("revenue_drop/crm_task/region=West")
    if not northeast or not west:
        raise SmokeFailure(f"approvals not as expected: {run.approvals}")
    done = run.cli("approve", northeast, "--by", "smoke")
    CHECKS.equal("bi-agent approve exits 0", 0, done.returncode)
    done = run.cli("reject", west, "--reason", "smoke: not this one", "--by", "smoke")
    CHECKS.equal("bi-agent reject exits 0", 0, done.returncode)
    post = wait_until("the approved CRM POST", lambda: RECEIVED.list("crm"))[0]
    CHECKS.true("CRM POST authorized", post["authorized"])
    body = post["body"] or {}
    CHECKS.equal("CRM POST action", "revenue_drop/crm_task/region=Northeast", body.get("action_id"))
    CHECKS.equal("CRM POST params", {"queue": "sales-recovery"}, body.get("params"))
    CHECKS.equal("CRM POST links", [{"label": "Runbook", "url": RUNBOOK}], body.get("links"))
    CHECKS.true("CRM POST text", "Call the top accounts in Northeast" in str(body.get("text")), str(body)[:300])
    # The Idempotency-Key: the SHA-256 (hex) of the delivery's effect key.
    idem = post.get("idempotency_key") or ""
    CHECKS.true("CRM POST Idempotency-Key is a 64-hex SHA-256", re.fullmatch(r"[0-9a-f]{64}", idem), repr(idem))
    keys = [k for (k,) in run.memory_query("SELECT key FROM effects WHERE channel = 'webhook:crm' AND dry_run = 0")]
    CHECKS.equal(
        "CRM POST Idempotency-Key is the SHA-256 of its effect key",
        [idem],
        [hashlib.sha256(k.encode()).hexdigest() for k in keys],
    )
    left = run.cli_json("approvals")
    CHECKS.equal("approvals waiting after the decisions", [], left)


def phase_reload(run):
    """A broken file is refused; then Slack moves from the incoming webhook
    to chat.postMessage, by SIGHUP."""
    run.write_config("webhook", broken=True)
    try:
        rejected = run.daemon.count("Config reload rejected; the running config stays")
        run.daemon.proc.send_signal(signal.SIGHUP)
        run.daemon.wait_log("Config reload rejected; the running config stays", rejected + 1)
        event = run.daemon.messages("Config reload rejected; the running config stays")[-1]
        CHECKS.true("the rejected reload names the key", "smoke_bogus_key" in json.dumps(event), json.dumps(event)[:300])
        CHECKS.true("the daemon goes on after a rejected reload", run.daemon.alive())
    finally:
        # Whatever happened, the file is valid again for the CLI commands that follow.
        run.write_config("token")
    before = run.daemon.count("Config reloaded; the next cycle uses it")
    run.daemon.proc.send_signal(signal.SIGHUP)
    run.daemon.wait_log("Config reloaded; the next cycle uses it", before + 1)
    CHECKS.equal("reloads rejected", 1, run.daemon.count("Config reload rejected; the running config stays"))
    # The cycle running at the reload keeps the old config; the one after uses the new.
    run.daemon.wait_cycles(2)


def phase_resolve(run):
    """The warehouse recovers: two resolution messages through chat.postMessage."""
    recover_warehouse(run.warehouse)
    wait_until("two resolution messages via chat.postMessage", lambda: len(slack_api_to("#ops")) >= 2)
    texts = " | ".join(json.dumps(p["body"]) for p in slack_api_to("#ops"))
    CHECKS.true(
        "resolutions name Northeast and West",
        "Revenue in Northeast is back to normal" in texts and "Revenue in West is back to normal" in texts,
        texts[:400],
    )
    CHECKS.true("chat.postMessage authorized", all(p["authorized"] for p in RECEIVED.list("slack_api")))
    wait_until("the resolution cycle's LLM planning request", lambda: llm_count("plan") >= 2)
    run.daemon.wait_cycles(1)


def phase_cli_report(run):
    """`bi-agent report weekly_review`, live: e-mail + chat.postMessage, with narrative."""
    done = run.cli("report", "weekly_review")
    CHECKS.equal("bi-agent report exits 0", 0, done.returncode)
    CHECKS.true(
        "bi-agent report says sent",
        "outcome: sent" in done.stdout,
        f"stdout ends {done.stdout.strip()[-200:]!r}, stderr starts {done.stderr.strip()[:200]!r}",
    )
    narratives = [r for r in RECEIVED.list("llm") if r["kind"] == "narrative"]
    CHECKS.equal("narrative requests after the CLI report", 2, len(narratives))
    if len(narratives) >= 2:
        grounded = narratives[-1]["answer"].split(" Revenue will")[0]
        CHECKS.true("CLI report prints the grounded narrative", grounded in done.stdout, done.stdout[-400:])
    CHECKS.true("CLI report drops the invented sentence", INVENTED not in done.stdout)
    wait_until("weekly_review e-mail", lambda: emails_to("analysts@example.com"))
    wait_until("weekly_review on #analytics", lambda: slack_api_to("#analytics"))
    mail = emails_to("analysts@example.com")[0]
    CHECKS.equal("weekly_review subject", "Weekly review (smoke)", mail["subject"])


STOCK_LOW = "stock_low/notify/item=widgets"
STOCK_OUT = "stock_out/notify/item=widgets"


def phase_deliveries(run):
    """Exactly once, per target (issue 13): a partial delivery retried by a
    later cycle, and an unknown one settled by a person."""
    SLACK_FAULTS.refuse("#stock")
    SLACK_FAULTS.hang_up("#purchasing", 1)
    empty_stock(run.warehouse)

    # The firing cycle: e-mail delivered, #stock refused (every in-cycle
    # attempt), #purchasing taken and hung up on.
    try:
        low = wait_until("stock_low recorded partial", lambda: live_outcome(run, STOCK_LOW, "partial"), interval=0.2)
    finally:
        # Seen partial (or given up on): #stock answers again, for the retry.
        refused = RECEIVED.count("slack_api_refused")
        SLACK_FAULTS.refuse("#stock", False)
    CHECKS.equal("#stock refused within the firing cycle (guardrails.retry_attempts)", 3, refused)
    CHECKS.equal("stock_low e-mailed in the firing cycle", 1, len(emails_to("stock@example.com")))
    status = low["outcome"]["status"]
    CHECKS.equal("stock_low partial: delivered of targets", (1, 2), (status.get("delivered"), status.get("of")))
    CHECKS.true(
        "stock_low partial names #stock failed and its retry",
        re.search(r"slack:#stock failed: .*HTTP 500.* \(retrying at \d\d:\d\d:\d\d UTC\)", status.get("detail", "")),
        status.get("detail"),
    )
    warned = [
        e.get("status", "")
        for e in run.daemon.messages("Action not fully delivered")
        if e.get("action") == STOCK_LOW and e.get("level") == "WARN"
    ]
    CHECKS.true(
        "logged as a warning: stock_low sent 1 of 2, #stock retrying",
        len(warned) == 1
        and re.match(r"sent 1 of 2: slack:#stock failed: .* \(retrying at \d\d:\d\d:\d\d UTC\)$", warned[0]),
        str(warned)[:400],
    )
    done = run.cli("actions", "--limit", "100")
    lines = done.stdout.splitlines()
    at = next((i for i, l in enumerate(lines) if STOCK_LOW in l), None)
    line = lines[at] if at is not None else ""
    CHECKS.true(
        "bi-agent actions shows stock_low partial, 1 of 2, retrying",
        line.split()[2:3] == ["partial"] and "(1 of 2): slack:#stock failed" in line and "retrying at" in line,
        line or done.stdout[-600:],
    )
    targets = lines[at + 1 : at + 3] if at is not None else []
    CHECKS.true(
        "bi-agent actions shows #stock failed (attempt 3, retrying) and the e-mail sent",
        any("slack:#stock" in l and " failed (" in l and "attempt 3, retrying at" in l for l in targets)
        and any("email:stock@example.com" in l and " sent" in l for l in targets),
        "\n".join(targets),
    )
    out = wait_until("stock_out recorded unknown", lambda: live_outcome(run, STOCK_OUT, "unknown"), interval=0.2)
    CHECKS.true(
        "stock_out unknown names #purchasing",
        "slack:#purchasing" in json.dumps(out["outcome"]["status"]),
        json.dumps(out["outcome"]["status"])[:300],
    )
    CHECKS.equal("#purchasing requests taken and hung up on", 1, RECEIVED.count("slack_api_unanswered"))

    unknown = run.cli_json("actions", "--unknown")
    CHECKS.equal(
        "actions --unknown --json: the #purchasing delivery", ["slack:#purchasing"], [e.get("target") for e in unknown]
    )
    key = unknown[0]["key"] if unknown else ""
    done = run.cli("actions", "--unknown")
    settle = f"settle: bi-agent resolve-effect '{key}' --sent | --resend"
    CHECKS.true(
        "actions --unknown lists it once, with the command that settles it",
        done.returncode == 0 and done.stdout.count("settle: ") == 1 and settle in done.stdout,
        done.stdout[-600:],
    )
    done = run.cli("status")
    CHECKS.true(
        "status: may or may not have arrived (1)",
        "May or may not have arrived (1; bi-agent actions --unknown):" in done.stdout,
        done.stdout[-800:],
    )
    CHECKS.true("status: being retried (1)", "Being retried (1):" in done.stdout, done.stdout[-800:])
    # The gauges follow at the end of each cycle; #stock's retry is due 5 s
    # after its firing cycle began, so both are open for a few cycles.
    gauges = wait_until(
        "/metrics: one delivery retrying, one unknown",
        lambda: (lambda g: g if g.get("retrying") == 1 and g.get("unknown") == 1 else None)(open_deliveries(run)),
        timeout=10,
        interval=0.2,
    )
    CHECKS.equal("metrics: bi_agent_deliveries_open while open", {"retrying": 1, "unknown": 1, "held": 0}, gauges)

    # A later cycle retries #stock (backoff 5 s): delivered, exactly once.
    wait_until("stock_low on #stock, retried by a later cycle", lambda: slack_api_to("#stock"), timeout=15)
    run.daemon.wait_log("Delivered on a retry")
    run.daemon.wait_cycles(1)
    low = live_outcomes(run, STOCK_LOW)
    CHECKS.equal("stock_low: one outcome record, sent", ["sent"], [o["outcome"]["status"]["status"] for o in low])
    CHECKS.equal(
        "memory: stock_low outcome records",
        [("sent",)],
        run.memory_query("SELECT status FROM action_outcomes WHERE action_id = ? AND dry_run = 0", (STOCK_LOW,)),
    )
    deliveries = {
        f"{d['target'].get('kind')}:{d['target'].get('to')}": (d["status"]["status"], d.get("attempts"))
        for d in (low[0]["outcome"].get("deliveries") if low else [])
    }
    CHECKS.equal(
        "stock_low deliveries: (status, attempts) per target",
        {"slack:#stock": ("sent", EXPECTED["slack_api_refused"] + 1), "email:stock@example.com": ("sent", 1)},
        deliveries,
    )

    # The unknown delivery was never re-sent meanwhile (several cycles).
    CHECKS.equal(
        "#purchasing not re-sent while unknown (requests taken, answered)",
        (1, 0),
        (RECEIVED.count("slack_api_unanswered"), len(slack_api_to("#purchasing"))),
    )
    CHECKS.equal(
        "memory: the #purchasing effect still unknown",
        [("unknown",)],
        run.memory_query("SELECT status FROM effects WHERE key = ? AND dry_run = 0", (key,)),
    )

    # A person asks for a resend: the next cycle sends it once more.
    done = run.cli("resolve-effect", key, "--resend")
    CHECKS.true(
        "resolve-effect --resend exits 0",
        done.returncode == 0 and "will be sent again" in done.stdout,
        (done.stdout + done.stderr)[-300:],
    )
    wait_until("stock_out on #purchasing after the resend", lambda: slack_api_to("#purchasing"))
    run.daemon.wait_cycles(1)
    out = live_outcomes(run, STOCK_OUT)
    CHECKS.equal("stock_out: one outcome record, sent", ["sent"], [o["outcome"]["status"]["status"] for o in out])
    CHECKS.equal(
        "memory: stock_out outcome records",
        [("sent",)],
        run.memory_query("SELECT status FROM action_outcomes WHERE action_id = ? AND dry_run = 0", (STOCK_OUT,)),
    )
    # A delivery settled by a later cycle is recorded like one sent at once:
    # its outcome record carries the Slack ts the effect log keeps.
    for action, channel in ((STOCK_LOW, "#stock"), (STOCK_OUT, "#purchasing")):
        kept = run.memory_query(
            "SELECT reference FROM effects WHERE action_id = ? AND target = ? AND dry_run = 0",
            (action, f"slack:{channel}"),
        )
        recorded = [
            d.get("reference")
            for o in live_outcomes(run, action)
            for d in o["outcome"].get("deliveries", [])
            if d["target"].get("to") == channel
        ]
        CHECKS.equal(f"{action}: the retried delivery's Slack ts in its outcome record", [r for (r,) in kept], recorded)
    CHECKS.equal("actions --unknown after the resend", [], run.cli_json("actions", "--unknown"))
    done = run.cli("resolve-effect", key, "--sent")
    CHECKS.equal("resolve-effect --sent on a settled delivery exits 1", 1, done.returncode)
    CHECKS.true(
        "resolve-effect --sent says it is sent already", f"effect {key} is sent;" in done.stderr, done.stderr[-300:]
    )


def phase_settle(run):
    """A few more cycles: nothing else may arrive."""
    run.daemon.wait_cycles(3)


def phase_status(run):
    """`bi-agent status --json` and the memory: every cycle ok, LLM accounted."""
    status = run.cli_json("status")
    cycles = status.get("cycles") or []
    CHECKS.true("status lists cycles", len(cycles) > 0)
    CHECKS.equal("status: recent cycles all ok", [], [c for c in cycles if c.get("status") != "ok"])
    firing = sorted(f"{f['rule']}{json.dumps(f.get('labels'), sort_keys=True)}" for f in status.get("firing", []))
    CHECKS.equal(
        "status: firing after the resolution",
        [
            'bounce_high{}',
            'error_rate_high{"job": "api"}',
            'signups_short{"plan": "pro"}',
            'stock_low{"item": "widgets"}',
            'stock_out{"item": "widgets"}',
        ],
        firing,
    )
    CHECKS.equal("status: pending approvals", [], status.get("pending_approvals"))
    if time.strftime("%Y-%m-%d", time.gmtime()) == run.utc_day:  # "today" is a UTC day
        llm = status.get("llm_today") or {}
        CHECKS.equal("status: LLM calls today", 7, llm.get("calls"))
        CHECKS.equal("status: LLM tokens today", expected_tokens(all_processes=True), llm.get("tokens"))
        CHECKS.equal("status: LLM errors today", 0, llm.get("errors"))

    done = run.cli("status")
    CHECKS.true("bi-agent status (text) exits 0", done.returncode == 0, done.stderr[-300:])
    CHECKS.true("bi-agent status (text) lists 5 firing", "Firing (5):" in done.stdout, done.stdout[-600:])
    actions = run.cli_json("actions", "--limit", "100")
    CHECKS.true("bi-agent actions --json lists actions", isinstance(actions, list) and len(actions) > 0)
    run.cli_json("patterns")
    plan = run.cli_json("plan")
    CHECKS.true("bi-agent plan --json answers", isinstance(plan, dict), str(plan)[:200])

    by_status = dict(run.memory_query("SELECT status, COUNT(*) FROM cycles GROUP BY status"))
    CHECKS.equal("memory: cycles not ok", {}, {k: v for k, v in by_status.items() if k != "ok"})
    bad = run.memory_query("SELECT id, status, errors FROM cycles WHERE status != 'ok' ORDER BY id LIMIT 5")
    if bad:
        log(f"cycles not ok: {bad}")
    calls = {
        (p, o): (n, pt, ct)
        for p, o, n, pt, ct in run.memory_query(
            "SELECT purpose, outcome, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) "
            "FROM llm_calls GROUP BY purpose, outcome"
        )
    }
    plan_p, plan_c = LLM_USAGE["plan"]
    sum_p, sum_c = LLM_USAGE["summary"]
    nar_p, nar_c = LLM_USAGE["narrative"]
    CHECKS.equal(
        "memory: LLM calls by purpose and outcome (count, prompt, completion tokens)",
        {
            ("plan", "ok"): (3, 3 * plan_p, 3 * plan_c),
            ("summary", "ok"): (4, 2 * sum_p + 2 * nar_p, 2 * sum_c + 2 * nar_c),
        },
        calls,
    )
    proposals = run.memory_query(
        "SELECT proposals_valid, proposals_dropped FROM llm_calls WHERE purpose = 'plan' ORDER BY id"
    )
    CHECKS.equal("memory: proposals (valid, dropped) per planning call", [(1, 1), (0, 0), (0, 0)], proposals)
    summaries = run.memory_query(
        "SELECT action_id, json_extract(outcome, '$.findings.summary') FROM action_outcomes "
        "WHERE kind = 'investigate' ORDER BY action_id"
    )
    CHECKS.equal(
        "memory: investigations",
        ["revenue_drop/investigate/region=Northeast", "revenue_drop/investigate/region=West"],
        [a for a, _ in summaries],
    )
    for action, summary in summaries:
        CHECKS.true(
            f"memory: {action} has a grounded summary",
            bool(summary) and summary.startswith("The largest figure in the data is") and INVENTED not in summary,
            repr(summary),
        )
    approvals = sorted(run.memory_query("SELECT action_id, status FROM approvals"))
    CHECKS.equal(
        "memory: approvals",
        [
            ("revenue_drop/crm_task/region=Northeast", "executed"),
            ("revenue_drop/crm_task/region=West", "rejected"),
        ],
        approvals,
    )
    effects = dict(
        run.memory_query(
            "SELECT channel, COUNT(*) FROM effects WHERE dry_run = 0 AND status = 'sent' GROUP BY channel"
        )
    )
    CHECKS.equal(
        "memory: sent effects per channel",
        {
            "slack": EXPECTED["slack_webhook_posts"] + EXPECTED["slack_api_posts"],
            "email": EXPECTED["emails"],
            "webhook:crm": EXPECTED["crm_posts"],
        },
        effects,
    )
    not_sent = run.memory_query("SELECT key, status, error FROM effects WHERE status NOT IN ('sent') LIMIT 5")
    CHECKS.equal("memory: effects not sent", [], not_sent)


def phase_metrics(run):
    """/metrics: a few bi_agent_* families with exact values."""
    got = http_get(run, "/metrics")
    if not got or got[0] != 200:
        CHECKS.true("/metrics answers 200", False, str(got)[:200])
        return
    metrics = parse_metrics(got[1])

    def value(name, **labels):
        return metrics.get((name, frozenset(labels.items())))

    CHECKS.true("metrics: ok cycles counted", (value("bi_agent_cycles_total", status="ok") or 0) >= 5)
    for status in ("failed", "degraded", "interrupted"):
        CHECKS.equal(f"metrics: {status} cycles", None, value("bi_agent_cycles_total", status=status))
    actions = {
        ("notify", "sent"): 8,
        ("investigate", "sent"): 2,
        ("webhook", "pending_approval"): 2,
        ("webhook", "sent"): 1,
        ("report", "sent"): 1,
        # stock_low and stock_out as their firing cycle recorded them (a
        # later settlement updates the record, it is not another action).
        ("notify", "partial"): 1,
        ("notify", "unknown"): 1,
    }
    seen = {
        (dict(labels)["kind"], dict(labels)["outcome"]): v
        for (name, labels), v in metrics.items()
        if name == "bi_agent_actions_total" and dict(labels).get("dry_run") == "false"
    }
    CHECKS.equal("metrics: bi_agent_actions_total (live) by kind and outcome", actions, seen)
    # Messages, not instances: revenue_drop's group message names two
    # instances (two notify actions) and counts once.
    messages = {
        dict(labels)["outcome"]: v
        for (name, labels), v in metrics.items()
        if name == "bi_agent_messages_total" and dict(labels).get("dry_run") == "false"
    }
    CHECKS.equal(
        "metrics: bi_agent_messages_total (live) counts the group message once",
        {"sent": 7 + 1 + 1, "partial": 1, "unknown": 1},
        messages,
    )
    CHECKS.equal("metrics: LLM calls ok", 6, value("bi_agent_llm_calls_total", outcome="ok"))
    CHECKS.equal(
        "metrics: LLM calls not ok",
        {},
        {
            dict(labels)["outcome"]: v
            for (name, labels), v in metrics.items()
            if name == "bi_agent_llm_calls_total" and dict(labels).get("outcome") != "ok"
        },
    )
    CHECKS.equal("metrics: LLM tokens", expected_tokens(all_processes=False), value("bi_agent_llm_tokens_total"))
    CHECKS.equal("metrics: approvals pending", 0, value("bi_agent_approvals_pending"))
    CHECKS.equal("metrics: firing instances", 5, value("bi_agent_alert_instances", state="firing"))
    # Per target, as settled in this daemon (the CLI report's two are another
    # process): #stock once retrying, then sent; #purchasing once unknown,
    # then sent after the resend.
    deliveries = {
        ("slack", "sent"): EXPECTED["slack_webhook_posts"] + EXPECTED["slack_api_posts"] - 1,
        ("slack", "retrying"): 1,
        ("slack", "unknown"): 1,
        ("email", "sent"): EXPECTED["emails"] - 1,
        ("webhook:crm", "sent"): EXPECTED["crm_posts"],
    }
    seen = {
        (dict(labels)["channel"], dict(labels)["status"]): v
        for (name, labels), v in metrics.items()
        if name == "bi_agent_deliveries_total"
    }
    CHECKS.equal("metrics: bi_agent_deliveries_total by channel and status", deliveries, seen)
    open_now = {
        dict(labels)["status"]: v for (name, labels), v in metrics.items() if name == "bi_agent_deliveries_open"
    }
    CHECKS.equal("metrics: bi_agent_deliveries_open at the end", {"retrying": 0, "unknown": 0, "held": 0}, open_now)
    errors = {k: v for k, v in metrics.items() if k[0] == "bi_agent_source_errors_total" and v}
    CHECKS.equal("metrics: source errors", {}, errors)
    for source in ("sales", "signups", "web", "errors", "stock"):
        CHECKS.true(
            f"metrics: {source} observed ok",
            (value("bi_agent_observations_total", source=source, status="ok") or 0) >= 5,
        )
    CHECKS.true("metrics: memory size", (value("bi_agent_memory_db_bytes") or 0) > 0)


def phase_stop(run):
    """SIGTERM: a clean exit 0 and `Daemon stopped`."""
    code = run.daemon.stop(signal.SIGTERM, timeout=20)
    CHECKS.equal("exit code after SIGTERM", 0, code)
    CHECKS.equal("`Daemon stopped` logged", 1, run.daemon.count("Daemon stopped"))
    stopped = run.daemon.messages("Daemon stopped")
    if stopped:
        CHECKS.equal("Daemon stopped: failed cycles", 0, stopped[0].get("failed"))


def phase_restart(run):
    """The daemon again, on the same memory: a few cycles and nothing is sent
    again (exactly once across restarts), then a clean stop."""
    before = receiver_counts()
    run.start_daemon("daemon-restarted")
    run.daemon.wait_cycles(3)
    code = run.daemon.stop(signal.SIGTERM, timeout=20)
    CHECKS.equal("exit code of the restarted daemon after SIGTERM", 0, code)
    CHECKS.equal("receivers after the restart: nothing new", before, receiver_counts())
    by_status = dict(run.memory_query("SELECT status, COUNT(*) FROM cycles GROUP BY status"))
    CHECKS.equal("memory: cycles not ok after the restart", {}, {k: v for k, v in by_status.items() if k != "ok"})


def phase_rule_semantics(run):
    """Issue 15 through the release binary, on its own SQLite world: check
    catches template typos and shows a truncated source; a vanished entity
    resolves after two answers without it; an outage keeps what fires."""
    home = os.path.join(run.workdir, "semantics")
    os.makedirs(home, exist_ok=True)
    db = os.path.join(home, "risk.db")
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE at_risk (customer TEXT, score REAL);"
        "INSERT INTO at_risk VALUES ('c1', 0.9), ('c2', 0.8), ('c3', 0.7);"
        "CREATE TABLE daily (day TEXT, region TEXT, revenue REAL);"
        "INSERT INTO daily VALUES ('2026-11-18', 'East', 50), ('2026-11-19', 'East', 10);"
    )
    con.commit()

    def config(extra_source="", message="{{ customer }} is at risk ({{ score | percent }})"):
        text = f"""
[agent]
name = "semantics"
interval = "1s"
[memory]
path = "{home}/memory.db"
forget_instances_after = "2s"
[channels.slack]
kind = "slack"
webhook_url = "http://127.0.0.1:9/never"
[roles]
ops = ["slack:#ops"]
[meta.source_failing]
cycles = 1
to = ["ops"]
[sources.risk]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT customer, score FROM at_risk ORDER BY customer"
{extra_source}
[sources.risk_again]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT customer, score FROM at_risk"
[sources.daily]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT day, region, revenue FROM daily"
time = "day"
[[rules]]
name = "low_day"
source = "daily"
when = "revenue < 20.0"
group = false
  [[rules.actions]]
  id = "tell"
  kind = "notify"
  to = ["ops"]
  message = "{{{{ region }}}} sold {{{{ revenue }}}} on {{{{ time }}}}"
[[rules]]
name = "churn_risk"
source = "risk"
when = "score > 0.5"
  [[rules.actions]]
  id = "tell"
  kind = "notify"
  to = ["ops"]
  message = "{message}"
"""
        path = os.path.join(home, "agent.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def cli(path, *args):
        return subprocess.run(
            [run.binary, *args, "-c", path], capture_output=True, text=True, env=run.env, timeout=60
        )

    typo = cli(config(message="{{ customr }} at {{ score | percnt }}"), "check")
    CHECKS.equal("check: a template typo exits 2", 2, typo.returncode)
    CHECKS.true(
        "check names the unknown variable and filter",
        "rules.churn_risk.actions.tell.message: unknown variable `customr`" in typo.stderr
        and "unknown filter `percnt`" in typo.stderr,
        typo.stderr,
    )
    cut = cli(config(extra_source="max_rows = 2"), "check", "--connect")
    CHECKS.true("check --connect shows a truncated source", "truncated" in cut.stdout, cut.stdout + cut.stderr)

    prom = os.path.join(home, "prom.toml")
    with open(prom, "w") as f:
        f.write(
            f"""
[agent]
name = "semantics"
[memory]
path = "{home}/prom-memory.db"
[sources.errors]
kind = "http"
format = "prometheus"
url = "http://127.0.0.1:{run.http_port}/prom/api/v1/query"
query = "{PROM_QUERY}"
[[rules]]
name = "errors_high"
source = "errors"
when = "valeu > 0.05"
"""
        )
    typo = cli(prom, "check", "--connect")
    CHECKS.equal("check --connect: a column the Prometheus answer lacks exits 2", 2, typo.returncode)
    CHECKS.true(
        "check --connect names it and what the source answered",
        'rules.errors_high.when: unknown column "valeu": source "errors" answered with job, value' in typo.stderr,
        typo.stderr,
    )

    dupes = os.path.join(home, "dupes.toml")
    with open(dupes, "w") as f:
        f.write(
            f"""
[agent]
name = "semantics"
[memory]
path = "{home}/dupes-memory.db"
[sources.dupes]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT 'East' AS region, 1 AS v UNION ALL SELECT 'East', 2"
"""
        )
    done = cli(dupes, "check", "--connect")
    CHECKS.true(
        "two rows with one label set are an error naming it",
        done.returncode == 1 and "two rows with the same labels {region=East}" in done.stdout,
        done.stdout + done.stderr,
    )

    path = config()

    def firing():
        done = cli(path, "status", "--json")
        data = json.loads(done.stdout) if done.returncode == 0 else {}
        return {(i["labels"].get("customer"), i["state"]) for i in data.get("firing", []) if i["rule"] == "churn_risk"}

    def cycle():
        done = cli(path, "run", "--once", "--dry-run")
        CHECKS.true("run --once exits 0", done.returncode == 0, done.stderr[-500:])

    cycle()
    CHECKS.equal("three customers fire", {("c1", "firing"), ("c2", "firing"), ("c3", "firing")}, firing())
    con.execute("DELETE FROM at_risk WHERE customer = 'c1'")
    con.commit()
    cycle()
    CHECKS.true("one answer without c1 keeps it firing", ("c1", "firing") in firing(), firing())
    cycle()
    CHECKS.equal("two answers without c1 resolve it", {("c2", "firing"), ("c3", "firing")}, firing())

    def stored(customer):
        mem = sqlite3.connect(os.path.join(home, "memory.db"))
        try:
            return mem.execute(
                "SELECT state, episode FROM alert_instances WHERE rule = 'churn_risk' AND labels LIKE ?",
                (f'%"{customer}"%',),
            ).fetchall()
        finally:
            mem.close()

    # Resolved, then inactive, then forgotten once quiet for 2 s.
    cycle()
    time.sleep(2.5)
    cycle()
    CHECKS.equal("a quiet instance is forgotten", [], stored("c1"))
    # c1 is at risk again: a new episode beyond the forgotten one, sent again.
    con.execute("INSERT INTO at_risk VALUES ('c1', 0.95)")
    con.commit()
    cycle()
    CHECKS.equal("a returning entity fires as a new episode", [("firing", 2)], stored("c1"))

    con.execute("ALTER TABLE at_risk RENAME TO gone")
    con.commit()
    cycle()
    CHECKS.equal(
        "an outage keeps what fires, held", {("c1", "error"), ("c2", "error"), ("c3", "error")}, firing()
    )
    text = cli(path, "status").stdout
    CHECKS.true("status marks them held", "held: its source is failing" in text, text)

    done = cli(path, "actions", "--json", "--limit", "100")
    planned = [o["action"] for o in json.loads(done.stdout or "[]")]
    ids = {a["id"] for a in planned}
    CHECKS.true(
        "two sources failing together: one message",
        "source_failing/notify/sources=risk,risk_again" in ids
        and not any(i.startswith("source_failing/notify/source=") for i in ids),
        sorted(ids),
    )
    day = [a.get("message") for a in planned if a["id"].startswith("low_day/tell/")]
    CHECKS.equal("a series message says which day", ["East sold 10 on 2026-11-19"], day)
    con.close()


def own_agent_cli(run, config, *args):
    """The release binary on a phase's own agent config."""
    return subprocess.run([run.binary, *args, "-c", config], capture_output=True, text=True, env=run.env, timeout=120)


def phase_scale(run):
    """Issue 16 through the release binary: a series backfill streams into
    memory (every point once, none twice), `incremental = true` reads only
    from the newest point held, and `plan` counts a large instance set."""
    home = os.path.join(run.workdir, "scale")
    os.makedirs(home, exist_ok=True)
    db = os.path.join(home, "series.db")
    con = sqlite3.connect(db)
    # 30,000 points: 300 entities x 100 days, ending yesterday.
    con.executescript(
        "CREATE TABLE daily (day TEXT, entity TEXT, value REAL);"
        "WITH RECURSIVE d(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM d WHERE n < 100),"
        " e(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM e WHERE m < 299)"
        " INSERT INTO daily SELECT date('now', '-' || n || ' days'), 'e' || m, 100 + m FROM d, e;"
    )
    con.commit()
    con.close()

    def config(incremental):
        where = " WHERE day >= date(?1)" if incremental else ""
        path = os.path.join(home, f"agent-{incremental}.toml")
        with open(path, "w") as f:
            f.write(f"""
[agent]
name = "scale"
interval = "1m"
[memory]
path = "{home}/memory.db"
retention = "400d"
[channels.slack]
kind = "slack"
webhook_url = "http://127.0.0.1:9/never"
[roles]
ops = ["slack:#ops"]
[sources.daily]
kind = "sql"
url = "sqlite://{db}?mode=ro"
time = "day"
incremental = {"true" if incremental else "false"}
sql = "SELECT day, entity, value FROM daily{where}"
[[rules]]
name = "big"
source = "daily"
when = "value > 0.0"
group = false
  [[rules.actions]]
  id = "tell"
  kind = "notify"
  to = ["ops"]
  message = "{{{{ entity }}}} is {{{{ value }}}}"
""")
        return path

    def cli(path, *args):
        return own_agent_cli(run, path, *args)

    def points():
        mem = sqlite3.connect(os.path.join(home, "memory.db"))
        try:
            return mem.execute("SELECT COUNT(*) FROM metric_points").fetchone()[0]
        finally:
            mem.close()

    full, incremental = config(False), config(True)
    done = cli(full, "run", "--once", "--dry-run")
    CHECKS.true("backfill cycle exits 0", done.returncode == 0, done.stderr[-500:])
    CHECKS.equal("a 30,000-point backfill is stored once", 30000, points())
    done = cli(full, "run", "--once", "--dry-run")
    CHECKS.equal("re-reading the same points stores nothing new", 30000, points())
    plan = cli(incremental, "plan", "--json")
    observed = json.loads(plan.stdout or "{}").get("observations", [{}])[0]
    CHECKS.equal(
        "incremental: only the newest day is read again",
        (300, 0),
        (observed.get("rows"), observed.get("history_points")),
    )
    # Retention of the record of what was done: rows from 500 days ago
    # (retention is 400 d) go on the next cycle; what was done today stays,
    # and so does the newest notification of an action, however old.
    mem = sqlite3.connect(os.path.join(home, "memory.db"))
    old = "2024-01-01T00:00:00.000Z"
    recent_outcomes = mem.execute("SELECT COUNT(*) FROM action_outcomes").fetchone()[0]
    mem.execute(
        "INSERT INTO action_outcomes (cycle_id, action_id, kind, origin, status, dry_run, started_at,"
        " duration_ms, action, outcome) VALUES (NULL, 'old/tell/-', 'notify', 'rule', 'sent', 0, ?, 0, '{}', '{}')",
        (old,),
    )
    for key, repeat in (("old-0", 0), ("old-1", 1)):
        mem.execute(
            "INSERT INTO effects (key, dry_run, action_id, episode, repeat, channel, target, status,"
            " created_at, updated_at) VALUES (?, 0, 'report/old', 1, ?, 'slack', '#ops', 'sent', ?, ?)",
            (key, repeat, old, old),
        )
    mem.execute(
        "INSERT INTO llm_calls (at, purpose, model, mode, outcome) VALUES (?, 'plan', 'm', 'none', 'ok')", (old,)
    )
    # The record is pruned at most once an hour: the last pass was two hours ago.
    mem.execute(
        "UPDATE agent_state SET value = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 hours')"
        " WHERE key = 'records_pruned_at'"
    )
    mem.commit()
    mem.close()
    done = cli(full, "run", "--once", "--dry-run")
    mem = sqlite3.connect(os.path.join(home, "memory.db"))
    try:
        CHECKS.equal(
            "retention prunes old outcomes, superseded effects and LLM calls, and keeps the rest",
            (recent_outcomes + 10, ["old-1"], 0),
            (
                mem.execute("SELECT COUNT(*) FROM action_outcomes").fetchone()[0],
                [r[0] for r in mem.execute("SELECT key FROM effects WHERE action_id = 'report/old'")],
                mem.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0],
            ),
        )
    finally:
        mem.close()
    text = cli(incremental, "plan").stdout
    CHECKS.true(
        "plan counts a large instance set and names the first few",
        "by rule: big × 300" in text
        and "… and 280 more" in text
        and len(text.split("Plan (")[0].splitlines()) < 30
        and "Deferred (290):" in text
        and "… and 270 more" in text,
        text[:2000],
    )
    as_json = json.loads(cli(incremental, "plan", "--json").stdout)
    replanned = as_json.get("plan", {}).get("replanned", {})
    CHECKS.equal(
        "plan --json keeps only the ids of notifications over the cap that are planned again",
        (290, 0, True),
        (
            len(replanned.get("ids", [])),
            len(as_json.get("plan", {}).get("deferred", [])),
            "agent.max_actions_per_cycle" in replanned.get("reason", ""),
        ),
    )


LISTS_ADDRESS = "lists@example.com"


def phase_lists(run):
    """Issue 17, parts 1 and 2, through the release binary: 60 churners at a
    cap of 3 actions go out in one group message in one cycle; the e-mail
    attaches all 60 as CSV, the webhook gets all 60, `actions ID --list`
    prints them, and `actions`/`status` count one message."""
    home = os.path.join(run.workdir, "lists")
    os.makedirs(home, exist_ok=True)
    db = os.path.join(home, "crm.db")
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE churn (customer TEXT, score REAL);"
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 59)"
        " INSERT INTO churn SELECT printf('cust%02d', i), 0.5 + i / 100.0 FROM n;"
    )
    con.commit()
    con.close()
    path = os.path.join(home, "agent.toml")
    with open(path, "w") as f:
        f.write(f"""
[agent]
name = "lists"
interval = "1m"
max_actions_per_cycle = 3
[memory]
path = "{home}/memory.db"
[channels.email]
kind = "email"
smtp_url = "smtp://127.0.0.1:{run.smtp_port}"
from = "bi-agent@example.com"
[channels.slack]
kind = "slack"
token = "${{SMOKE_SLACK_BOT_TOKEN}}"
api_url = "http://127.0.0.1:{run.http_port}/slack/api"
[endpoints.lists]
url = "http://127.0.0.1:{run.http_port}/lists/hook"
[endpoints.crm]
url = "http://127.0.0.1:{run.http_port}/lists/crm"
body = '''{{"task": {{{{ subject }}}}, "count": {{{{ instances | length }}}}, "kind": "churn-review"}}'''
[roles]
ops = ["email:{LISTS_ADDRESS}", "webhook:lists", "slack:#lists", "webhook:crm"]
[sources.crm]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT customer, score FROM churn"
[[rules]]
name = "churn"
source = "crm"
when = "score > 0.4"
  [[rules.actions]]
  id = "tell"
  kind = "notify"
  to = ["ops"]
  message = "{{{{ customer }}}} may churn ({{{{ score }}}})"
""")

    def cli(*args):
        return own_agent_cli(run, path, *args)

    done = cli("run", "--once")
    CHECKS.true("lists: the cycle exits 0", done.returncode == 0, done.stderr[-500:])
    mail = wait_until("the group e-mail to lists@", lambda: emails_to(LISTS_ADDRESS))
    CHECKS.equal("lists: one e-mail for 60 instances at a cap of 3", 1, len(mail))
    CHECKS.true("lists: its subject counts all 60", "60 firing" in mail[0]["subject"], mail[0]["subject"])
    attachments = mail[0].get("attachments") or []
    csv_rows = attachments[0][2].splitlines() if attachments else []
    CHECKS.equal(
        "lists: the e-mail attaches all 60 as CSV",
        ("instances-churn-tell-group.csv", "text/csv", 61),
        (attachments[0][0], attachments[0][1], len(csv_rows)) if attachments else None,
    )
    hooks = RECEIVED.list("lists_hook")
    CHECKS.equal("lists: the webhook gets all 60", [60], [len(h.get("instances") or []) for h in hooks])
    posts = RECEIVED.list("lists_slack")
    CHECKS.equal("lists: one Slack message to #lists", 1, len(posts))
    uploaded = RECEIVED.list("slack_upload")
    complete = RECEIVED.list("slack_upload_complete")
    CHECKS.equal(
        "lists: the CSV goes up to Slack (61 lines, no token to the upload URL) and into the message's thread",
        (1, 61, None, "C0SMOKE", "1700000000.000001", True),
        (
            len(uploaded),
            len(uploaded[0]["bytes"].decode().splitlines()) if uploaded else 0,
            uploaded[0]["authorization"] if uploaded else "?",
            (complete[0]["body"] or {}).get("channel_id") if complete else None,
            (complete[0]["body"] or {}).get("thread_ts") if complete else None,
            bool(complete) and complete[0]["authorized"],
        ),
    )
    crm = RECEIVED.list("lists_crm")
    CHECKS.equal(
        "lists: a body template writes the CRM's own JSON",
        [(60, "churn-review", True)],
        [(c.get("count"), c.get("kind"), "60 firing" in str(c.get("task"))) for c in crm],
    )
    listed = cli("actions", "churn/tell/group", "--list", "--csv")
    CHECKS.equal("lists: actions ID --list --csv prints all 60", 61, len(listed.stdout.splitlines()))
    shown = cli("actions", "--limit", "100").stdout
    CHECKS.true(
        "lists: actions shows the message once and counts its members",
        "+ 59 more instances in the same message" in shown and shown.count("churn/tell/") == 2,
        shown[:600],
    )
    status = cli("status").stdout
    CHECKS.true(
        "lists: status counts one message delivered",
        "Messages delivered in the last 24 h: 1 " in status,
        status[:1500],
    )
    # test-notify: one labelled test message through every target of the role.
    before = (len(emails_to(LISTS_ADDRESS)), len(RECEIVED.list("lists_hook")), len(RECEIVED.list("lists_slack")))
    tested = cli("test-notify", "ops")
    CHECKS.true(
        "test-notify: every target of the role takes the test message",
        tested.returncode == 0 and tested.stdout.count("✓") == 4,
        tested.stdout + tested.stderr[-300:],
    )
    wait_until("the test e-mail", lambda: len(emails_to(LISTS_ADDRESS)) > before[0])
    CHECKS.equal(
        "test-notify: one test message per target, labelled as a test",
        (before[0] + 1, before[1] + 1, before[2] + 1, True),
        (
            len(emails_to(LISTS_ADDRESS)),
            len(RECEIVED.list("lists_hook")),
            len(RECEIVED.list("lists_slack")),
            "Test message from bi-agent lists" in emails_to(LISTS_ADDRESS)[-1]["subject"],
        ),
    )


SILENCE_ADDRESS = "silence@example.com"


def regions_agent(home, name, delivery, rule, actions):
    """A phase's own agent: a warehouse where West is at 30 and North at 40,
    and rule `rule` (ungrouped) firing above 10 with `actions`, delivered as
    `delivery` (channels or endpoints, and roles) says. Returns the
    warehouse's and the config's paths."""
    db = os.path.join(home, "m.db")
    with sqlite3.connect(db) as con:
        con.executescript("CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('West', 30), ('North', 40);")
    path = os.path.join(home, "agent.toml")
    with open(path, "w") as f:
        f.write(f"""
[agent]
name = "{name}"
interval = "1m"
[memory]
path = "{home}/memory.db"
{delivery}
[sources.m]
kind = "sql"
url = "sqlite://{db}?mode=ro"
sql = "SELECT region, value FROM m"
[[rules]]
name = "{rule}"
source = "m"
when = "value > 10.0"
group = false
{actions}""")
    return db, path


def phase_silence(run):
    """Issue 17, part 7, through the release binary: a silence holds back
    one region's alert (still evaluated, listed in `plan` and `status`);
    once expired, the next cycle tells it once, and the next tells nothing."""
    home = os.path.join(run.workdir, "silence")
    os.makedirs(home, exist_ok=True)
    _, path = regions_agent(
        home,
        "silence",
        f"""[channels.email]
kind = "email"
smtp_url = "smtp://127.0.0.1:{run.smtp_port}"
from = "bi-agent@example.com"
[roles]
ops = ["email:{SILENCE_ADDRESS}"]""",
        "hot",
        """  [[rules.actions]]
  id = "tell"
  kind = "notify"
  to = ["ops"]
  subject = "{{ region }} is hot"
  message = "{{ region }} at {{ value }}"
""",
    )

    def cli(*args):
        return own_agent_cli(run, path, *args)

    def subjects():
        return sorted(m["subject"] for m in emails_to(SILENCE_ADDRESS))

    added = cli("silence", "add", "--match", "rule=hot,region=West", "--for", "1h", "--reason", "smoke maintenance")
    CHECKS.true("silence: add exits 0", added.returncode == 0, added.stderr[-300:])
    silence_id = added.stdout.split(" as ")[-1].split(":")[0].strip()
    cli("run", "--once")
    wait_until("the unsilenced alert", lambda: emails_to(SILENCE_ADDRESS))
    CHECKS.equal("silence: only the unsilenced instance is told", ["North is hot"], subjects())
    plan = cli("plan").stdout
    CHECKS.true("silence: plan lists what it holds back", "Silenced (1):" in plan and silence_id in plan, plan[-600:])
    status = cli("status").stdout
    CHECKS.true(
        "silence: status shows it and what it mutes",
        "Silences in force (1):" in status and "mutes 1 firing" in status,
        status[:1500],
    )
    expired = cli("silence", "expire", silence_id)
    CHECKS.true("silence: expire exits 0", expired.returncode == 0, expired.stderr[-300:])
    cli("run", "--once")
    wait_until("the alert the silence held", lambda: len(emails_to(SILENCE_ADDRESS)) >= 2)
    cli("run", "--once")
    time.sleep(0.5)
    CHECKS.equal("silence: once it ends, the held instance is told once", ["North is hot", "West is hot"], subjects())


def phase_alertmanager(run):
    """Issue 17, part 6, through the release binary: with format =
    "alertmanager" the agent's alerts appear in a real Alertmanager and
    leave its active alerts when they resolve."""
    url = os.environ.get("BI_AGENT_TEST_ALERTMANAGER_URL", "")
    if not url:
        raise SmokeFailure("BI_AGENT_TEST_ALERTMANAGER_URL is not set: run `eval \"$(bash .ci/start-alertmanager.sh)\"` first")
    home = os.path.join(run.workdir, "alertmanager")
    os.makedirs(home, exist_ok=True)
    rule = f"smoke_hot_{os.getpid()}"
    db, path = regions_agent(
        home,
        "smoke-am",
        f"""[endpoints.am]
url = "{url}/api/v2/alerts"
format = "alertmanager"
[roles]
ops = ["webhook:am"]""",
        rule,
        """  [[rules.actions]]
  id = "page"
  kind = "notify"
  to = ["ops"]
  message = "{{ region }} at {{ value }}"
  [[rules.actions]]
  id = "cooled"
  kind = "notify"
  on = "resolved"
  to = ["ops"]
  message = "{{ region }} cooled down"
""",
    )

    def active():
        query = urllib.parse.urlencode({"filter": f'alertname="{rule}"', "active": "true"})
        with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=10) as r:
            return sorted(a["labels"].get("region") for a in json.load(r) if a["status"]["state"] == "active")

    done = own_agent_cli(run, path, "run", "--once")
    CHECKS.true("alertmanager: the cycle exits 0", done.returncode == 0, done.stderr[-500:])
    CHECKS.equal("alertmanager: both alerts are active in Alertmanager", ["North", "West"], active())
    with sqlite3.connect(db) as con:
        con.execute("UPDATE m SET value = 1 WHERE region = 'West'")
    for _ in range(3):
        own_agent_cli(run, path, "run", "--once")
        if active() == ["North"]:
            break
    CHECKS.equal("alertmanager: the resolved alert leaves the active ones", ["North"], active())


PHASES = [
    phase_setup,
    phase_scheduled_report,
    phase_fire,
    phase_approval,
    phase_reload,
    phase_resolve,
    phase_cli_report,
    phase_deliveries,
    phase_settle,
    phase_status,
    phase_metrics,
    phase_stop,
    phase_restart,
    phase_rule_semantics,
    phase_scale,
    phase_lists,
    phase_silence,
    phase_alertmanager,
]

# Phases that make no sense once another failed (they build on its state).
NEEDS = {
    phase_restart: {"stop"},
    phase_approval: {"fire"},
    phase_resolve: {"fire", "reload"},
    # The fake's faults are on chat.postMessage, which the reload switches to.
    phase_deliveries: {"reload"},
}


# -- Final checks ------------------------------------------------------------------


def main_emails():
    """The e-mails of the smoke's main agent (not the lists and silence phases' own)."""
    return [m for m in RECEIVED.list("email") if not {LISTS_ADDRESS, SILENCE_ADDRESS} & set(m["to"])]


def receiver_counts():
    return {
        "slack_webhook_posts": RECEIVED.count("slack_webhook"),
        "slack_api_posts": RECEIVED.count("slack_api"),
        "slack_api_refused": RECEIVED.count("slack_api_refused"),
        "slack_api_unanswered": RECEIVED.count("slack_api_unanswered"),
        "emails": len(main_emails()),
        "crm_posts": RECEIVED.count("crm"),
        "llm_plan": llm_count("plan"),
        "llm_summary": llm_count("summary"),
        "llm_narrative": llm_count("narrative"),
        "llm_bad_requests": RECEIVED.count("llm_bad"),
        "unexpected_requests": RECEIVED.count("unexpected"),
    }


def final_checks(run):
    seen = receiver_counts()
    for key, expected in EXPECTED.items():
        CHECKS.equal(f"count {key}", expected, seen[key])
    per_rcpt = {}
    for m in main_emails():
        for r in m["to"]:
            per_rcpt[r] = per_rcpt.get(r, 0) + 1
    CHECKS.equal("e-mails per recipient", EXPECTED_EMAILS_PER_RECIPIENT, per_rcpt)
    emails = RECEIVED.list("email")
    undated = [m["subject"] for m in emails if not email_date(m["date"])]
    CHECKS.equal("every e-mail dated when sent (RFC 5322 Date)", [], undated)
    ids = [m["message_id"] for m in emails]
    CHECKS.equal("every e-mail its own Message-ID", len(ids), len(set(i for i in ids if i)))
    marked = [m["subject"] for m in emails if re.search(r"(^|\s)\*[^\s*][^*\n]*\*", m["text"])]
    CHECKS.equal("no *bold* markers in e-mails' plain text", [], marked)
    replies = [m["in_reply_to"] for m in emails if m["in_reply_to"]]
    CHECKS.equal("e-mail replies name an e-mail received", [], [r for r in replies if r not in ids])
    per_channel = {}
    for p in RECEIVED.list("slack_api"):
        ch = (p["body"] or {}).get("channel")
        per_channel[ch] = per_channel.get(ch, 0) + 1
    CHECKS.equal("chat.postMessage per channel", EXPECTED_SLACK_API_PER_CHANNEL, per_channel)
    CHECKS.true("every web request authorized", all(w["authorized"] for w in RECEIVED.list("web")))
    CHECKS.true("Prometheus queried", RECEIVED.count("prom") > 0)
    if RECEIVED.list("llm_bad"):
        log(f"LLM requests the fake found malformed: {RECEIVED.list('llm_bad')[:5]}")
    if RECEIVED.list("unexpected"):
        log(f"unexpected requests: {RECEIVED.list('unexpected')[:5]}")

    for daemon in run.daemons:
        name = os.path.basename(daemon.log_path)
        daemon.read()
        text = "\n".join(daemon.raw_lines)
        panics = [line for line in daemon.raw_lines if re.search(r"panic", line, re.I)]
        CHECKS.equal(f"panics in {name}", [], panics[:5])
        errors = {}
        for e in daemon.events:
            if e.get("level") == "ERROR":
                errors[e.get("message")] = errors.get(e.get("message"), 0) + 1
        expected_errors = EXPECTED_ERRORS if daemon is run.daemons[0] else {}
        CHECKS.equal(f"ERROR lines in {name}", expected_errors, errors)
        raw = [line for line in daemon.raw_lines if line.strip() and not line.startswith("{")]
        CHECKS.equal(f"non-JSON lines in {name}", [], raw[:5])
        leaked = [k for k, v in SECRETS.items() if v and v in text]
        CHECKS.equal(f"secrets in {name}", [], leaked)
    cli_text = "\n".join(run.cli_output)
    CHECKS.equal("secrets in CLI output", [], [k for k, v in SECRETS.items() if v and v in cli_text])
    if os.path.exists(run.memory):
        blob = b""
        for suffix in ("", "-wal"):
            if os.path.exists(run.memory + suffix):
                with open(run.memory + suffix, "rb") as f:
                    blob += f.read()
        leaked = [k for k, v in SECRETS.items() if v and v.encode() in blob]
        CHECKS.equal("secrets in the memory database", [], leaked)


# -- Helpers the phases share --------------------------------------------------------


def json_or_none(text, key):
    try:
        return json.loads(text).get(key)
    except (ValueError, AttributeError):
        return None


def http_get(run, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{run.metrics_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def email_date(text):
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def emails_to(address):
    return [m for m in RECEIVED.list("email") if address in m["to"]]


def slack_webhook_with(text):
    found = [p for p in RECEIVED.list("slack_webhook") if text in json.dumps(p)]
    return found[0] if found else None


def slack_api_to(channel):
    return [p for p in RECEIVED.list("slack_api") if (p["body"] or {}).get("channel") == channel]


def open_deliveries(run):
    """bi_agent_deliveries_open by status, from /metrics ({} if it does not answer)."""
    got = http_get(run, "/metrics")
    if not got or got[0] != 200:
        return {}
    metrics = parse_metrics(got[1])
    return {dict(labels)["status"]: v for (name, labels), v in metrics.items() if name == "bi_agent_deliveries_open"}


def live_outcomes(run, action_id):
    """The recorded live outcomes of one action (`bi-agent actions --json`)."""
    return [
        o
        for o in run.cli_json("actions", "--limit", "100")
        if (o.get("outcome") or {}).get("action_id") == action_id and not o["outcome"].get("dry_run")
    ]


def live_outcome(run, action_id, status):
    """The action's latest live outcome record whose status is `status`, if any."""
    found = [o for o in live_outcomes(run, action_id) if (o["outcome"].get("status") or {}).get("status") == status]
    return found[0] if found else None


def llm_count(kind):
    return sum(1 for r in RECEIVED.list("llm") if r["kind"] == kind)


def expected_tokens(all_processes):
    """Tokens of the expected LLM calls: all of them, or the daemon's only
    (the CLI report's narrative is another process)."""
    total = 0
    for kind in ("plan", "summary", "narrative"):
        n = EXPECTED[f"llm_{kind}"] - (1 if kind == "narrative" and not all_processes else 0)
        total += n * sum(LLM_USAGE[kind])
    return total


def parse_metrics(text):
    """Prometheus text format → {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


def main():
    global WAIT_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/bi-agent", help="the bi-agent binary to drive")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, logs, memory)")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"smoke: {args.bin} is not an executable: build it with `cargo build --release --locked`")

    workdir = tempfile.mkdtemp(prefix="bi-agent-smoke-")
    run = Run(args, workdir)
    aborted = None
    failed_phases = set()
    try:
        for phase in PHASES:
            name = phase.__name__.removeprefix("phase_")
            missing = NEEDS.get(phase, set()) & failed_phases
            if missing:
                log(f"phase {name} skipped: it needs {', '.join(sorted(missing))}")
                CHECKS.failed.append(f"phase {name}: skipped, it needs phase {', '.join(sorted(missing))}")
                failed_phases.add(name)
                continue
            log(f"phase {name}")
            failures_before = len(CHECKS.failed)
            try:
                phase(run)
            except Exception as e:  # a failed wait, or a bug the binary provoked in a phase
                if not isinstance(e, SmokeFailure):
                    traceback.print_exc()
                CHECKS.failed.append(f"phase {name}: {e}")
                if phase is phase_setup or (run.daemon and not run.daemon.alive() and phase is not phase_stop):
                    aborted = f"phase {name}"
                    break
                if CLOCK.left() <= 0:
                    aborted = f"time budget spent in phase {name}"
                    break
            if len(CHECKS.failed) > failures_before:
                failed_phases.add(name)
                # Something is broken: later waits need not be as patient.
                WAIT_S = min(WAIT_S, 10.0)
        if run.daemon and run.daemon.alive():
            run.daemon.stop(signal.SIGTERM, timeout=15)
        if run.daemon:
            final_checks(run)
    finally:
        if run.daemon and run.daemon.alive():
            run.daemon.proc.kill()
        if run.smtp:
            run.smtp.stop()
        if run.http:
            run.http.shutdown()
        if run.pg_url:
            drop_postgres(run.pg_url)

    with open(os.path.join(workdir, "received.json"), "w") as f:
        json.dump(RECEIVED.got, f, indent=1, default=str)  # what every fake got, for a look afterwards
    took = CLOCK.elapsed()
    if CHECKS.failed:
        print("\nSMOKE FAILED" + (f" (aborted: {aborted})" if aborted else ""), flush=True)
        for daemon in run.daemons:
            first = next((l for l in daemon.raw_lines if "panicked at" in l), None)
            if first:
                print(f"  the daemon PANICKED ({os.path.basename(daemon.log_path)}): {first}")
        for f in CHECKS.failed:
            print(f"  FAIL {f}")
        if run.daemon:
            print(f"\n-- last lines of the daemon log ({run.daemon.log_path}) --")
            print(run.daemon.tail(40))
        print(f"\nwork directory kept: {workdir}")
        print(f"{len(CHECKS.passed)} passed, {len(CHECKS.failed)} failed")
        return 1
    print(f"\nsmoke: every receiver got exactly what it should: {json.dumps(EXPECTED)}")
    print(f"smoke: {len(CHECKS.passed)} checks in {took:.1f}s")
    print(f"{len(CHECKS.passed)} passed, 0 failed")
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
