"""Publishing a frozen version: ConfigMap on the stand-in, pushed to real pods, verified."""

import json
import socket
from datetime import timedelta

import httpx
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cascade_admin.errors import Conflict
from rollouts import services
from rollouts.models import PodState, Publication, PublicationState
from rollouts.publish import (
    VERSION_LABEL,
    publication_execute,
    publication_retry,
    publication_start,
)
from tests.pod.podkit import Pod, old_pod_tree, v7, write_config
from tests.standins.k8s_api import configmap, endpoint_slice

from .conftest import CANARY, NS, POD_TOKEN, register_pods, seed_slot_configmaps

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
    assert publication.configmap_outcome == "updated"
    assert k8s.requests("POST") == []
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
    k8s, route, v8, operator, fresh_pods, settings
):
    register_pods(k8s, fresh_pods)
    settings.POD_ADMIN_TOKEN = "wrong"

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


def test_a_slot_whose_configmap_is_missing_fails_with_how_to_restore_it(
    k8s, route, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods)
    k8s.remove("configmaps", NS, f"{CANARY}-config")

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.FAILED
    assert f"ConfigMap {NS}/{CANARY}-config of the slot is missing" in publication.error
    assert "kubectl apply -k" in publication.error
    assert k8s.get("configmaps", NS, f"{CANARY}-config") is None
    assert k8s.requests("POST") == []
    assert publication.pods.count() == 0  # no pod is pushed a config its ConfigMap lacks

    # Restored by the kit, a retry finishes it.
    seed_slot_configmaps(k8s, [CANARY])
    publication_retry(actor=operator, publication=publication)
    assert publication_execute(publication.pk).state == PublicationState.SUCCEEDED


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
    k8s, route, v8, operator, fresh_pods, settings
):
    register_pods(k8s, fresh_pods[:1])
    # The push lands, then the pod is set back before the hash check can see it.
    pod = fresh_pods[0]
    settings.PUBLISH_TIMEOUT = 1
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


def test_a_second_publication_to_a_slot_waits_for_the_first(local_target, route, v8, operator):
    first = publication_start(actor=operator, version=v8, slot=route.canary_slot)

    with pytest.raises(Conflict, match=f"#{first.pk} .* still pending"):
        publication_start(actor=operator, version=v8, slot=route.canary_slot)
    # The database backs it, whatever the code path.
    with pytest.raises(IntegrityError), transaction.atomic():
        Publication.objects.create(version=v8, slot=route.canary_slot, sha256="x")


def test_a_slot_with_live_traffic_only_takes_the_version_it_serves(
    local_target, route, v7, v8, operator
):
    assert publish(operator, v7, route.stable_slot).state == PublicationState.SUCCEEDED

    with pytest.raises(Conflict, match="serves v7 to live traffic"):
        publication_start(actor=operator, version=v8, slot=route.stable_slot)
    # Republishing what it serves (a repair) is fine, and so is the idle canary slot.
    assert publish(operator, v7, route.stable_slot).state == PublicationState.SUCCEEDED
    assert publish(operator, v8, route.canary_slot).state == PublicationState.SUCCEEDED


def test_the_canary_slot_of_an_active_rollout_takes_no_new_config(
    local_target, route, v7, v8, operator
):
    publish(operator, v8, route.canary_slot)
    rollout = services.rollout_start(actor=operator, route=route, version=v8)

    with pytest.raises(Conflict, match="canary of an active rollout"):
        publication_start(actor=operator, version=v7, slot=route.canary_slot)

    services.rollout_rollback(actor=operator, rollout=rollout, reason="done")
    assert publish(operator, v7, route.canary_slot).state == PublicationState.SUCCEEDED


def test_a_publication_whose_worker_died_can_be_retried(local_target, route, v8, operator):
    publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
    Publication.objects.filter(pk=publication.pk).update(
        state=PublicationState.RUNNING, started_at=timezone.now()
    )
    with pytest.raises(Conflict):  # still within its time: the worker may be at it
        publication_retry(actor=operator, publication=publication)

    Publication.objects.filter(pk=publication.pk).update(
        started_at=timezone.now() - timedelta(hours=1)
    )
    assert publication_retry(actor=operator, publication=publication).state == "pending"

    assert publication_execute(publication.pk).state == PublicationState.SUCCEEDED


def test_a_redelivered_task_takes_over_a_publication_whose_worker_died(
    local_target, route, v8, operator
):
    publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
    Publication.objects.filter(pk=publication.pk).update(
        state=PublicationState.RUNNING, started_at=timezone.now() - timedelta(hours=1)
    )

    assert publication_execute(publication.pk).state == PublicationState.SUCCEEDED


def test_a_publication_quiet_for_over_a_minute_is_taken_over_at_once(
    local_target, route, v8, operator
):
    from rollouts.publish import stale_publication_ids

    publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
    now = timezone.now()
    Publication.objects.filter(pk=publication.pk).update(
        state=PublicationState.RUNNING, started_at=now - timedelta(minutes=2), heartbeat_at=now
    )
    assert stale_publication_ids() == []  # started long ago, but its worker still reports
    with pytest.raises(Conflict):
        publication_retry(actor=operator, publication=publication)

    Publication.objects.filter(pk=publication.pk).update(heartbeat_at=now - timedelta(seconds=61))
    assert stale_publication_ids() == [publication.pk]
    assert publication_retry(actor=operator, publication=publication).state == "pending"


def test_pods_already_holding_the_config_count_as_confirmed_without_a_push(
    k8s, route, v8, operator, fresh_pods, settings
):
    register_pods(k8s, fresh_pods)
    first = publish(operator, v8, route.canary_slot)
    assert first.state == PublicationState.SUCCEEDED
    # A worker died after the pods loaded the config: the run is taken over from the start.
    Publication.objects.filter(pk=first.pk).update(
        state=PublicationState.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    # A push now would be refused (wrong token): only a pod that is not pushed confirms.
    settings.POD_ADMIN_TOKEN = "not-the-pods-token"

    again = publication_execute(first.pk)

    assert again.state == PublicationState.SUCCEEDED
    assert {p.state for p in again.pods.all()} == {PodState.CONFIRMED}


def test_a_lost_configmap_answer_is_settled_by_reading_it_back(
    k8s, route, v8, operator, fresh_pods, settings
):
    settings.CASCADE_K8S_TIMEOUT = 1
    register_pods(k8s, fresh_pods)
    k8s.faults.hold("PUT", "configmaps", f"{CANARY}-config", seconds=4, apply="before")

    publication = publish(operator, v8, route.canary_slot)

    assert publication.state == PublicationState.SUCCEEDED, publication.error
    stored = k8s.get("configmaps", NS, f"{CANARY}-config")
    assert json.loads(stored["data"]["config.json"]) == v8.config


def test_the_first_publish_to_a_live_slot_records_what_its_pods_serve_and_refuses_a_new_version(
    k8s, route, v7, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods, service=route.stable_slot.service)  # they serve v7

    with pytest.raises(Conflict, match="serves v7 to live traffic"):
        publication_start(actor=operator, version=v8, slot=route.stable_slot)

    discovered = Publication.objects.get(slot=route.stable_slot)
    assert (discovered.version, discovered.configmap_outcome) == (v7, "discovered")
    assert discovered.state == PublicationState.SUCCEEDED
    # Repairing it with what it serves stays possible.
    assert publish(operator, v7, route.stable_slot).state == PublicationState.SUCCEEDED


def test_an_unknown_config_on_a_live_slot_becomes_a_frozen_external_version(
    k8s, route, v7, v8, operator, fresh_pods
):
    from routing.engine import canonical_config

    document = canonical_config(
        "hand-made", {"strong_keywords": ["race"], "token_threshold": 640, "turn_threshold": 6}
    )
    admin = {"Authorization": f"Bearer {POD_TOKEN}"}
    for pod in fresh_pods:
        put = httpx.put(f"{pod.url}/admin/config", json=document, headers=admin, trust_env=False)
        assert put.status_code == 200
    k8s.put(configmap(NS, f"{route.stable_slot.service}-config",
                      {"config.json": json.dumps(document)}))  # fmt: skip
    register_pods(k8s, fresh_pods, service=route.stable_slot.service)

    with pytest.raises(Conflict, match="to live traffic"):
        publication_start(actor=operator, version=v8, slot=route.stable_slot)

    external = Publication.objects.get(slot=route.stable_slot).version
    assert external.name == f"external-{document['sha256'][:12]}"
    assert external.status == "frozen" and external.token_threshold == 640
    assert list(external.keyword_set.keywords.values_list("text", flat=True)) == ["race"]


def test_an_empty_never_served_slot_takes_a_first_version_directly(
    k8s, route, v8, operator, fresh_pods
):
    register_pods(k8s, fresh_pods)  # the canary slot: weight 0, never published to

    assert publish(operator, v8, route.canary_slot).state == PublicationState.SUCCEEDED


@pytest.fixture(scope="module")
def old_pod(fake_backends, tmp_path_factory):
    """A real pod as released before scorers (it reads schema 1 only)."""
    code = old_pod_tree(tmp_path_factory.mktemp("old-pod-code"))
    weak, strong = fake_backends
    path = tmp_path_factory.mktemp("old-pod") / "config.json"
    write_config(path, v7())
    args = ["--config", str(path), "--weak-url", weak.base_url, "--strong-url", strong.base_url]
    args += ["--weak-model", "qwen3-4b", "--strong-model", "glm-5", "--reload-interval", "0"]
    pod = Pod(args, {"CASCADE_POD_ADMIN_TOKEN": POD_TOKEN}, cwd=code)
    yield pod
    pod.stop()


def test_a_scorer_version_goes_out_to_pods_that_read_its_schema(
    k8s, route, v9_scored, operator, fresh_pods
):
    register_pods(k8s, fresh_pods)

    publication = publish(operator, v9_scored, route.canary_slot)

    assert publication.state == PublicationState.SUCCEEDED
    assert v9_scored.config["schema"] == "cascade-classifier/2"
    for pod in fresh_pods:
        served = httpx.get(f"{pod.url}/config", trust_env=False).json()
        assert served["sha256"] == v9_scored.config_sha256


def test_a_schema_an_old_pod_cannot_read_is_refused_before_anything_is_written(
    k8s, route, v9_scored, operator, fresh_pods, old_pod
):
    register_pods(k8s, [fresh_pods[0], old_pod])
    before = k8s.get("configmaps", NS, f"{CANARY}-config")["data"]

    publication = publish(operator, v9_scored, route.canary_slot)

    assert publication.state == PublicationState.FAILED
    assert "cascade-classifier/2, which 1 pod(s) cannot read" in publication.error
    assert f"{CANARY}-pod-1" in publication.error and "upgrade" in publication.error
    assert k8s.get("configmaps", NS, f"{CANARY}-config")["data"] == before
    for pod in (fresh_pods[0], old_pod):
        assert httpx.get(f"{pod.url}/config", trust_env=False).json()["version"] == "v7"
    # Schema 1 still goes out to the same pods.
    publication = publish(operator, v9_scored.parent, route.canary_slot)
    assert publication.state == PublicationState.SUCCEEDED, publication.error
