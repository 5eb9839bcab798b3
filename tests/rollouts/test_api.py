"""The rollouts REST API: same actions as the pages, reviewers read, operators act."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rollouts.models import PodStatus, Publication, PublicationState, Rollout, RolloutState

from .conftest import CANARY, STABLE, route_weights
from .test_services import published

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout(local_target, route, v8, operator):
    from rollouts import services

    published(v8, route.canary_slot)
    return services.rollout_start(actor=operator, route=route, version=v8)


def test_an_operator_drives_a_rollout_through_the_api(api, operator, k8s, cluster_route, v8):
    published(v8, cluster_route.canary_slot)
    client = api.as_(operator)

    created = client.post(
        "/api/v1/rollouts/",
        {"route": "router", "version": "v8", "steps": [20, 100], "window_seconds": 120,
         "gates": [], "reason": "api"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["state"], body["stage"], body["canary_weight"]) == ("stage", 1, 20)
    assert route_weights(k8s) == [(STABLE, 80), (CANARY, 20)]
    url = f"/api/v1/rollouts/{body['id']}"

    stale = client.post(f"{url}/advance/", {"expected_stage": 2}, format="json")
    assert stale.status_code == 409
    paused = client.post(f"{url}/pause/", {"reason": "lunch"}, format="json")
    assert paused.json()["state"] == "paused"
    assert client.post(f"{url}/resume/", {}, format="json").json()["state"] == "stage"

    rolled = client.post(f"{url}/rollback/", {"reason": "api says so"}, format="json")

    assert rolled.status_code == 200
    assert (rolled.json()["state"], rolled.json()["canary_weight"]) == ("rolled_back", 0)
    assert rolled.json()["transitions"][-1]["reason"] == "api says so"
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    assert client.post(f"{url}/rollback/", {}, format="json").status_code == 409


def test_bad_steps_are_a_400(api, operator, local_target, route, v8):
    published(v8, route.canary_slot)
    answer = api.as_(operator).post(
        "/api/v1/rollouts/",
        {"route": "router", "version": "v8", "steps": [50, 20]},
        format="json",
    )
    assert answer.status_code == 400
    assert "steps" in answer.json()
    assert not Rollout.objects.exists()


QUEUE_DEPTH = 'max(queue_depth{backend="{backend}"})'


def test_an_operator_changes_and_adds_gates_of_a_running_rollout(api, operator, rollout):
    from audit.models import AuditEvent

    error_rate = rollout.gates.get(name="error-rate")
    error_rate.failing_since = rollout.stage_started_at
    error_rate.save()
    url = f"/api/v1/rollouts/{rollout.pk}/gates/"

    answer = api.as_(operator).patch(
        url,
        {"gates": [
            {"name": "error-rate", "threshold": 0.05, "window": "10m"},
            {"name": "queue-depth", "query": QUEUE_DEPTH, "threshold": 8},
        ], "reason": "noisy at 2%"},
        format="json",
    )  # fmt: skip

    assert answer.status_code == 200, answer.json()
    gates = {g.name: g for g in rollout.gates.all()}
    assert (gates["error-rate"].threshold, gates["error-rate"].window) == (0.05, "10m")
    assert gates["error-rate"].comparator == "lt"  # fields not given stay as they were
    assert gates["error-rate"].failing_since is None  # a streak under the old rule is void
    assert gates["queue-depth"].min_requests == 100
    assert set(gates) == {"error-rate", "p99-latency", "weak-ttft-p95", "queue-depth"}
    event = AuditEvent.objects.get(action="rollout.gates", object_id=str(rollout.pk))
    (before,) = [g for g in event.before["gates"] if g["name"] == "error-rate"]
    assert before["threshold"] == 0.02 and event.message == "noisy at 2%"


@pytest.mark.parametrize(
    ("gates", "field"),
    [
        ([{"name": "new-gate", "threshold": 1}], "gates"),  # a new gate needs its query
        ([{"name": "error-rate", "window": "ten minutes"}], "gates"),
        ([{"name": "error-rate"}, {"name": "error-rate"}], "gates"),
        ([], "gates"),
    ],
)
def test_bad_gate_changes_are_a_400_and_change_nothing(api, operator, rollout, gates, field):
    answer = api.as_(operator).patch(
        f"/api/v1/rollouts/{rollout.pk}/gates/", {"gates": gates}, format="json"
    )

    assert answer.status_code == 400
    assert field in answer.json()
    assert rollout.gates.get(name="error-rate").window == "5m"
    assert rollout.gates.count() == 3


def test_gates_of_a_finished_rollout_are_final(api, operator, rollout):
    from rollouts import services

    services.rollout_rollback(actor=operator, rollout=rollout)
    answer = api.as_(operator).patch(
        f"/api/v1/rollouts/{rollout.pk}/gates/",
        {"gates": [{"name": "error-rate", "threshold": 0.5}]},
        format="json",
    )
    assert answer.status_code == 409


def test_a_reviewer_cannot_change_gates(api, reviewer, rollout):
    answer = api.as_(reviewer).patch(
        f"/api/v1/rollouts/{rollout.pk}/gates/",
        {"gates": [{"name": "error-rate", "threshold": 0.5}]},
        format="json",
    )
    assert answer.status_code == 403
    assert rollout.gates.get(name="error-rate").threshold == 0.02


@pytest.mark.parametrize("action", ["advance", "pause", "resume", "rollback", "evaluate"])
def test_a_reviewer_cannot_act_on_a_rollout(api, reviewer, rollout, action):
    answer = api.as_(reviewer).post(f"/api/v1/rollouts/{rollout.pk}/{action}/", {}, format="json")

    assert answer.status_code == 403
    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 1)


def test_a_reviewer_cannot_start_or_publish(api, reviewer, local_target, route, v8):
    client = api.as_(reviewer)
    assert client.post("/api/v1/rollouts/", {"route": "router", "version": "v8"}).status_code == 403
    answer = client.post("/api/v1/publications/", {"version": "v8", "slot": CANARY})
    assert answer.status_code == 403
    assert not Publication.objects.exists()


def test_without_a_role_nothing_is_readable(api, nobody, rollout):
    client = api.as_(nobody)
    for url in ("/api/v1/rollouts/", f"/api/v1/rollouts/{rollout.pk}/", "/api/v1/routes/",
                "/api/v1/slots/", "/api/v1/publications/"):  # fmt: skip
        assert client.get(url).status_code == 403, url


def test_anonymous_is_refused(api, rollout):
    assert api.get("/api/v1/rollouts/").status_code in (401, 403)


def test_a_reviewer_reads_rollouts_gates_and_transitions(api, reviewer, rollout):
    client = api.as_(reviewer)

    listed = client.get("/api/v1/rollouts/").json()
    detail = client.get(f"/api/v1/rollouts/{rollout.pk}/").json()

    assert [r["id"] for r in listed["results"]] == [rollout.pk]
    assert [g["name"] for g in detail["gates"]] == ["error-rate", "p99-latency", "weak-ttft-p95"]
    assert [t["action"] for t in detail["transitions"]] == ["start"]
    assert client.get("/api/v1/routes/router/").json()["canary_weight"] == 10


def test_an_operator_publishes_and_retries_through_the_api(
    api, operator, local_target, route, v8, django_capture_on_commit_callbacks
):
    client = api.as_(operator)

    answer = client.post("/api/v1/publications/", {"version": "v8", "slot": CANARY})

    assert answer.status_code == 202
    assert answer.json()["state"] == "pending"
    publication = Publication.objects.get()
    assert client.post(f"/api/v1/publications/{publication.pk}/retry/").status_code == 409
    Publication.objects.filter(pk=publication.pk).update(state=PublicationState.PARTIAL)
    assert client.post(f"/api/v1/publications/{publication.pk}/retry/").status_code == 202


def test_a_draft_cannot_be_published(api, operator, route, draft):
    answer = api.as_(operator).post("/api/v1/publications/", {"version": "v8", "slot": CANARY})
    assert answer.status_code == 400


def test_lists_take_a_fixed_number_of_queries(api, reviewer, local_target, route, v8, operator):
    from rollouts import services

    client = api.as_(reviewer)

    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    published(v8, route.canary_slot)
    rollout = services.rollout_start(actor=operator, route=route, version=v8)
    services.rollout_rollback(actor=operator, rollout=rollout)
    publication = Publication.objects.get()
    PodStatus.objects.create(publication=publication, address="10.0.0.1:8080")
    urls = ("/api/v1/rollouts/", "/api/v1/publications/")
    count(urls[0])  # the first request also looks up the user's role
    one = {u: count(u) for u in urls}

    for _ in range(3):
        rollout = services.rollout_start(actor=operator, route=route, version=v8)
        services.rollout_rollback(actor=operator, rollout=rollout)
        extra = published(v8, route.canary_slot)
        PodStatus.objects.create(publication=extra, address="10.0.0.2:8080")

    assert {u: count(u) for u in one} == one
