"""Four reviewers labeling one batch at once on the embedded console (SQLite): no 500s."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

SEED = """
from datetime import timedelta
from django.contrib.auth.models import Group, User
from django.utils import timezone
from labeling.models import Trace
from labeling.services import batch_create
now = timezone.now()
for i in range(120):
    text = f"request number {i}: how do I reverse a list?"
    Trace.objects.create(
        langfuse_id=f"t{i}", started_at=now - timedelta(hours=1, minutes=i), messages=[],
        input_text=text, input_hash=f"h{i}", char_count=len(text), turn_count=1, tier="weak",
        classifier_version="v7",
    )
group = Group.objects.get(name="reviewer")
for n in range(4):
    User.objects.create_user(f"reviewer{n}", password="pw-for-tests-only").groups.add(group)
operator = User.objects.create_user("op")
batch = batch_create(actor=operator, kind="headline", period_start=now - timedelta(days=1),
                     period_end=now, size=120, seed=1, double_review_share=0.2)
print("BATCH", batch.pk)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_four_reviewers_at_once_on_sqlite_get_no_server_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["CASCADE_VAR_DIR"] = str(tmp_path / "var")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)
    seeded = subprocess.run([*manage, "shell", "-c", SEED], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    batch = int(seeded.stdout.split("BATCH")[1].split()[0])
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),  # noqa: SIM115
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    statuses: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)

        def review(n: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                login = {"username": f"reviewer{n}", "password": "pw-for-tests-only"}
                token = http.post("/auth/token/", data=login).json()["token"]
                http.headers["Authorization"] = f"Token {token}"
                while True:
                    item = http.post(f"/batches/{batch}/next/")
                    statuses.append(item.status_code)
                    if item.status_code != 200:
                        return
                    value = "strong_needed" if n % 2 else "weak_sufficient"
                    label = http.post("/labels/", json={"item": item.json()["id"], "value": value})
                    statuses.append(label.status_code)

        threads = [threading.Thread(target=review, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        server.terminate()
        server.wait(30)

    assert statuses and not [s for s in statuses if s >= 500]
    assert statuses.count(201) >= 120  # every item labeled (double reviews twice)
