"""The registry in the Django admin: audited, and frozen while a rollout holds it."""

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from rollouts.models import Route

from .test_services import start

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def route_form(route, **changes):
    data = {
        "name": route.name,
        "namespace": route.namespace,
        "httproute": route.httproute,
        "rule_index": route.rule_index,
        "stable_backend": route.stable_backend,
        "canary_backend": route.canary_backend,
        "stable_slot": route.stable_slot_id,
        "canary_slot": route.canary_slot_id,
    }
    return {**data, **changes}


def test_a_route_edit_is_audited(admin_client, route):
    url = f"/django-admin/rollouts/route/{route.pk}/change/"
    response = admin_client.post(url, route_form(route, httproute="other-route"))
    assert response.status_code == 302, response.content[:500]
    route.refresh_from_db()
    assert route.httproute == "other-route"
    event = AuditEvent.objects.get(action="route.update")
    assert event.before["httproute"] != "other-route" and event.after["httproute"] == "other-route"


def test_a_route_held_by_a_rollout_cannot_be_repointed(
    admin_client, local_target, route, v8, operator
):
    start(operator, route, v8)
    url = f"/django-admin/rollouts/route/{route.pk}/change/"
    original = route.httproute
    admin_client.post(url, route_form(route, httproute="other-route"))
    assert Route.objects.get(pk=route.pk).httproute == original
    assert admin_client.get(f"/django-admin/rollouts/route/{route.pk}/delete/").status_code == 403


def test_a_route_whose_rule_has_a_third_backend_is_refused_on_a_cluster(admin_client, k8s, slots):
    from tests.standins.k8s_api import httproute

    from .conftest import CANARY, HTTPROUTE, NS, STABLE

    stable, canary = slots
    k8s.put(httproute(NS, HTTPROUTE, [[(STABLE, 80), (CANARY, 10), ("legacy", 10)]]))
    form = {
        "name": "router", "namespace": NS, "httproute": HTTPROUTE, "rule_index": 0,
        "stable_backend": STABLE, "canary_backend": CANARY,
        "stable_slot": stable.pk, "canary_slot": canary.pk,
    }  # fmt: skip

    refused = admin_client.post("/django-admin/rollouts/route/add/", form)
    missing = admin_client.post("/django-admin/rollouts/route/add/", {**form, "httproute": "nope"})

    assert refused.status_code == 200 and not Route.objects.exists()
    assert "backendRefs [&#x27;legacy&#x27;] besides" in refused.content.decode()
    assert missing.status_code == 200 and "nope" in missing.content.decode()
    k8s.put(httproute(NS, HTTPROUTE, [[(STABLE, 90), (CANARY, 10)]]))
    accepted = admin_client.post("/django-admin/rollouts/route/add/", form)
    assert accepted.status_code == 302 and Route.objects.get().httproute == HTTPROUTE


def test_slots_and_routes_are_deleted_one_by_one_and_audited(admin_client, route):
    listing = admin_client.get("/django-admin/rollouts/route/").content.decode()
    assert "delete_selected" not in listing  # a bulk delete would skip audit and held checks
    url = f"/django-admin/rollouts/route/{route.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Route.objects.filter(pk=route.pk).exists()
    deleted = AuditEvent.objects.get(action="route.delete")
    assert deleted.actor_name == "root" and deleted.before["name"] == route.name


def test_the_command_registers_through_the_same_audited_service(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("rollout_targets", "--route", "r1", stdout=StringIO())
    call_command("rollout_targets", "--route", "r1", stdout=StringIO())  # idempotent

    created = AuditEvent.objects.filter(action__in=["slot.create", "route.create"])
    assert sorted(e.action for e in created) == ["route.create", "slot.create", "slot.create"]
    assert {e.actor_name for e in created} == {"cli"}
