"""The one adapter between the console and the Kubernetes API (official ``kubernetes`` client).

What it does: read and write ConfigMaps (the classifier config of a slot), read HTTPRoutes and
move their backend weights with guarded JSON patches, and list the ready pod addresses of a
Service. No Django here: callers pass namespaces and names from their own settings.

Every failure comes out as ``KubeError`` with ``retryable`` telling whether the same call may
succeed later (timeouts, connection errors, 5xx, 429, 409 conflicts) or never will as sent
(400, 401, 403, 404, 415, 422). Subclasses name the cases callers branch on: ``NotFound``,
``RouteChanged`` (a guarded weight patch was refused), ``InvalidWeights``, ``KubeConfigError``.

Clients are built explicitly, never through the library's global default configuration:
``api_client_for_host`` (tests, or a known endpoint) and ``api_client_from_environment``
(``KUBECONFIG`` + ``CASCADE_K8S_CONTEXT``, else the in-cluster service account).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config
from kubernetes.config.config_exception import ConfigException

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_PLURAL = "httproutes"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
JSON_PATCH = "application/json-patch+json"
FIELD_MANAGER = "cascade-console"

#: (connect, read) seconds for every API call; a rollback must fail fast, not hang.
DEFAULT_TIMEOUT: tuple[float, float] = (3.0, 10.0)

T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------------


log = logging.getLogger(__name__)

LIST_RESTARTS = 3  # a paged list whose continue token keeps expiring gives up after this


class KubeError(Exception):
    """A Kubernetes API call failed.

    ``retryable`` says whether repeating the call (after a re-read, for a 409) can succeed.
    ``status`` is the HTTP status (None when no response came back); ``reason`` is the
    ``Status.reason`` of the API server (``NotFound``, ``Conflict``, ``Forbidden``...) or, with
    no response, ``Timeout`` / ``ConnectionError``.
    """

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.reason) if part)
        return f"{head}: {self.message}" if head else self.message

    @property
    def maybe_applied(self) -> bool:
        """No answer, or an answer that does not say: the request may have taken effect
        (a timeout after sending, a dropped connection, a gateway's 5xx). Settle by reading
        the object back; never report it as "not changed"."""
        if self.status is None:
            return self.reason in ("Timeout", "ConnectionError")
        return self.status in (500, 502, 503, 504)


class NotFound(KubeError):
    """The object (or, for a list, the resource type) does not exist. Permanent."""


class RouteChanged(KubeError):
    """The HTTPRoute is not what the weight change was computed against. Permanent.

    Raised when the guarded patch is refused (its ``test`` ops on the backendRef names or on
    ``metadata.resourceVersion`` failed: the route was reordered or edited concurrently), when
    the caller's ``expected_resource_version`` is stale, or when the rule or a named backend
    is missing. Nothing was written; re-read the route and decide again.
    """


class WeightsDrifted(RouteChanged):
    """The route's live weights are not the ones the caller believes are live: someone changed
    them elsewhere. ``live`` holds what the route has (backend -> weight). Nothing was written."""

    def __init__(self, message: str, *, live: Mapping[str, int], **kwargs: Any) -> None:
        super().__init__(message, retryable=False, **kwargs)
        self.live = dict(live)


class InvalidWeights(KubeError):
    """The requested weights are not integers in 0..100, or would send no traffic at all."""


class KubeConfigError(KubeError):
    """No usable cluster configuration in the environment. Permanent."""


def _retryable_status(status: int) -> bool:
    # 409: a conflict resolves by re-reading; 408/429/5xx: the server may answer later.
    return status in (408, 409, 429) or status >= 500


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return ""


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def error_from_api_exception(exc: ApiException, action: str) -> KubeError:
    """Translate a client ``ApiException`` into a typed ``KubeError``."""
    body = _status_body(exc)
    status = exc.status or None
    message = f"{action}: {body.get('message') or exc.reason or 'no message'}"
    if status is None:
        # Status 0 is what the client reports for TLS failures and unsendable requests:
        # a certificate or configuration problem, which repeating does not fix.
        return KubeError(message, retryable=False, reason="ClientError")
    # Without a Status body (e.g. a proxy's or Go's plain-text 404), name the HTTP status the
    # way Status reasons are spelled: "Not Found" -> "NotFound".
    reason = body.get("reason") or _phrase(status)
    cls = NotFound if status == 404 else KubeError
    return cls(message, retryable=_retryable_status(status), status=status, reason=reason)


def _error_from_transport(exc: Exception, action: str) -> KubeError:
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # urllib3 files a refused connection (NewConnectionError) under ConnectTimeoutError.
    timed_out = isinstance(
        cause, urllib3.exceptions.TimeoutError | TimeoutError
    ) and not isinstance(cause, urllib3.exceptions.NewConnectionError)
    reason = "Timeout" if timed_out else "ConnectionError"
    return KubeError(f"{action}: {exc}", retryable=True, reason=reason)


@contextmanager
def _calling(action: str) -> Iterator[None]:
    """Turn the client's exceptions inside the block into ``KubeError``s naming ``action``."""
    try:
        yield
    except ApiException as exc:
        raise error_from_api_exception(exc, action) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _error_from_transport(exc, action) from exc


def retry_on_conflict(
    operation: Callable[[], T],
    *,
    attempts: int = 5,
    delay: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run a read-modify-write ``operation`` again while it fails with a 409 conflict.

    ``operation`` must re-read the object on every call (``apply_configmap`` does), so each
    attempt writes on top of the latest version. At most ``attempts`` calls; the last conflict
    is re-raised (still retryable, so a task may try again later). Other errors propagate at
    once. The pause grows linearly with jitter, so two writers do not collide in lockstep.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except KubeError as exc:
            if exc.status != 409 or attempt == attempts:
                raise
            sleep(delay * attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


# --- clients --------------------------------------------------------------------------------


def _tune(cfg: client.Configuration) -> None:
    # One quick retry of a failed connect (the request was never sent, so it is safe for any
    # method); never a silent resend after the request went out: callers own those retries.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)


def api_client_for_host(
    host: str,
    *,
    token: str | None = None,
    ca_cert_path: str | None = None,
    verify_ssl: bool = True,
    use_env_proxy: bool = True,
) -> client.ApiClient:
    """An ``ApiClient`` for an explicit API server URL (tests, or a known endpoint).

    ``use_env_proxy=False`` ignores ``HTTP(S)_PROXY`` from the environment (a local stand-in
    must be reached directly).
    """
    cfg = client.Configuration(host=host, ssl_ca_cert=ca_cert_path, verify_ssl=verify_ssl)
    if not use_env_proxy:
        cfg.proxy = None
    if token:
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
    _tune(cfg)
    return client.ApiClient(cfg)


def api_client_from_environment(environ: Mapping[str, str] | None = None) -> client.ApiClient:
    """An ``ApiClient`` configured from the environment, with no global state.

    ``KUBECONFIG`` set: that kubeconfig (a ``:``-separated list is merged, as kubectl does),
    with the context named by ``CASCADE_K8S_CONTEXT`` or else its current context. Otherwise,
    inside a pod (``KUBERNETES_SERVICE_HOST`` set): the pod's service account. Otherwise, or if
    the configuration cannot be loaded: ``KubeConfigError``. Never falls back to
    ``~/.kube/config`` silently.
    """
    env = os.environ if environ is None else environ
    kubeconfig = env.get("KUBECONFIG", "").strip()
    context = env.get("CASCADE_K8S_CONTEXT", "").strip() or None
    cfg = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,  # never write refreshed credentials back to the file
            )
        elif env.get("KUBERNETES_SERVICE_HOST"):
            if context:
                raise KubeConfigError(
                    "CASCADE_K8S_CONTEXT is set but KUBECONFIG is not: a context needs a "
                    "kubeconfig",
                    retryable=False,
                )
            loader = incluster_config.InClusterConfigLoader(
                token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
                cert_filename=incluster_config.SERVICE_CERT_FILENAME,
                environ=env,
            )
            loader.load_and_set(cfg)
        else:
            raise KubeConfigError(
                "no Kubernetes configuration: set KUBECONFIG (and optionally "
                "CASCADE_K8S_CONTEXT), or run inside a cluster",
                retryable=False,
            )
    except (ConfigException, OSError) as exc:
        raise KubeConfigError(
            f"cannot load the Kubernetes configuration: {exc}", retryable=False
        ) from exc
    _tune(cfg)
    return client.ApiClient(cfg)


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigMap:
    """The parts of a ConfigMap the console uses."""

    namespace: str
    name: str
    data: dict[str, str]
    labels: dict[str, str]
    resource_version: str

    @classmethod
    def from_model(cls, obj: client.V1ConfigMap) -> ConfigMap:
        meta = obj.metadata
        assert meta is not None  # the API server always sends an object's metadata
        return cls(
            namespace=meta.namespace or "",
            name=meta.name or "",
            data=dict(obj.data or {}),
            labels=dict(meta.labels or {}),
            resource_version=meta.resource_version or "",
        )


@dataclass(frozen=True)
class ConfigMapWrite:
    """What ``apply_configmap`` did: ``updated``, or ``unchanged`` (no write)."""

    configmap: ConfigMap
    outcome: Literal["updated", "unchanged"]


@dataclass(frozen=True)
class PodAddress:
    """One ready endpoint of a Service: a pod IP and a port."""

    ip: str
    port: int
    pod_name: str | None = None
    port_name: str | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"


# --- HTTPRoute helpers (pure) ---------------------------------------------------------------


def _route_label(route: Mapping[str, Any]) -> str:
    meta = route.get("metadata") or {}
    return f"HTTPRoute {meta.get('namespace', '?')}/{meta.get('name', '?')}"


def _backend_refs(route: Mapping[str, Any], rule_index: int) -> list[dict[str, Any]]:
    rules = (route.get("spec") or {}).get("rules") or []
    if not 0 <= rule_index < len(rules):
        raise RouteChanged(
            f"{_route_label(route)} has {len(rules)} rule(s); rule {rule_index} does not exist",
            retryable=False,
        )
    return list(rules[rule_index].get("backendRefs") or [])


def backend_weights(route: Mapping[str, Any], rule_index: int) -> list[tuple[str, int]]:
    """``(backend name, weight)`` for each backendRef of a rule, in route order.

    A backendRef without a weight counts as 1, the Gateway API default.
    """
    return [
        (str(ref.get("name", "")), int(ref.get("weight", 1)))
        for ref in _backend_refs(route, rule_index)
    ]


def check_only_backends(route: Mapping[str, Any], rule_index: int, backends: set[str]) -> None:
    """Raise ``RouteChanged`` if the rule has backendRefs besides ``backends``: with a third
    backend the split would not be the percentages the console sets and shows."""
    others = [name for name, _ in backend_weights(route, rule_index) if name not in backends]
    if others:
        raise RouteChanged(
            f"{_route_label(route)} rule {rule_index} has backendRefs {others} besides "
            f"{sorted(backends)}: traffic would not split at the percentages set here. Give "
            "the canary its own rule with only the stable and canary backends.",
            retryable=False,
        )


def validate_weights(weights: Mapping[str, int]) -> None:
    """Refuse anything but a non-empty map of backend names to integers in 0..100."""
    if not weights:
        raise InvalidWeights("no weights given", retryable=False)
    for name, weight in weights.items():
        if not isinstance(name, str) or not name:
            raise InvalidWeights(f"backend name {name!r} is not a name", retryable=False)
        # bool is an int subclass; True is not a weight.
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidWeights(
                f"weight for {name!r} must be an integer in 0..100, got {weight!r}",
                retryable=False,
            )


def weight_patch(
    route: Mapping[str, Any],
    rule_index: int,
    weights: Mapping[str, int],
    *,
    resource_version: str,
    expected: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The guarded JSON patch that sets ``weights`` (by backend name) in one rule.

    ``test`` ops pin every backendRef's name at its index, the weights the caller believes
    are live (``expected``, by backend name) and the object's ``resourceVersion``, so the
    server applies the weights only to the route they were computed from, never over a
    change made elsewhere; ``replace`` (or ``add``, for a ref without a weight) ops follow.
    Raises ``RouteChanged`` if a named backend is missing or ambiguous in the rule, and
    ``InvalidWeights`` if the rule would end with all weights 0 (no traffic served).
    """
    validate_weights(weights)
    refs = _backend_refs(route, rule_index)
    names = [ref.get("name") for ref in refs]
    check_only_backends(route, rule_index, set(weights))
    positions: dict[str, int] = {}
    for backend in weights:
        found = [i for i, name in enumerate(names) if name == backend]
        if len(found) != 1:
            problem = "is not" if not found else "appears more than once"
            raise RouteChanged(
                f"{_route_label(route)} rule {rule_index}: backend {backend!r} {problem} among "
                f"its backendRefs {names}",
                retryable=False,
            )
        positions[backend] = found[0]
    total = sum(weights.get(str(ref.get("name")), int(ref.get("weight", 1))) for ref in refs)
    if total == 0:
        raise InvalidWeights(
            f"{_route_label(route)} rule {rule_index} would have all weights 0", retryable=False
        )
    base = f"/spec/rules/{rule_index}/backendRefs"
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"{base}/{i}/name", "value": name} for i, name in enumerate(names)
    ]
    for backend, weight in (expected or {}).items():
        i = names.index(backend) if backend in names else None
        if i is not None and "weight" in refs[i]:
            ops.append({"op": "test", "path": f"{base}/{i}/weight", "value": weight})
    ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
    for backend, weight in weights.items():
        i = positions[backend]
        op = "replace" if "weight" in refs[i] else "add"
        ops.append({"op": op, "path": f"{base}/{i}/weight", "value": weight})
    return ops


# --- the adapter ----------------------------------------------------------------------------


def _check_string_map(what: str, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{what} must map strings to strings; got {key!r}: {value!r}")


class KubeAdapter:
    """ConfigMaps, HTTPRoute weights and pod addresses through one ``ApiClient``.

    ``request_timeout`` applies to every call. ``close()`` (or ``with``) releases the
    client's connections.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        httproute_version: str = "v1",
        field_manager: str = FIELD_MANAGER,
        list_page_size: int = 500,
    ) -> None:
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._discovery = client.DiscoveryV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._timeout = request_timeout
        self._route_version = httproute_version
        self._field_manager = field_manager
        self._page_size = list_page_size

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> KubeAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ConfigMaps

    def _read_configmap_model(self, namespace: str, name: str) -> client.V1ConfigMap:
        with _calling(f"read ConfigMap {namespace}/{name}"):
            return self._core.read_namespaced_config_map(
                name, namespace, _request_timeout=self._timeout
            )

    def read_configmap(self, namespace: str, name: str) -> ConfigMap:
        """The ConfigMap, or ``NotFound``."""
        return ConfigMap.from_model(self._read_configmap_model(namespace, name))

    def apply_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str] | None = None,
    ) -> ConfigMapWrite:
        """Make an existing ConfigMap hold exactly ``data`` and carry ``labels``; one attempt.

        Replaces it with the ``resourceVersion`` just read, keeping its other labels,
        annotations, owner references and ``binaryData``; a concurrent write in between makes
        the server answer 409, raised as a retryable ``KubeError`` (wrap the call in
        ``retry_on_conflict``). Writes nothing when the ConfigMap already matches.

        A missing ConfigMap is never created: ``NotFound`` (permanent). The deploy kit creates
        the slots' ConfigMaps, and the console's Role has no ``create`` (RBAC cannot limit a
        create to names, so granting it would allow any ConfigMap in the namespace).
        """
        data = dict(data)
        labels = dict(labels or {})
        _check_string_map("data", data)
        _check_string_map("labels", labels)
        try:
            current = self._read_configmap_model(namespace, name)
        except NotFound as exc:
            raise NotFound(
                f"ConfigMap {namespace}/{name} of the slot is missing. The console does not "
                "create ConfigMaps; the deploy kit does: restore it with kubectl apply -k "
                "<your overlay> -l cascade.dev/seed-only=true,cascade.dev/slot=<slot> "
                "(docs/operator-guide.md), then publish again",
                retryable=False,
                status=exc.status,
                reason=exc.reason,
            ) from exc
        assert current.metadata is not None  # the API server always sends it
        current_labels = dict(current.metadata.labels or {})
        if dict(current.data or {}) == data and labels.items() <= current_labels.items():
            return ConfigMapWrite(ConfigMap.from_model(current), "unchanged")
        current.data = data
        current.metadata.labels = {**current_labels, **labels}
        with _calling(f"replace ConfigMap {namespace}/{name}"):
            written = self._core.replace_namespaced_config_map(
                name,
                namespace,
                current,
                field_manager=self._field_manager,
                _request_timeout=self._timeout,
            )
        return ConfigMapWrite(ConfigMap.from_model(written), "updated")

    # HTTPRoutes

    def read_httproute(self, namespace: str, name: str) -> dict[str, Any]:
        """The HTTPRoute as a plain dict (as the API serves it), or ``NotFound``."""
        with _calling(f"read HTTPRoute {namespace}/{name}"):
            # The client types custom objects as object; the API answers the JSON dict.
            return self._custom.get_namespaced_custom_object(  # type: ignore[return-value]
                GATEWAY_GROUP,
                self._route_version,
                namespace,
                HTTPROUTE_PLURAL,
                name,
                _request_timeout=self._timeout,
            )

    def read_weights(self, namespace: str, name: str, rule_index: int) -> dict[str, int]:
        """The live weights of one rule of an HTTPRoute, by backend name."""
        return dict(backend_weights(self.read_httproute(namespace, name), rule_index))

    def set_weights(
        self,
        namespace: str,
        name: str,
        rule_index: int,
        weights: Mapping[str, int],
        expected_resource_version: str | None = None,
        *,
        expected: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """Set backend weights (by backend name) in one rule of an HTTPRoute; return the route.

        Reads the route, then sends one guarded JSON patch (see ``weight_patch``) pinned to the
        read ``resourceVersion`` — or to ``expected_resource_version`` when the caller decided
        on an earlier read. If the route was reordered or edited in between, the server
        refuses the whole patch and this raises ``RouteChanged``: weights are never written to
        the wrong backend. With ``expected`` (backend -> the weight the caller believes is
        live) a route whose weights differ raises ``WeightsDrifted`` before any write, and the
        patch tests those weights too. Invalid weights raise ``InvalidWeights`` first.
        """
        validate_weights(weights)
        route = self.read_httproute(namespace, name)
        current_version = str(route["metadata"]["resourceVersion"])
        if expected_resource_version is not None and expected_resource_version != current_version:
            raise RouteChanged(
                f"{_route_label(route)} is at resourceVersion {current_version}, not the "
                f"expected {expected_resource_version}: it changed since it was read",
                retryable=False,
                status=None,
                reason="Changed",
            )
        if expected is not None:
            live = dict(backend_weights(route, rule_index))
            if any(live.get(backend) != weight for backend, weight in expected.items()):
                raise WeightsDrifted(
                    f"{_route_label(route)} rule {rule_index} has weights {live}, not the "
                    f"expected {dict(expected)}: they were changed elsewhere; nothing written",
                    live=live,
                    reason="Drifted",
                )
        ops = weight_patch(
            route, rule_index, weights, resource_version=current_version, expected=expected
        )
        action = f"patch weights of HTTPRoute {namespace}/{name}"
        try:
            # The client types custom objects as object; the API answers the JSON dict.
            return self._custom.patch_namespaced_custom_object(  # type: ignore[return-value]
                GATEWAY_GROUP,
                self._route_version,
                namespace,
                HTTPROUTE_PLURAL,
                name,
                ops,
                field_manager=self._field_manager,
                # Without this the client sends merge-patch, which a list body is not.
                _content_type=JSON_PATCH,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            error = error_from_api_exception(exc, action)
            causes = (_status_body(exc).get("details") or {}).get("causes") or []
            if exc.status == 422 and not any(c.get("field") for c in causes):
                # A JSON patch that fails to apply (a failed `test` op here) comes back as a
                # 422 without field causes; schema validation errors name their fields.
                raise RouteChanged(
                    f"{action}: refused because the route changed after it was read "
                    f"(backendRefs order or resourceVersion {current_version} no longer "
                    "match); nothing was written",
                    retryable=False,
                    status=422,
                    reason=error.reason,
                ) from exc
            raise error from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _error_from_transport(exc, action) from exc

    # pod addresses

    def ready_pod_addresses(
        self, namespace: str, service_name: str, *, port_name: str | None = None
    ) -> list[PodAddress]:
        """The ready endpoints of a Service, one per (address, port), sorted by pod and IP.

        Read from its EndpointSlices (``kubernetes.io/service-name`` label); endpoints whose
        ``ready`` condition is false (not ready, or terminating) are left out, and an absent
        condition counts as ready, as the API documents. ``port_name`` keeps only that port.
        If the cluster does not serve ``discovery.k8s.io/v1`` the legacy Endpoints object is
        read instead (its ``notReadyAddresses`` are left out). A Service with no slices
        yields an empty list.
        """
        try:
            slices = self._endpoint_slices(namespace, service_name)
        except NotFound:
            # Only an unserved API group answers a list with 404 (clusters before 1.21).
            return self._ready_from_endpoints(namespace, service_name, port_name)
        found: dict[tuple[str, int], PodAddress] = {}
        for piece in slices:
            if piece.address_type not in ("IPv4", "IPv6"):
                continue
            ports = [
                p
                for p in piece.ports or []
                if p.port is not None and (port_name is None or p.name == port_name)
            ]
            for endpoint in piece.endpoints or []:
                ready = endpoint.conditions.ready if endpoint.conditions else None
                if ready is False:
                    continue
                pod = _pod_name(endpoint.target_ref)
                for ip in endpoint.addresses or []:
                    for port in ports:
                        # A pod can briefly appear in two slices while they are rebalanced.
                        found[(ip, port.port)] = PodAddress(ip, port.port, pod, port.name)
        return _sorted(found.values())

    def _endpoint_slices(self, namespace: str, service_name: str) -> list[Any]:
        """Every page of the Service's EndpointSlices. A ``continue`` token that expired
        between pages (410 ``Expired``: etcd compacted its revision) starts the list again
        from the top, so the result is one consistent list, never a spliced one."""
        action = f"list EndpointSlices of Service {namespace}/{service_name}"
        for _ in range(LIST_RESTARTS + 1):
            items: list[Any] = []
            token: str | None = None
            try:
                with _calling(action):
                    while True:
                        page = self._discovery.list_namespaced_endpoint_slice(
                            namespace,
                            label_selector=f"{SERVICE_NAME_LABEL}={service_name}",
                            limit=self._page_size,
                            _continue=token,
                            _request_timeout=self._timeout,
                        )
                        items.extend(page.items or [])
                        token = page.metadata.var_continue if page.metadata else None
                        if not token:
                            return items
            except KubeError as exc:
                if exc.status != 410 or token is None:
                    raise
                log.info("%s: continue token expired; listing again", action)
        raise KubeError(
            f"{action}: the list's continue token expired {LIST_RESTARTS + 1} times in a row",
            retryable=True,
            status=410,
            reason="Expired",
        )

    def _ready_from_endpoints(
        self, namespace: str, service_name: str, port_name: str | None
    ) -> list[PodAddress]:
        with _calling(f"read Endpoints {namespace}/{service_name}"):
            obj = self._core.read_namespaced_endpoints(
                service_name, namespace, _request_timeout=self._timeout
            )
        found: dict[tuple[str, int], PodAddress] = {}
        for subset in obj.subsets or []:
            ports = [p for p in subset.ports or [] if port_name is None or p.name == port_name]
            for address in subset.addresses or []:  # notReadyAddresses are never used
                for port in ports:
                    found[(address.ip, port.port)] = PodAddress(
                        address.ip, port.port, _pod_name(address.target_ref), port.name
                    )
        return _sorted(found.values())


def _pod_name(target_ref: Any) -> str | None:
    if target_ref is not None and target_ref.kind == "Pod":
        return target_ref.name
    return None


def _sorted(addresses: Any) -> list[PodAddress]:
    return sorted(addresses, key=lambda a: (a.pod_name or "", a.ip, a.port))
