"""Rollout pages: reviewers read, operators act; buttons call the same services."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rollouts import services
from rollouts.models import PodStatus, Rollout, RolloutState

from .conftest import CANARY, STABLE, route_weights
from .test_services import published

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout(local_target, route, v8, operator):
    published(v8, route.canary_slot)
    return services.rollout_start(actor=operator, route=route, version=v8, reason="<b>why</b>")


def test_a_reviewer_sees_the_rollout_without_action_buttons(client, reviewer, rollout):
    client.force_login(reviewer)

    page = client.get(f"/rollouts/{rollout.pk}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="weight-stable">90<' in html
    assert 'class="weight-canary">10<' in html
    assert 'id="rollback"' not in html
    assert "&lt;b&gt;why&lt;/b&gt;" in html  # the reason is text, never markup
    assert client.get("/rollouts/").status_code == 200


@pytest.mark.parametrize(
    "action", ["advance", "pause", "resume", "rollback", "evaluate", "gates", "misroute-check"]
)
def test_a_reviewer_cannot_post_actions(client, reviewer, rollout, action):
    client.force_login(reviewer)

    assert client.post(f"/rollouts/{rollout.pk}/{action}/").status_code == 403
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.STAGE


def test_a_reviewer_cannot_start_or_publish(client, reviewer, local_target, route, v8):
    client.force_login(reviewer)
    assert client.post("/rollouts/start/", {"route": "router", "version": "v8"}).status_code == 403
    assert (
        client.post("/rollouts/publications/", {"version": "v8", "slot": CANARY}).status_code == 403
    )


def test_someone_without_a_role_cannot_read(client, nobody, rollout):
    client.force_login(nobody)
    assert client.get("/rollouts/").status_code == 403
    assert client.get(f"/rollouts/{rollout.pk}/").status_code == 403


def test_an_operator_rolls_back_with_one_click_on_the_cluster(
    client, operator, k8s, cluster_route, v8
):
    published(v8, cluster_route.canary_slot)
    client.force_login(operator)
    started = client.post(
        "/rollouts/start/",
        {"route": "router", "version": "v8", "steps": "10,50,100", "window": "5", "unit": "60"},
    )
    rollout = Rollout.objects.get()
    assert started.url == f"/rollouts/{rollout.pk}/"
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]
    assert rollout.window_seconds == 300

    answer = client.post(f"/rollouts/{rollout.pk}/rollback/", {"reason": "spike"}, follow=True)

    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    html = answer.content.decode()
    assert 'class="weight-canary">0<' in html
    assert "Rollback: canary 0% / stable 100%." in html
    rollout.refresh_from_db()
    assert rollout.transitions.last().reason == "spike"


def test_a_refused_action_is_shown_not_hidden(client, operator, rollout):
    client.force_login(operator)
    client.post(f"/rollouts/{rollout.pk}/rollback/")

    answer = client.post(f"/rollouts/{rollout.pk}/pause/", follow=True)

    assert "Only a rollout in a stage can be paused" in answer.content.decode()


def test_the_live_part_refreshes_alone(client, reviewer, rollout):
    client.force_login(reviewer)

    part = client.get(f"/rollouts/{rollout.pk}/", HTTP_HX_REQUEST="true")

    assert b"<html" not in part.content
    assert b'id="gates"' in part.content


def test_the_publication_page_shows_each_pod(client, reviewer, operator, local_target, route, v8):
    publication = published(v8, route.canary_slot)
    PodStatus.objects.create(
        publication=publication, address="10.0.0.1:8080", pod_name="pod-a", state="failed",
        error="<script>x</script>",
    )  # fmt: skip
    client.force_login(reviewer)

    html = client.get(f"/rollouts/publications/{publication.pk}/").content.decode()

    assert "pod-a" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_list_page_takes_a_fixed_number_of_queries(client, reviewer, rollout, route, v8):
    client.force_login(reviewer)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/rollouts/").status_code == 200
        return len(ctx)

    before = count()
    services.rollout_rollback(actor=None, rollout=rollout)
    for _ in range(3):
        published(v8, route.canary_slot)
        again = services.rollout_start(actor=None, route=route, version=v8)
        services.rollout_rollback(actor=None, rollout=again)

    assert count() == before


def test_the_targets_command_registers_slots_and_a_route_once(db):
    from io import StringIO

    from django.core.management import call_command

    from rollouts.models import Route, Slot

    call_command("rollout_targets", stdout=StringIO())
    out = StringIO()
    call_command("rollout_targets", stdout=out)

    assert "route llm-classifier: exists" in out.getvalue()
    route = Route.objects.get()
    assert (route.stable_backend, route.canary_backend) == (
        "llm-classifier-blue",
        "llm-classifier-green",
    )
    # The names deploy/ uses, so a stock install needs no arguments.
    assert Slot.objects.get(name="llm-classifier-green").configmap == "llm-classifier-green-config"
    # Audited as the admin audits it, once: the second run created nothing.
    from audit.models import AuditEvent

    created = AuditEvent.objects.filter(action__in=["slot.create", "route.create"])
    assert sorted(created.values_list("action", flat=True)) == [
        "route.create", "slot.create", "slot.create",
    ]  # fmt: skip
    assert {e.actor_name for e in created} == {"cli"}


def test_an_operator_edits_a_gate_on_the_rollout_page(client, operator, reviewer, rollout):
    client.force_login(operator)
    page = client.get(f"/rollouts/{rollout.pk}/")
    assert b'id="gate-settings"' in page.content

    answer = client.post(
        f"/rollouts/{rollout.pk}/gates/",
        {"name": "p99-latency", "threshold": "20", "window": "10m", "min_requests": "50",
         "rollback_after_seconds": ""},
    )  # fmt: skip

    assert answer.status_code == 302
    gate = rollout.gates.get(name="p99-latency")
    assert (gate.threshold, gate.window, gate.min_requests) == (20, "10m", 50)
    assert gate.rollback_after_seconds is None
    client.force_login(reviewer)
    assert b'id="gate-settings"' not in client.get(f"/rollouts/{rollout.pk}/").content
    client.post(f"/rollouts/{rollout.pk}/gates/", {"name": "p99-latency", "threshold": "99",
                "window": "1m", "min_requests": "1"})  # fmt: skip
    assert rollout.gates.get(name="p99-latency").threshold == 20


@pytest.mark.django_db
def test_a_persons_reason_goes_to_the_timeline_and_never_overwrites_the_note(
    client, operator, local_target, route, v8
):
    from rollouts import services as rollout_services
    from rollouts.models import Publication, PublicationState, Rollout

    Publication.objects.create(
        version=v8, slot=route.canary_slot, sha256=v8.config_sha256,
        state=PublicationState.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    rollout = rollout_services.rollout_start(actor=operator, route=route, version=v8)
    Rollout.objects.filter(pk=rollout.pk).update(status_note="held: error-rate unknown")
    client.force_login(operator)

    client.post(f"/rollouts/{rollout.pk}/advance/", {"reason": "looked fine by hand",
                                                      "expected_stage": 1})  # fmt: skip
    client.post(f"/rollouts/{rollout.pk}/rollback/", {"reason": "customer complaint"})

    rollout.refresh_from_db()
    assert rollout.status_note == "held: error-rate unknown"
    reasons = [(t.action, t.reason) for t in rollout.transitions.all()]
    assert ("advance", "looked fine by hand") in reasons
    assert ("rollback", "customer complaint") in reasons
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'id="steps"' in page and "looked fine by hand" in page


@pytest.mark.django_db
def test_the_routes_table_says_which_version_each_slot_serves(client, reviewer, route, v7):
    from rollouts.models import Publication, PublicationState

    Publication.objects.create(
        version=v7, slot=route.stable_slot, sha256=v7.config_sha256,
        state=PublicationState.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip
    client.force_login(reviewer)

    row = client.get("/rollouts/").content.decode().split(f"<strong>{route.name}</strong>")[1]
    row = row.split("</tr>")[0]
    assert '<td class="serves">v7</td>' in row and "not published yet" in row
