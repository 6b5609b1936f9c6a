#!/usr/bin/python3
"""One cycle that shows what the soak's `dropped` faults do, in about 3 s.

    /usr/bin/python3 tests/soak/repro_dropped.py --bin target/release/bi-agent

One key fires once (`bi-agent run --once`, the soak's config). The Slack
receiver reads each request and closes the connection without an answer; the
SMTP receiver takes the message (DATA) and closes the connection instead of
its final 250; the CRM is healthy. Each message did arrive, but the agent
cannot know: its effect should be `unknown` and it should not be sent again.
The script prints what each receiver got, the in-cycle retries from the log
and the effects, and exits 1 if a receiver got a message more than once while
its effect is not `unknown`.
"""

import argparse
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("soak", os.path.join(HERE, "soak.py"))
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/bi-agent", help="the bi-agent binary")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bi-agent-repro-dropped-")
    slack = soak.HttpReceiver("slack", soak.SLACK_PATH, soak.free_port())
    crm = soak.HttpReceiver("crm", soak.CRM_PATH, soak.free_port())
    smtp = soak.SmtpReceiver(soak.free_port())
    try:
        slack.start()
        slack.set_mode("dropped")
        crm.start()
        smtp.start()
        smtp.dropping = True
        warehouse, memory, config = (os.path.join(workdir, n) for n in ("warehouse.db", "memory.db", "agent.toml"))
        with sqlite3.connect(warehouse) as db:
            db.execute("CREATE TABLE k (key TEXT PRIMARY KEY, v REAL NOT NULL)")
            db.execute("INSERT INTO k VALUES ('k01', ?)", (soak.FIRING_V,))
        db.close()
        with open(config, "w") as f:
            f.write(
                soak.CONFIG.format(
                    memory=memory,
                    warehouse=warehouse,
                    slack_port=slack.port,
                    slack_path=soak.SLACK_PATH,
                    smtp_port=smtp.port,
                    crm_port=crm.port,
                    crm_path=soak.CRM_PATH,
                )
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("BI_AGENT_")}
        env["RUST_LOG"] = "info,bi_agent::execution::delivery=debug"
        done = subprocess.run(
            [os.path.abspath(args.bin), "run", "--once", "-c", config], capture_output=True, text=True, env=env
        )
        print(f"bi-agent run --once: exit {done.returncode}")
        for line in done.stderr.splitlines():
            if "Retrying after a transient failure" in line or "Delivery" in line:
                print("  log: " + line[:300])
        got = {
            "slack:#ops": [(a["t"], a["mode"]) for a in slack.accepted],
            "webhook:crm": [(a["t"], a["mode"]) for a in crm.accepted],
            "email:ops@example.test": [(a["t"], a["mode"]) for a in smtp.accepted],
        }
        effects = {
            target: (status, attempts, error)
            for target, status, attempts, error in sqlite3.connect(memory).execute(
                "SELECT target, status, attempts, error FROM effects"
            )
        }
        twice = []
        for target, received in got.items():
            effect = effects.get(target)
            print(f"{target:<24} received {len(received)}x {received}; effect {effect}")
            distinct = 1 if target == "webhook:crm" else len(received)  # the CRM deduplicates by Idempotency-Key
            if distinct > 1 and (effect or ("",))[0] != "unknown":
                twice.append(target)
        if twice:
            print(f"DUPLICATES: {', '.join(twice)} got one message more than once, and the effect is not unknown")
            return 1
        print("no duplicates")
        return 0
    finally:
        slack.stop()
        crm.stop()
        smtp.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
