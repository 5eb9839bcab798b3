"""Publishing a frozen version's config to a slot: ConfigMap, push to every ready pod, verify.

``publication_start`` / ``publication_retry`` record the request (audited) and queue the
work after commit; ``publication_execute`` does it on a worker: write the canonical config
into the slot's ConfigMap (replace with the read ``resourceVersion``, retried on 409; a
missing ConfigMap fails the publication, since the deploy kit, not the console, creates
it), ``PUT /admin/config`` on every ready pod, then poll each pod's ``GET /config`` until it
reports the version's SHA-256 or the timeout passes. A config whose schema some ready pod
does not read (``GET /config``'s ``schemas``) is refused before anything is written.
``succeeded`` only when every pod confirmed; ``partial`` when some did. Both ``partial``
and ``failed`` can be retried, and so can a ``running`` one whose worker died (older than
the publish timeout plus the task's time limit).

Guards: one publication under way per slot (database constraint); a slot held by an active
canary takes no new config; a slot that carries traffic only takes the version it already
serves (a new version goes out through a canary, not straight to live traffic).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import httpx
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict
from routing.engine import SCHEMA
from routing.models import ClassifierVersion, VersionStatus

from . import conf, selectors, targets
from .k8s_adapter import ConfigMapWrite, KubeError, PodAddress, retry_on_conflict
from .models import (
    HOLDS_ROUTE,
    PodState,
    PodStatus,
    Publication,
    PublicationState,
    Rollout,
    Route,
    Slot,
)

log = logging.getLogger(__name__)

VERSION_LABEL = "cascade.io/classifier-version"
TASK_TIME_LIMIT = 300  # seconds; the publish task's hard limit


def config_document(version: ClassifierVersion) -> str:
    """The ConfigMap's file: the canonical config as ``export_config`` writes it."""
    return json.dumps(version.config, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _queue(publication: Publication) -> None:
    from .tasks import publish_config

    transaction.on_commit(lambda: publish_config.delay(publication.pk))


def _stale() -> Q:
    """A ``running`` publication whose worker stopped reporting (died, or was killed): its
    heartbeat is older than ``PUBLISH_STALE_SECONDS``."""
    before = timezone.now() - timedelta(seconds=conf.publish_stale_seconds())
    return Q(state=PublicationState.RUNNING) & (
        Q(heartbeat_at__lt=before) | Q(heartbeat_at__isnull=True, started_at__lt=before)
    )


def _claimable() -> Q:
    return Q(state=PublicationState.PENDING) | _stale()


def _beat(publication: Publication) -> None:
    Publication.objects.filter(pk=publication.pk).update(heartbeat_at=timezone.now())


def stale_publication_ids() -> list[int]:
    """Running publications whose worker is gone (for the beat and a starting worker)."""
    return list(Publication.objects.filter(_stale()).values_list("pk", flat=True))


def _check_slot_takes(version: ClassifierVersion, slot: Slot) -> None:
    """Refuse a publication the slot must not take now (see the module's guards)."""
    if Rollout.objects.filter(HOLDS_ROUTE, route__canary_slot=slot).exists():
        raise Conflict(
            f"{slot} is the canary of an active rollout: roll it back or let it finish first."
        )
    live = [
        route
        for route in Route.objects.filter(Q(stable_slot=slot) | Q(canary_slot=slot))
        if (route.stable_weight if route.stable_slot_id == slot.pk else route.canary_weight) > 0
    ]
    serving = selectors.slot_serving(slot)
    if live and serving is not None and serving.version_id != version.pk:
        raise Conflict(
            f"{slot} serves {serving.version} to live traffic on {live[0]}: publish {version} "
            "to the canary slot and roll it out instead."
        )
    under_way = Publication.objects.filter(
        slot=slot, state__in=[PublicationState.PENDING, PublicationState.RUNNING]
    ).first()
    if under_way is not None:
        raise Conflict(f"Publication #{under_way.pk} to {slot} is still {under_way.state}.")


def discover_serving(slot: Slot) -> Publication | None:
    """Record what a slot's pods serve, read from their ``GET /config``: the known version
    with that SHA-256, or a frozen external version made from the slot's ConfigMap (named
    by its hash), so it can be rolled back to. None on the local target (no pods)."""
    with targets.kube() as kube:
        if kube is None:
            return None
        try:
            addresses = kube.ready_pod_addresses(
                slot.namespace, slot.service, port_name=slot.admin_port_name or None
            )
        except KubeError as exc:
            raise Conflict(f"{slot} carries traffic and its pods cannot be listed: {exc}") from exc
        shas = set()
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            for address in (_pod_address(slot, a) for a in addresses):
                try:
                    shas.add(http.get(f"{address.base_url}/config").json()["sha256"])
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue
        if len(shas) != 1:
            raise Conflict(
                f"{slot} carries traffic but what it serves is unclear: "
                + (
                    "no pod answered GET /config."
                    if not shas
                    else f"its pods serve {sorted(shas)}."
                )
            )
        sha = shas.pop()
        version = ClassifierVersion.objects.filter(config_sha256=sha).first()
        if version is None:
            version = _external_version(kube, slot, sha)
    with transaction.atomic():
        publication = Publication.objects.create(
            version=version,
            slot=slot,
            sha256=sha,
            state=PublicationState.SUCCEEDED,
            configmap_outcome="discovered",
            started_at=timezone.now(),
            finished_at=timezone.now(),
        )
        audit_record(
            actor=None,
            action="publication.discovered",
            obj=publication,
            after={"slot": slot.name, "version": version.name, "sha256": sha},
            message="found serving before the console first published to the slot",
        )
    return publication


def _external_version(kube, slot: Slot, sha: str) -> ClassifierVersion:
    """A frozen version holding the config a slot serves that no version knows."""
    from routing import services as routing_services

    try:
        raw = kube.read_configmap(slot.namespace, slot.configmap).data.get(slot.configmap_key, "")
        document = json.loads(raw)
    except (KubeError, ValueError) as exc:
        raise Conflict(f"{slot} serves an unknown config ({sha[:12]}) that cannot be read") from exc
    if not isinstance(document, dict) or document.get("sha256") != sha:
        raise Conflict(
            f"{slot}'s pods serve an unknown config ({sha[:12]}) that its ConfigMap does not "
            "hold: publish nothing until they agree."
        )
    name = f"external-{sha[:12]}"
    version = ClassifierVersion.objects.filter(name=name).first()
    if version is None:
        with transaction.atomic():
            version = routing_services.version_create_draft(
                actor=None,
                name=name,
                keywords=document.get("strong_keywords") or [],
                token_threshold=document["token_threshold"],
                turn_threshold=document["turn_threshold"],
                byte_threshold=document.get("byte_threshold"),
                scorer=document.get("scorer"),
                notes=f"Found serving on {slot} (config {sha}, as {document.get('version')!r}) "
                "before the console first published there; kept so it can be rolled back to.",
            )
            version = routing_services.version_freeze(actor=None, version=version)
    return version


def _carries_traffic(slot: Slot) -> bool:
    return any(
        (route.stable_weight if route.stable_slot_id == slot.pk else route.canary_weight) > 0
        for route in Route.objects.filter(Q(stable_slot=slot) | Q(canary_slot=slot))
    )


def publication_start(*, actor, version: ClassifierVersion, slot: Slot) -> Publication:
    """Record a publication of a frozen ``version`` to ``slot`` and queue it.

    A slot that carries traffic but was never published to by the console is first asked
    what it serves (``discover_serving``, recorded for good): a new version then has to go
    through a canary like any other change.
    """
    if version.status != VersionStatus.FROZEN:
        raise Conflict(f"Only a frozen version can be published; {version} is {version.status}.")
    if selectors.slot_serving(slot) is None and _carries_traffic(slot):
        discover_serving(slot)
    return _publication_start(actor=actor, version=version, slot=slot)


@transaction.atomic
def _publication_start(*, actor, version: ClassifierVersion, slot: Slot) -> Publication:
    slot = Slot.objects.select_for_update().get(pk=slot.pk)  # serialises starts per slot
    _check_slot_takes(version, slot)
    try:
        with transaction.atomic():
            publication = Publication.objects.create(
                version=version,
                slot=slot,
                sha256=version.config_sha256,
                created_by=user_of(actor),
            )
    except IntegrityError:
        raise Conflict(f"Another publication to {slot} is under way.") from None
    audit_record(
        actor=actor,
        action="publication.start",
        obj=publication,
        after={"version": version.name, "slot": slot.name, "sha256": version.config_sha256},
    )
    _queue(publication)
    return publication


@transaction.atomic
def publication_retry(*, actor, publication: Publication) -> Publication:
    """Run a partial, failed or stale running publication again (every ready pod is pushed
    again). Refused when the slot has moved on to a newer publication."""
    retryable = Q(state__in=[PublicationState.PARTIAL, PublicationState.FAILED]) | _stale()
    newer = Publication.objects.filter(slot_id=publication.slot_id, pk__gt=publication.pk)
    if newer.exists():
        raise Conflict(f"{publication.slot} has a newer publication; start a new one instead.")
    try:
        with transaction.atomic():
            updated = Publication.objects.filter(retryable, pk=publication.pk).update(
                state=PublicationState.PENDING, error="", finished_at=None
            )
    except IntegrityError:
        raise Conflict(f"Another publication to {publication.slot} is under way.") from None
    if not updated:
        publication.refresh_from_db()
        raise Conflict(f"Publication #{publication.pk} is {publication.state}; nothing to retry.")
    publication.refresh_from_db()
    audit_record(actor=actor, action="publication.retry", obj=publication)
    _queue(publication)
    return publication


def _finish(publication: Publication, state: str, error: str = "") -> Publication:
    with transaction.atomic():
        Publication.objects.filter(pk=publication.pk).update(
            state=state, error=error, finished_at=timezone.now()
        )
        publication.refresh_from_db()
        audit_record(
            actor=None,
            action=f"publication.{state}",
            obj=publication,
            after={"state": state, "pods": _pod_summary(publication)},
            message=error,
        )
    log.info("publication %s %s %s", publication.pk, state, error)
    return publication


def _pod_summary(publication: Publication) -> dict[str, str]:
    return dict(publication.pods.values_list("address", "state"))


def _pod_address(slot: Slot, address: PodAddress) -> PodAddress:
    if slot.admin_port:
        return PodAddress(address.ip, slot.admin_port, address.pod_name, address.port_name)
    return address


def _set_pod(publication: Publication, address: PodAddress, **fields) -> None:
    PodStatus.objects.update_or_create(
        publication=publication,
        address=f"{address.ip}:{address.port}",
        defaults={"pod_name": address.pod_name or "", **fields},
    )


def publication_execute(publication_id: int) -> Publication:
    """Do one attempt of a pending publication; a running or finished one is left alone."""
    now = timezone.now()
    claimed = Publication.objects.filter(_claimable(), pk=publication_id).update(
        state=PublicationState.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    publication = Publication.objects.select_related("version", "slot").get(pk=publication_id)
    if not claimed:
        return publication
    slot, version = publication.slot, publication.version
    with targets.kube() as kube:
        if kube is None:
            Publication.objects.filter(pk=publication.pk).update(configmap_outcome="local")
            return _finish(publication, PublicationState.SUCCEEDED, "local target: recorded only")
        data = {slot.configmap_key: config_document(version)}
        try:
            addresses = kube.ready_pod_addresses(
                slot.namespace, slot.service, port_name=slot.admin_port_name or None
            )
            addresses = [_pod_address(slot, a) for a in addresses]
            # Before the ConfigMap: a pod that restarted on a config it cannot read
            # would have none at all.
            unreadable = _pods_that_cannot_read(addresses, version.config["schema"])
            if unreadable:
                return _finish(publication, PublicationState.FAILED, unreadable)
            written = _write_configmap(kube, slot, data, version)
            Publication.objects.filter(pk=publication.pk).update(
                configmap_outcome=written.outcome,
                configmap_resource_version=written.configmap.resource_version or "",
            )
        except KubeError as exc:
            return _finish(publication, PublicationState.FAILED, str(exc))
    _beat(publication)
    publication.pods.all().delete()  # a retry starts from the pods that are ready now
    if not addresses:
        return _finish(
            publication, PublicationState.FAILED, f"Service {slot.service} has no ready pods."
        )
    _push_and_verify(publication, addresses)
    confirmed = publication.pods.filter(state=PodState.CONFIRMED).count()
    if confirmed == len(addresses):
        return _finish(publication, PublicationState.SUCCEEDED)
    failed = len(addresses) - confirmed
    state = PublicationState.PARTIAL if confirmed else PublicationState.FAILED
    return _finish(
        publication, state, f"{failed} of {len(addresses)} pod(s) did not confirm the config."
    )


def pod_schemas(http: httpx.Client, address: PodAddress) -> list[str] | None:
    """The config schemas a pod reads, from its ``GET /config`` (answered even before it
    has a config); a pod from before schemas were reported reads schema 1 only. None when
    the pod does not answer: the push will tell."""
    try:
        body = http.get(f"{address.base_url}/config").json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    schemas = body.get("schemas")
    if schemas is None and isinstance(body.get("error"), dict):
        schemas = body["error"].get("schemas")
    return list(schemas) if isinstance(schemas, list) else [SCHEMA]


def _pods_that_cannot_read(addresses: list[PodAddress], schema: str) -> str:
    """Why the config must not go out (some pod cannot read its schema), or ""."""
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        old = [
            f"{a.pod_name or a.ip}:{a.port} reads {', '.join(schemas)}"
            for a in addresses
            if (schemas := pod_schemas(http, a)) is not None and schema not in schemas
        ]
    if not old:
        return ""
    return (
        f"The config is {schema}, which {len(old)} pod(s) cannot read ({'; '.join(old)}): "
        "upgrade the classifier pods first. Nothing was written."
    )


def _write_configmap(kube, slot: Slot, data: dict[str, str], version: ClassifierVersion):
    """Write the slot's ConfigMap; an answer that was lost is settled by reading it back."""
    try:
        return retry_on_conflict(
            lambda: kube.apply_configmap(
                slot.namespace, slot.configmap, data, {VERSION_LABEL: version.name}
            )
        )
    except KubeError as exc:
        if not exc.maybe_applied:
            raise
        current = kube.read_configmap(slot.namespace, slot.configmap)
        if current.data != data:
            raise
        log.info("ConfigMap %s: the write's answer was lost, but it landed", slot.configmap)
        return ConfigMapWrite(current, "updated")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"HTTP {response.status_code}: {error.get('message') or error.get('code')}"
    return f"HTTP {response.status_code}"


def _serves(http: httpx.Client, address: PodAddress, sha256: str) -> bool:
    try:
        response = http.get(f"{address.base_url}/config")
        return response.status_code == 200 and response.json().get("sha256") == sha256
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def _push_and_verify(publication: Publication, addresses: list[PodAddress]) -> None:
    document = publication.version.config
    token = conf.pod_admin_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    pending: dict[str, PodAddress] = {}
    # Pods are cluster-internal: never through an HTTP proxy from the environment.
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        for address in addresses:
            _set_pod(publication, address, state=PodState.PENDING, error="")
            _beat(publication)
            if _serves(http, address, publication.sha256):
                # A worker that died after pushing, or a pod that loaded the ConfigMap:
                # the pod holds the config already.
                _set_pod(
                    publication,
                    address,
                    state=PodState.CONFIRMED,
                    reported_version=publication.version.name,
                    reported_sha256=publication.sha256,
                    error="",
                )
                continue
            try:
                response = http.put(
                    f"{address.base_url}/admin/config", json=document, headers=headers
                )
            except httpx.TimeoutException as exc:
                # The answer is lost, not the push: the pod may have loaded it. Verify below.
                _set_pod(publication, address, state=PodState.PUSHED, error=f"push: {exc}")
                pending[address.base_url] = address
                continue
            except httpx.HTTPError as exc:
                _set_pod(publication, address, state=PodState.FAILED, error=f"push: {exc}")
                continue
            if response.status_code != 200:
                _set_pod(
                    publication,
                    address,
                    state=PodState.FAILED,
                    error=f"push refused: {_error_text(response)}",
                )
                continue
            _set_pod(publication, address, state=PodState.PUSHED)
            pending[address.base_url] = address

        deadline = time.monotonic() + conf.publish_timeout()
        seen: dict[str, tuple[str, str, str]] = {}
        while pending:
            _beat(publication)
            for url, address in list(pending.items()):
                try:
                    response = http.get(f"{url}/config")
                    body = response.json() if response.status_code == 200 else {}
                except (httpx.HTTPError, ValueError) as exc:
                    seen[url] = ("", "", f"GET /config: {exc}")
                    continue
                reported = (str(body.get("version", "")), str(body.get("sha256", "")), "")
                seen[url] = reported
                if reported[1] == publication.sha256:
                    _set_pod(
                        publication,
                        address,
                        state=PodState.CONFIRMED,
                        reported_version=reported[0],
                        reported_sha256=reported[1],
                        error="",
                    )
                    del pending[url]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(conf.publish_poll_interval())
        for url, address in pending.items():
            version, sha, error = seen.get(url, ("", "", "no answer"))
            _set_pod(
                publication,
                address,
                state=PodState.FAILED,
                reported_version=version,
                reported_sha256=sha,
                error=error or f"still serves {version or '?'} ({sha[:12] or 'no hash'})",
            )
