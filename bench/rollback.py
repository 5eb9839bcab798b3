"""Rollback timing: from the request to the HTTPRoute carrying canary 0 / stable 100, and from
a sustained 5xx breach to the automatic rollback.

    .venv/bin/python -m bench.rollback [--runs 50] [--interval 1] [--trigger 3]

Needs DATABASE_URL (PostgreSQL), SECRET_KEY and CELERY_BROKER_URL (notifications are off).
It creates and drops a throwaway database (``test_`` + the configured name). Everything
runs on 127.0.0.1: the Kubernetes API stand-in (``tests/standins/k8s_api.py``) and, for the
gates, Debian's ``prometheus`` scraping a small metrics server that serves the pod's metric
names with a request rate and a 5xx share the benchmark controls.

1. Click and API: 50 times, start a canary (90/10), then time the rollback through the
   operator's button (``POST /rollouts/<id>/rollback/``) or the REST API
   (``POST /api/v1/rollouts/<id>/rollback/``), both through Django's test client, until the
   stand-in's HTTPRoute holds 100/0 (the service writes it before answering).
2. Gate evaluation: ``rollout_evaluate`` with the three default gates (six PromQL queries)
   against that Prometheus.
3. Breach to rollback: the metrics server starts answering 50% 5xx; a loop plays beat with
   ``--interval`` seconds between evaluations and the error-rate gate rolls back after
   ``--trigger`` seconds failing. Reported: breach start to rollback, and that minus the
   trigger window (the goal: within one evaluation interval + 1 s). Then the same breach
   again with Prometheus unreachable for ``--blip`` seconds right after the first failing
   evaluation (the gates turn unknown): the rollback must not wait for it to come back.
4. A stopped beat: the time until ``/rollouts/health`` reports the stall (goal: three
   evaluation intervals).

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.conf import settings  # lazy: read once django.setup() has run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label:<44} n={len(ms):<3} p50 {statistics.median(ms):7.1f} ms"
        f"   p99 {pct(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms"
    )


class Metrics:
    """Counters that grow at ``rate`` requests/s with a ``bad`` share of 5xx since ``since``."""

    def __init__(self, version: str, rate: float = 50.0) -> None:
        self.version, self.rate = version, rate
        self.start = time.monotonic()
        self.bad, self.bad_since, self.ok_before = 0.0, None, 0.0
        self.lock = threading.Lock()

    def breach(self, share: float) -> None:
        with self.lock:
            now = time.monotonic()
            self.ok_before = (now - self.start) * self.rate
            self.bad, self.bad_since = share, now

    def text(self) -> str:
        with self.lock:
            elapsed = time.monotonic() - self.start
            total = elapsed * self.rate
            if self.bad_since is None:
                ok, bad = total, 0.0
            else:
                later = (time.monotonic() - self.bad_since) * self.rate
                ok, bad = self.ok_before + later * (1 - self.bad), later * self.bad
        v = self.version
        labels = f'tier="weak",backend="weak",version="{v}"'
        lines = [
            "# TYPE cascade_pod_requests_total counter",
            f'cascade_pod_requests_total{{{labels},status_class="2xx"}} {ok}',
            f'cascade_pod_requests_total{{{labels},status_class="5xx"}} {bad}',
        ]
        for name, le_values in (
            ("cascade_pod_request_duration_seconds", (0.5, 1, 3, 10, 15)),
            ("cascade_pod_time_to_first_token_seconds", (0.1, 0.5, 1, 3, 10)),
        ):
            lines.append(f"# TYPE {name} histogram")
            for le in (*le_values, "+Inf"):
                lines.append(
                    f'{name}_bucket{{tier="weak",backend="weak",version="{v}",le="{le}"}} {ok}'
                )
            lines.append(f'{name}_count{{tier="weak",backend="weak",version="{v}"}} {ok}')
            lines.append(f'{name}_sum{{tier="weak",backend="weak",version="{v}"}} {ok * 0.2}')
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: Metrics) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_GET(self):  # http.server's hook
            body = metrics.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="beat interval, seconds")
    parser.add_argument("--trigger", type=int, default=3, help="rollback after N s failing")
    parser.add_argument(
        "--blip", type=float, default=5.0, help="seconds of Prometheus outage in the 2nd breach"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("Set DATABASE_URL to a PostgreSQL database.", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")
    os.environ.pop("NOTIFY_WEBHOOK_URL", None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        return _run(args)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _run(args) -> int:
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.utils import timezone
    from rest_framework.test import APIClient

    from rollouts import services
    from rollouts.gates import DEFAULT_GATES
    from rollouts.k8s_adapter import backend_weights
    from rollouts.models import Publication, PublicationState, Route, Slot
    from routing import services as routing_services
    from routing.baseline import ensure_v7
    from routing.models import ClassifierVersion, Keyword, KeywordSet
    from tests.standins.k8s_api import KubeApiStandin, httproute

    ns, name, stable, canary = "llm", "llm-router", "llm-classifier-v7", "llm-classifier-v8"
    operator = User.objects.create_user("bench-operator", password="x")  # noqa: S106
    operator.groups.add(Group.objects.get_or_create(name="operator")[0])
    v7 = ensure_v7(ClassifierVersion, KeywordSet, Keyword, timezone.now())
    v8 = routing_services.version_copy(actor=operator, source=v7, name="v8")
    v8 = routing_services.version_freeze(actor=operator, version=v8)
    slot_s = Slot.objects.create(name=stable, namespace=ns, service=stable, configmap=stable)
    slot_c = Slot.objects.create(name=canary, namespace=ns, service=canary, configmap=canary)
    route = Route.objects.create(
        name="router", namespace=ns, httproute=name, stable_backend=stable,
        canary_backend=canary, stable_slot=slot_s, canary_slot=slot_c,
    )  # fmt: skip
    Publication.objects.create(
        version=v8, slot=slot_c, sha256=v8.config_sha256, state=PublicationState.SUCCEEDED,
        finished_at=timezone.now(),
    )  # fmt: skip

    with KubeApiStandin() as k8s:
        settings.CASCADE_K8S_HOST = k8s.url
        settings.PROMETHEUS_URL = ""
        k8s.put(httproute(ns, name, [[(stable, 100), (canary, 0)]]))
        page, api = Client(), APIClient()
        page.force_login(operator)
        api.force_authenticate(operator)
        print(f"# rollback: {args.runs} runs per path, Kubernetes API stand-in on 127.0.0.1")
        for label, post in (
            ("button  POST /rollouts/<id>/rollback/", lambda pk: page.post(
                f"/rollouts/{pk}/rollback/", {"reason": "bench"})),
            ("API     POST /api/v1/rollouts/<id>/rollback/", lambda pk: api.post(
                f"/api/v1/rollouts/{pk}/rollback/", {"reason": "bench"}, format="json")),
        ):  # fmt: skip
            times = []
            for _ in range(args.runs):
                rollout = services.rollout_start(
                    actor=operator, route=route, version=v8, gate_specs=[]
                )
                t0 = time.perf_counter()
                answer = post(rollout.pk)
                weights = backend_weights(k8s.get("httproutes", ns, name), 0)
                times.append(time.perf_counter() - t0)
                assert answer.status_code in (200, 302), answer.status_code
                assert weights == [(stable, 100), (canary, 0)], weights
            show(label, times)

        _gates(args, services, route, v8, operator, DEFAULT_GATES, k8s, ns, name)
    return 0


def _breach(args, services, rollout, metrics, k8s, ns, name, url, blip: float) -> None:
    """Breach to automatic rollback; with ``blip`` seconds of Prometheus unreachable right
    after the first failing evaluation (the gates turn unknown meanwhile)."""
    from rollouts.k8s_adapter import backend_weights
    from rollouts.models import Rollout, RolloutState

    metrics.breach(0.5)
    breach = time.monotonic()
    first_fail = blip_until = None
    state = None
    while time.monotonic() - breach < args.trigger + blip + 30:
        if blip_until is not None and time.monotonic() >= blip_until:
            settings.PROMETHEUS_URL = url  # back
        services.rollout_evaluate(rollout_id=rollout.pk)
        state = Rollout.objects.values_list("state", flat=True).get(pk=rollout.pk)
        if first_fail is None and rollout.gates.filter(name="error-rate", last_result="fail"):
            first_fail = time.monotonic() - breach
            if blip:
                settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # refused: unknown
                blip_until = time.monotonic() + blip
        if state == RolloutState.ROLLED_BACK:
            break
        time.sleep(args.interval)
    settings.PROMETHEUS_URL = url
    took = time.monotonic() - breach
    weights = backend_weights(k8s.get("httproutes", ns, name), 0)
    print(
        f"# breach -> automatic rollback (beat every {args.interval:g} s, trigger "
        f"{args.trigger} s, 5s rate window, 0.5 s scrapes"
        + (f", Prometheus unreachable {blip:g} s after the first failure" if blip else "")
        + f"): state {state}, weights {weights}"
    )
    print(f"{'first failing evaluation after the breach':<44} {first_fail or float('nan'):7.2f} s")
    print(f"{'breach start to rollback':<44} {took:7.2f} s")
    after = took - (first_fail or 0) - args.trigger
    print(
        f"{'  after the trigger window closed':<44} {after:7.2f} s"
        f"   (goal: <= interval + 1 s = {args.interval + 1:g} s)"
    )


def _stall(args) -> None:
    """A beat that stops: how long until /rollouts/health reports the stall."""
    from django.test import Client
    from django.utils import timezone

    from rollouts import health
    from rollouts.models import Rollout, RolloutState

    settings.ROLLOUT_EVALUATE_INTERVAL = max(1, round(args.interval))
    watched = Rollout.objects.filter(state=RolloutState.STAGE).first()
    if watched is None:
        return
    client = Client()
    health.beat_ticked(timezone.now())
    Rollout.objects.filter(pk=watched.pk).update(last_evaluated_at=timezone.now())
    stopped = time.monotonic()  # the beat's last tick; nothing evaluates from here on
    while client.get("/rollouts/health").status_code != 503:
        time.sleep(0.05)
    interval = settings.ROLLOUT_EVALUATE_INTERVAL
    print(
        f"{'beat stopped -> /rollouts/health reports it':<44} {time.monotonic() - stopped:7.2f} s"
        f"   (goal: within three intervals = {3 * interval} s)"
    )


def _gates(args, services, route, v8, operator, default_gates, k8s, ns, name) -> None:
    from rollouts.models import Route
    from tests.standins.k8s_api import httproute

    stable_name, canary_name = route.stable_backend, route.canary_backend

    prometheus = "/usr/bin/prometheus"
    if not os.path.exists(prometheus):
        print("# gates: skipped (no /usr/bin/prometheus)")
        return
    metrics = Metrics("v8")
    server = serve_metrics(metrics)
    workdir = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    port = server.server_address[1]
    (workdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
        "scrape_configs:\n  - job_name: pods\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        prom_port = sock.getsockname()[1]
    proc = subprocess.Popen(  # noqa: S603 - Debian's binary, fixed arguments
        [prometheus, f"--config.file={workdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{prom_port}"
    settings.PROMETHEUS_URL = url
    try:
        query = 'sum(increase(cascade_pod_requests_total{version="v8"}[5s]))'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                result = httpx.get(f"{url}/api/v1/query", params={"query": query}).json()
                if result["data"]["result"] and float(result["data"]["result"][0]["value"][1]) > 50:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        specs = []
        for spec in default_gates:
            spec = {**spec, "window": "5s", "min_requests": 10}
            if spec.get("rollback_after_seconds") is not None:
                spec["rollback_after_seconds"] = args.trigger
            specs.append(spec)
        rollout = services.rollout_start(
            actor=operator, route=route, version=v8, gate_specs=specs, window_seconds=3600
        )
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            services.rollout_evaluate(rollout_id=rollout.pk)
            times.append(time.perf_counter() - t0)
        results = sorted(set(rollout.gates.values_list("last_result", flat=True)))
        print(f"# gates: 3 default gates (6 PromQL queries) on Prometheus 127.0.0.1, {results}")
        show("rollout_evaluate (queries + decision)", times)

        for blip in (0.0, args.blip):
            if blip:  # the same breach again, on a new canary, with Prometheus away a while
                metrics.breach(0.0)
                time.sleep(6)  # the 5 s rate window forgets the first breach
                k8s.put(httproute(ns, name, [[(stable_name, 100), (canary_name, 0)]]))
                Route.objects.filter(pk=route.pk).update(stable_weight=100, canary_weight=0)
                rollout = services.rollout_start(
                    actor=operator, route=route, version=v8, gate_specs=specs,
                    window_seconds=3600,
                )  # fmt: skip
            _breach(args, services, rollout, metrics, k8s, ns, name, url, blip)
        k8s.put(httproute(ns, name, [[(stable_name, 100), (canary_name, 0)]]))
        Route.objects.filter(pk=route.pk).update(stable_weight=100, canary_weight=0)
        services.rollout_start(actor=operator, route=route, version=v8, gate_specs=[])
        _stall(args)
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
