"""An operator starts a canary in the browser, sees 90/10, clicks Rollback and sees 100/0,
while the HTTPRoute on the Kubernetes API stand-in changes with it."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from rollouts.k8s_adapter import backend_weights
from rollouts.models import Publication, PublicationState, Route, Slot
from routing import services as routing_services
from tests.standins.k8s_api import KubeApiStandin, httproute

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NS, HTTPROUTE = "llm", "llm-router"
STABLE, CANARY = "llm-classifier-v7", "llm-classifier-v8"


@pytest.fixture
def k8s(settings):
    with KubeApiStandin() as api:
        settings.CASCADE_K8S_TARGET = "host"
        settings.CASCADE_K8S_HOST = api.url
        settings.PROMETHEUS_URL = ""
        settings.NOTIFY_WEBHOOK_URL = ""
        api.put(httproute(NS, HTTPROUTE, [[(STABLE, 100), (CANARY, 0)]]))
        yield api


@pytest.fixture
def canary_ready(draft, operator):
    v8 = routing_services.version_freeze(actor=operator, version=draft)
    stable = Slot.objects.create(name=STABLE, namespace=NS, service=STABLE, configmap=STABLE)
    canary = Slot.objects.create(name=CANARY, namespace=NS, service=CANARY, configmap=CANARY)
    Route.objects.create(
        name="router", namespace=NS, httproute=HTTPROUTE, stable_backend=STABLE,
        canary_backend=CANARY, stable_slot=stable, canary_slot=canary,
    )  # fmt: skip
    Publication.objects.create(
        version=v8, slot=canary, sha256=v8.config_sha256, state=PublicationState.SUCCEEDED,
        finished_at=timezone.now(),
    )  # fmt: skip
    return v8


def weights(k8s):
    return backend_weights(k8s.get("httproutes", NS, HTTPROUTE), 0)


def test_operator_starts_a_canary_and_rolls_it_back(page, live_server, k8s, canary_ready):
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}/login/?next=/rollouts/")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "pw-for-tests-only")
    page.click("button[type=submit]")

    form = page.locator("#start-form")
    form.locator("select[name=route]").select_option("router")
    form.locator("select[name=version]").select_option("v8")
    form.locator("input[name=window]").fill("10")
    form.locator("select[name=unit]").select_option(label="minutes")
    form.locator("input[name=reason]").fill("weekly <b>update</b>")
    form.locator("button[type=submit]").click()

    expect(page.locator(".weight-stable")).to_have_text("90")
    expect(page.locator(".weight-canary")).to_have_text("10")
    expect(page.locator("#transitions")).to_contain_text("weekly <b>update</b>")
    assert weights(k8s) == [(STABLE, 90), (CANARY, 10)]

    page.fill(".rollback-form input[name=reason]", "error spike")
    page.click("#rollback")

    expect(page.locator(".weight-canary")).to_have_text("0")
    expect(page.locator(".weight-stable")).to_have_text("100")
    expect(page.locator("#rollout-state")).to_have_text("Rolled back")
    expect(page.locator("#rollback")).to_have_count(0)
    assert weights(k8s) == [(STABLE, 100), (CANARY, 0)]
