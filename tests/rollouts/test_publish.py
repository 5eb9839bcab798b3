"""Publishing a frozen version: ConfigMap on the stand-in, pushed to real pods, verified."""

import json
import socket

import httpx
import pytest

from rollouts.models import PodState, Publication, PublicationState
from rollouts.publish import (
    VERSION_LABEL,
    publication_execute,
    publication_retry,
    publication_start,
)
from routing.errors import Conflict
from tests.standins.k8s_api import configmap, endpoint_slice

from .conftest import CANARY, NS, register_pods

pytestmark = pytest.mark.django_db


def publish(operator, v8, slot) -> Publication:
    publication = publication_start(actor=operator, version=v8, slot=slot)
    return publication_execute(publication.pk)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_publishing_writes_the_configmap_and_every_pod_confirms_the_hash(
    k8s, route, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods)

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.SUCCEEDED
    stored = k8s.get("configmaps", NS, f"{CANARY}-config")
    assert json.loads(stored["data"]["config.json"]) == v8.config
    assert stored["metadata"]["labels"][VERSION_LABEL] == "v8"
    assert publication.configmap_outcome == "created"
    pods = list(publication.pods.all())
    assert [p.state for p in pods] == [PodState.CONFIRMED, PodState.CONFIRMED]
    assert {p.reported_sha256 for p in pods} == {v8.config_sha256}
    assert [p.pod_name for p in pods] == [f"{CANARY}-pod-0", f"{CANARY}-pod-1"]
    for pod in fresh_pods:
        assert httpx.get(f"{pod.url}/config", trust_env=False).json()["version"] == "v8"


def test_a_pod_that_cannot_be_reached_makes_it_partial_and_a_retry_finishes_it(
    k8s, route, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods[:1])
    dead = endpoint_slice(NS, f"{CANARY}-dead", CANARY, [("127.0.0.1", True, "ghost")])
    dead["ports"][0]["port"] = free_port()
    k8s.put(dead)

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.PARTIAL
    assert "1 of 2 pod(s)" in publication.error
    by_pod = {p.pod_name: p for p in publication.pods.all()}
    assert by_pod["ghost"].state == PodState.FAILED
    assert "push" in by_pod["ghost"].error
    assert by_pod[f"{CANARY}-pod-0"].state == PodState.CONFIRMED

    k8s.remove("endpointslices", NS, f"{CANARY}-dead")
    publication_retry(actor=operator, publication=publication)
    publication = publication_execute(publication.pk)

    assert publication.state == PublicationState.SUCCEEDED
    assert publication.attempts == 2
    assert [p.pod_name for p in publication.pods.all()] == [f"{CANARY}-pod-0"]


def test_a_pod_refusing_the_token_is_failed_with_the_reason(
    k8s, route, v8, operator, fresh_pods, monkeypatch
):
    register_pods(k8s, fresh_pods)
    monkeypatch.setenv("POD_ADMIN_TOKEN", "wrong")

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.FAILED
    errors = [p.error for p in publication.pods.all()]
    assert len(errors) == 2
    assert all(e.startswith("push refused: HTTP 401") for e in errors)


def test_not_ready_pods_are_skipped_and_no_ready_pod_is_a_failure(k8s, route, v8, operator):
    k8s.put(endpoint_slice(NS, f"{CANARY}-x", CANARY, [("127.0.0.1", False, "starting")]))

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.FAILED
    assert "no ready pods" in publication.error
    assert publication.pods.count() == 0


def test_a_configmap_written_concurrently_is_retried_on_the_new_version(
    k8s, route, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods)
    k8s.put(configmap(NS, f"{CANARY}-config", {"config.json": "{}"}))
    k8s.before_next(
        lambda: k8s.put(configmap(NS, f"{CANARY}-config", {"config.json": '{"other": 1}'})),
        method="PUT",
    )

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.SUCCEEDED
    assert [r.status for r in k8s.requests("PUT")] == [409, 200]
    stored = k8s.get("configmaps", NS, f"{CANARY}-config")
    assert json.loads(stored["data"]["config.json"])["sha256"] == v8.config_sha256


def test_a_pod_that_keeps_an_old_config_is_reported_with_what_it_serves(
    k8s, route, v8, operator, fresh_pods, monkeypatch
):
    register_pods(k8s, fresh_pods[:1])
    # The push lands, then the pod is set back before the hash check can see it.
    pod = fresh_pods[0]
    monkeypatch.setenv("PUBLISH_TIMEOUT", "1")
    publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
    publication.sha256 = "0" * 64  # a hash no pod will ever report
    publication.save(update_fields=["sha256"])

    publication = publication_execute(publication.pk)

    assert publication.state == PublicationState.FAILED
    (status,) = publication.pods.all()
    assert status.state == PodState.FAILED
    assert status.reported_version == "v8"
    assert "still serves v8" in status.error
    assert pod.proc.poll() is None


def test_only_frozen_versions_are_published(route, draft, operator):
    with pytest.raises(Conflict):
        publication_start(actor=operator, version=draft, slot=route.canary_slot)


def test_a_running_publication_is_not_run_twice(k8s, route, v8, operator):
    publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
    Publication.objects.filter(pk=publication.pk).update(state=PublicationState.RUNNING)

    again = publication_execute(publication.pk)

    assert again.state == PublicationState.RUNNING
    assert k8s.requests() == []


def test_a_finished_publication_cannot_be_retried(local_target, route, v8, operator):
    publication = publish(operator, v8, route.canary_slot)
    assert publication.state == PublicationState.SUCCEEDED
    assert publication.configmap_outcome == "local"

    with pytest.raises(Conflict):
        publication_retry(actor=operator, publication=publication)
