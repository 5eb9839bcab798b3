"""An in-memory Kubernetes API server on 127.0.0.1, for driving the real ``kubernetes`` client.

It serves the paths the rollouts adapter uses, with the API server's semantics where a test
could notice the difference:

- core v1 ``configmaps`` (get, list, create, update, patch, delete) and ``endpoints`` (get,
  list); ``discovery.k8s.io/v1`` ``endpointslices`` (get, list); ``gateway.networking.k8s.io/v1``
  ``httproutes`` as a custom resource (get, list, create, update, patch).
- One resourceVersion counter for all objects, bumped by every write that changes something
  (a write that changes nothing keeps the version, as etcd does).
- Create answers 201, or 409 ``AlreadyExists``. PUT with a stale ``resourceVersion`` answers
  409 ``Conflict``; PUT without one overwrites a ConfigMap but is 422 for a custom resource;
  PUT of a missing object is 404 ``NotFound`` (the real server creates on PUT only for a few
  types, none of them served here). ``KubeApiStandin(put_creates_configmaps=True)`` brings
  back the stand-in's old answer for ConfigMaps: a PUT of a missing one creates it (201).
- PATCH picks its format from Content-Type: ``application/json-patch+json`` (RFC 6902; a
  failed ``test`` op or a missing path is 422), ``application/merge-patch+json`` (RFC 7386),
  ``application/strategic-merge-patch+json`` (415 for a custom resource). A patch that sets a
  different ``metadata.resourceVersion`` is 409, as on a real server.
- ``labelSelector`` (equality and set-based) and ``fieldSelector`` (``metadata.name``,
  ``metadata.namespace``) on lists, ``limit``/``continue`` paging. A ``continue`` token made
  stale by ``store.expire_continue_tokens()`` (as etcd compaction does) answers 410 ``Expired``
  with a token for an inconsistent remainder in ``metadata.continue``, as the real server does.
- Errors are ``Status`` objects shaped like the real server's.
- HTTPRoutes have a status subresource: writes to the main resource never change ``status``;
  ``metadata.generation`` counts spec changes.

Known simplifications: strategic-merge patch of a ConfigMap is applied as a merge patch (a
ConfigMap has no merge-keyed lists worth the difference); no watch, no server-side apply, no
``generateName``, no admission or schema validation of custom resources. Continue tokens carry
no resourceVersion: a new list that reaches the same position hands out the same token again,
which makes an expired copy of it valid again.

Test helpers: ``put``/``get``/``remove`` to seed and inspect objects without HTTP, builders
for the objects (``configmap``, ``httproute``, ``endpoint_slice``, ``endpoints``), ``requests``
(the log, with the Content-Type each request carried), ``fail_next``/``delay_next``/
``drop_next`` to inject failures by path substring, ``before_next`` to run a concurrent writer
between two client requests, and ``disable`` to make a resource type unserved (as on a cluster
without it).

Writers behind the client's back (``standin.store``, an ``ObjectStore``; no HTTP, no log entry):

- ``store.edit(resource, namespace, name, change)``: ``change(obj)`` edits a copy of the object
  (in place, or returns the new one), stored as ``kubectl edit`` would store it: status kept,
  ``resourceVersion`` bumped and, on a spec change of a custom resource, ``generation`` too;
  nothing changed, nothing bumped.
- ``store.set_route_weights(namespace, name, rule_index, {"backend": weight})``: ``edit`` of
  an HTTPRoute's backendRef weights, by backend name (``None`` removes the field, i.e. weight
  1). ``KeyError`` for a missing route, rule or backend.
- ``store.expire_continue_tokens()``: every ``continue`` token handed out so far now answers
  410 ``Expired``; returns how many.
- ``store.put``/``get``/``remove``: the same as on the stand-in.

Faults the real cluster shows (``standin.faults``, a ``FaultPlan``). Each call adds a
``FaultRule`` that takes the next ``times`` requests matching its ``method`` (``"PATCH"``, or
``"*"``), ``resource`` (plural or kind: ``"httproutes"``/``"HTTPRoute"``) and optional ``name``
and ``namespace`` (None: any, lists included), the oldest rule first, one rule per request.
``apply`` says when the request is carried out against the store: ``"before"`` the fault,
``"after"`` it (after the hold) or ``"never"``.

- ``faults.hold(method, resource, name=None, *, seconds, apply, times=1, namespace=None)``:
  hold the request ``seconds``. ``apply="before"``: the change lands at once and only the
  answer is late (a client timeout loses the answer of a write that happened); ``"after"``: the
  change lands when the hold ends, long after a client that timed out has moved on.
- ``faults.drop(method, resource, name=None, *, apply, seconds=0.0, times=1, namespace=None)``:
  close the connection without an answer (the client sees a connection error).
  ``apply="before"``: the change landed; ``"never"``: the request was lost on the way in.
- ``faults.fail(method, resource, name=None, *, status, apply="never", seconds=0.0, times=1,
  namespace=None)``: answer ``status`` with the real server's Status for it; with
  ``apply="before"`` the change landed all the same (a 504 ``Timeout`` from the API server
  does not mean the write failed).
- ``rule.wait(timeout=10.0) -> bool``: until the rule has taken all its requests and each is
  settled (carried out or not, answered or dropped). ``rule.release()`` ends the holds of its
  requests held right now, as if their time had run out (an ``"after"`` hold then lands at
  once): deterministic, no sleeping. ``rule.requests`` are the requests it took.
- ``faults.clear()``: forget every rule not yet used up and the ``fail_next``-style
  intercepts, and release every held request: back to a healthy server.
  ``faults.release()`` only releases; ``faults.rules()`` lists the pending rules;
  ``faults.wait_idle(timeout=10.0) -> bool`` waits until no request is held or in hand.
- ``stop()`` ends every hold; a request held before it was carried out then never is.

Rules are thread-safe: concurrent requests each take a distinct use of a rule. With no rule
(and no intercept) set, requests are answered exactly as without this machinery. In the log, a
request a rule took has ``fault`` set to the rule and ``outcome`` to the status of carrying it
out (0 if it never was), while ``status`` is what was sent (0 for a dropped answer).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonpatch
import jsonpointer

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_READ = frozenset({"get", "list"})
_ALL = frozenset({"get", "list", "create", "update", "patch", "delete"})


@dataclass(frozen=True)
class Resource:
    """One served resource type and how the real API server treats it."""

    group: str
    version: str
    plural: str
    kind: str
    verbs: frozenset[str]
    custom: bool = False  # served from a CRD: unstructured, no strategic merge, rv needed on PUT
    status_subresource: bool = False  # status is written only through /status
    create_on_update: bool = False  # PUT of a missing object creates it (none served here)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The group-qualified resource, as it appears in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("", "v1", "configmaps", "ConfigMap", _ALL),
        Resource("", "v1", "endpoints", "Endpoints", _READ),
        Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", _READ),
        Resource(
            "gateway.networking.k8s.io",
            "v1",
            "httproutes",
            "HTTPRoute",
            frozenset({"get", "list", "create", "update", "patch"}),
            custom=True,
            status_subresource=True,
        ),
    )
}


# --- object builders ------------------------------------------------------------------------


def configmap(
    namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ConfigMap object, ready for ``KubeApiStandin.put``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "data": dict(data),
    }


def httproute(
    namespace: str,
    name: str,
    rules: Iterable[Iterable[tuple[str, int | None]]],
    *,
    port: int = 8080,
    gateway: str = "llm-gateway",
) -> dict[str, Any]:
    """An HTTPRoute whose rules forward to the given ``(service, weight)`` backendRefs.

    A weight of None leaves the field out (the Gateway API then defaults it to 1).
    """
    built_rules = []
    for backends in rules:
        refs = []
        for service, weight in backends:
            ref: dict[str, Any] = {"group": "", "kind": "Service", "name": service, "port": port}
            if weight is not None:
                ref["weight"] = weight
            refs.append(ref)
        built_rules.append(
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs}
        )
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"parentRefs": [{"name": gateway}], "rules": built_rules},
    }


def endpoint_slice(
    namespace: str,
    name: str,
    service: str,
    endpoints: Iterable[tuple[str, bool | None, str]],
    *,
    port: int = 8080,
    port_name: str = "http",
    terminating: Iterable[str] = (),
) -> dict[str, Any]:
    """An EndpointSlice of ``service`` with ``(ip, ready, pod_name)`` endpoints.

    ``ready=None`` leaves the condition out (clients must then treat it as ready). IPs listed
    in ``terminating`` are marked terminating (and should be given ``ready=False``).
    """
    terminating = set(terminating)
    items = []
    for ip, ready, pod in endpoints:
        conditions: dict[str, bool] = {}
        if ready is not None:
            conditions["ready"] = ready
            conditions["serving"] = ready or ip in terminating
        if ip in terminating:
            conditions["terminating"] = True
        items.append(
            {
                "addresses": [ip],
                "conditions": conditions,
                "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace},
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": items,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


def endpoints(
    namespace: str,
    service: str,
    ready: Iterable[tuple[str, str]],
    not_ready: Iterable[tuple[str, str]] = (),
    *,
    port: int = 8080,
    port_name: str = "http",
) -> dict[str, Any]:
    """A core v1 Endpoints object with ``(ip, pod_name)`` ready and not-ready addresses."""

    def addresses(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        return [
            {"ip": ip, "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}}
            for ip, pod in pairs
        ]

    subset: dict[str, Any] = {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}
    if ready_list := addresses(ready):
        subset["addresses"] = ready_list
    if not_ready_list := addresses(not_ready):
        subset["notReadyAddresses"] = not_ready_list
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service, "namespace": namespace},
        "subsets": [subset],
    }


# --- JSON Patch (RFC 6902, by the jsonpatch library) and JSON Merge Patch (RFC 7386) ------


class PatchError(Exception):
    """A JSON patch could not be applied: the API server answers 422."""


class _BadPatch(Exception):
    """A patch document is malformed: the API server answers 400."""


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 ``operations`` to a copy of ``doc``. A malformed patch raises _BadPatch;
    an operation that cannot apply (a failed ``test``, a missing path) raises PatchError."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise _BadPatch("a JSON patch must be a list of operations")
    try:
        patch = jsonpatch.JsonPatch(operations)
    except jsonpatch.InvalidJsonPatch as exc:
        raise _BadPatch(str(exc)) from None
    try:
        return patch.apply(doc)  # a deep copy; ``test`` compares as JSON does (true is not 1)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchError(str(exc)) from None


def same_json(a: Any, b: Any) -> bool:
    """Equal as stored bytes are (etcd compares those): unlike ``==``, ``true`` is not ``1``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch to a copy of ``target``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# --- selectors ------------------------------------------------------------------------------


class _SelectorError(Exception):
    pass


_KEY = r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?"


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Compile a Kubernetes label selector (``a=b``, ``a!=b``, ``a in (x,y)``, ``a``, ``!a``)."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_terms(text):
        if m := re.fullmatch(rf"!\s*({_KEY})", term):
            key = m.group(1)
            checks.append(lambda labels, k=key: k not in labels)
        elif m := re.fullmatch(rf"({_KEY})", term):
            key = m.group(1)
            checks.append(lambda labels, k=key: k in labels)
        elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})", term):
            key, op, value = m.group(1), m.group(3), m.group(4)
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)", term):
            key, op = m.group(1), m.group(3)
            values = {v.strip() for v in m.group(4).split(",")}
            if not all(re.fullmatch(_VALUE, v) for v in values):
                raise _SelectorError(f"unable to parse requirement: invalid values in {term!r}")
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        else:
            raise _SelectorError(f"unable to parse requirement: {term!r}")
    return lambda labels: all(check(labels) for check in checks)


def field_selector(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector on ``metadata.name`` / ``metadata.namespace``."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split_terms(text):
        m = re.fullmatch(r"(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*([^,]*)", term)
        if not m:
            label = term.split("=")[0].rstrip("!")
            raise _SelectorError(
                f'"{label}" is not a known field selector: only '
                '"metadata.name", "metadata.namespace"'
            )
        attr = m.group(1).split(".")[1]
        negate, value = m.group(2) == "!=", m.group(3)
        checks.append(lambda meta, a=attr, v=value, n=negate: (meta.get(a, "") == v) != n)
    return lambda meta: all(check(meta) for check in checks)


# --- Status bodies --------------------------------------------------------------------------


@dataclass
class ApiError(Exception):
    """An error the stand-in answers with a Status object (or, if ``plain``, with text)."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    plain: bool = False
    list_meta: dict[str, Any] | None = None  # the Status's ListMeta (e.g. a ``continue``)

    def body(self) -> dict[str, Any] | str:
        if self.plain:
            return self.message
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta or {}),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(res: Resource, name: str | None = None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    details.update(extra)
    return details


def _not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def _no_such_resource() -> ApiError:
    # A served group-version without this resource: a Status like any other 404.
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _page_not_found() -> ApiError:
    # A group-version the server does not serve at all falls through to Go's plain-text 404
    # (the client then shows its own generic "could not find the requested resource").
    return ApiError(404, "NotFound", "404 page not found\n", plain=True)


def _conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(res, name),
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _invalid(res: Resource, name: str, field_path: str, detail: str) -> ApiError:
    # Validation errors name the Kind (not the resource) and list each bad field as a cause.
    details: dict[str, Any] = {"name": name}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.kind
    details["causes"] = [{"reason": "FieldValueInvalid", "message": detail, "field": field_path}]
    return ApiError(
        422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: {field_path}: {detail}', details
    )


def _patch_failed() -> ApiError:
    # The API server reports any failed JSON-patch operation (a failed `test` included) as a
    # generic 422 without naming the operation.
    return ApiError(
        422, "Invalid", "the server rejected our request due to an error in our request", {}
    )


def _continue_expired(inconsistent_token: str) -> ApiError:
    # etcd compacted the revision the token was issued at: the real server answers 410 with
    # a token that continues from the same key at the latest revision (an inconsistent list).
    return ApiError(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You "
        "can start a new list without the continue parameter, or use the continue token in "
        "this response to retrieve the remainder of the results. Continuing with the provided "
        "token results in an inconsistent list - objects that were created, modified, or "
        "deleted between the time the first chunk was returned and now may show up in the "
        "list.",
        list_meta={"continue": inconsistent_token},
    )


def _unsupported_patch(res: Resource) -> ApiError:
    accepted = [JSON_PATCH, MERGE_PATCH]
    if not res.custom:
        accepted.append(STRATEGIC_MERGE_PATCH)
    accepted.append(APPLY_PATCH)
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def injected_error(
    code: int, res: Resource | None, verb: str, namespace: str | None, name: str | None
) -> ApiError:
    """The Status the real server sends for ``code`` (used for injected failures)."""
    if code == 403 and res is not None:
        subject = f'{res.qualified} "{name}"' if name else res.qualified
        scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        return ApiError(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "system:serviceaccount:cascade:console" cannot '
            f'{verb} resource "{res.plural}" in API group "{res.group}"{scope}',
            _details(res, name),
        )
    if code == 409 and res is not None and name:
        return _conflict(res, name)
    if code == 429:
        return ApiError(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": 1},
            headers={"Retry-After": "1"},
        )
    known = {
        401: ("Unauthorized", "Unauthorized"),
        500: ("InternalError", "Internal error occurred: injected failure"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504: ("Timeout", "Timeout: request did not complete within requested timeout"),
    }
    reason, message = known.get(code, (HTTPStatus(code).phrase.replace(" ", ""), "injected"))
    return ApiError(code, reason, message)


# --- the stand-in ---------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the stand-in received it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text if it was not JSON, or None
    status: int = 0  # the status sent; 0 if the connection was closed without an answer
    # Set only on requests a FaultRule took: the rule, and the status that carrying the
    # request out produced, whether or not the client got it (0: it was never carried out).
    fault: FaultRule | None = field(default=None, repr=False, compare=False)
    outcome: int = 0

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class _Intercept:
    """A one-shot (or ``times``-shot) action on the next matching requests."""

    kind: str  # "fail" | "delay" | "drop" | "call"
    times: int
    method: str | None
    path: str | None
    status: int = 0
    seconds: float = 0.0
    action: Callable[[], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in path
        )


_DROP = object()

_Answer = tuple[int, "dict[str, Any] | str", dict[str, str]]
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_APPLY = frozenset({"before", "after", "never"})


class FaultRule:
    """One fault for the next ``times`` matching requests (made by ``FaultPlan``).

    ``action`` is ``"hold"``, ``"drop"`` or ``"fail"``; ``apply`` says when each request is
    carried out against the store (``"before"``/``"after"`` the fault, or ``"never"``).
    """

    def __init__(
        self,
        plan: FaultPlan,
        action: str,
        method: str | None,
        resource: str,
        name: str | None,
        namespace: str | None,
        *,
        seconds: float,
        apply: str,
        times: int,
        status: int = 0,
    ) -> None:
        self._plan = plan
        self.action = action
        self.method = method  # None: any method
        self.resource = resource  # plural
        self.name = name
        self.namespace = namespace
        self.seconds = seconds
        self.apply = apply
        self.status = status
        self.times = times
        self.remaining = times  # uses not taken yet
        self.requests: list[RecordedRequest] = []  # the requests taken, in order
        self._in_flight = 0
        self._release_round = 0

    def __repr__(self) -> str:
        target = "/".join(p for p in (self.namespace, self.name) if p) or "*"
        detail = f" {self.status}" if self.action == "fail" else ""
        hold = f" {self.seconds:g}s" if self.seconds else ""
        return (
            f"<FaultRule {self.action}{detail}{hold} apply={self.apply} "
            f"{self.method or '*'} {self.resource} {target}: "
            f"{self.times - self.remaining}/{self.times} taken, {self._in_flight} in flight>"
        )

    @property
    def in_flight(self) -> int:
        """Requests taken and not yet settled (held, or being carried out)."""
        with self._plan._cond:
            return self._in_flight

    def matches(self, method: str, res: Resource, namespace: str | None, name: str | None) -> bool:
        return (
            (self.method is None or self.method == method)
            and self.resource == res.plural
            and (self.name is None or self.name == name)
            and (self.namespace is None or self.namespace == namespace)
        )

    def release(self) -> None:
        """End the holds of this rule's requests held right now (not of later ones)."""
        with self._plan._cond:
            self._release_round += 1
            self._plan._cond.notify_all()

    def cancel(self) -> None:
        """Take no more requests (those already taken go on)."""
        with self._plan._cond:
            self._plan._forget(self)

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until the rule has taken all its requests (or was cleared or cancelled) and
        each is settled: carried out or not, answered or dropped. False on timeout."""
        with self._plan._cond:
            return self._plan._cond.wait_for(
                lambda: self.remaining == 0 and self._in_flight == 0, timeout
            )


class FaultPlan:
    """The faults of one stand-in (``standin.faults``); see the module docstring."""

    def __init__(self, standin: KubeApiStandin) -> None:
        self._standin = standin
        self._cond = threading.Condition(threading.Lock())
        self._rules: list[FaultRule] = []
        self._in_flight = 0
        self._held: list[RecordedRequest] = []  # taken and not yet settled
        self._stopping = False

    def hold(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        seconds: float,
        apply: str,
        times: int = 1,
        namespace: str | None = None,
    ) -> FaultRule:
        """Hold each matching request ``seconds``, carrying it out ``"before"`` the hold (only
        the answer is late) or ``"after"`` it (the change lands late), then answer it."""
        if apply not in {"before", "after"}:
            raise ValueError(f'a held request is applied "before" or "after", not {apply!r}')
        if not seconds > 0:
            raise ValueError("a hold needs seconds > 0")
        return self._add("hold", method, resource, name, namespace, seconds, apply, times)

    def drop(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        apply: str,
        seconds: float = 0.0,
        times: int = 1,
        namespace: str | None = None,
    ) -> FaultRule:
        """Close the connection of each matching request without an answer, after carrying it
        out (``"before"``; ``"after"`` a hold of ``seconds``) or without (``"never"``)."""
        return self._add("drop", method, resource, name, namespace, seconds, apply, times)

    def fail(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        status: int,
        apply: str = "never",
        seconds: float = 0.0,
        times: int = 1,
        namespace: str | None = None,
    ) -> FaultRule:
        """Answer each matching request ``status`` (the real server's Status for it), without
        carrying it out (``"never"``) or after all (``"before"``/``"after"`` a hold)."""
        if not 400 <= status <= 599:
            raise ValueError(f"a failure status is 4xx or 5xx, not {status}")
        return self._add(
            "fail", method, resource, name, namespace, seconds, apply, times, status=status
        )

    def rules(self) -> list[FaultRule]:
        """The rules that will still take requests, oldest first."""
        with self._cond:
            return list(self._rules)

    def release(self) -> None:
        """End every hold in progress now, as if its time had run out."""
        with self._cond:
            for rule in self._rules_in_flight():
                rule._release_round += 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Back to a healthy server: forget the pending rules and the ``fail_next``-style
        intercepts, and release every held request (it then goes on as its rule says)."""
        with self._cond:
            for rule in list(self._rules):
                self._forget(rule)
            for rule in self._rules_in_flight():
                rule._release_round += 1
            self._cond.notify_all()
        with self._standin._lock:
            self._standin._intercepts.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request taken by a rule is still held or in hand. False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)

    # internals

    def _add(
        self,
        action: str,
        method: str,
        resource: str,
        name: str | None,
        namespace: str | None,
        seconds: float,
        apply: str,
        times: int,
        *,
        status: int = 0,
    ) -> FaultRule:
        wanted = method.upper()
        if wanted != "*" and wanted not in _METHODS:
            raise ValueError(f"unknown method {method!r}: one of {sorted(_METHODS)} or '*'")
        res = RESOURCES.get(resource) or next(
            (r for r in RESOURCES.values() if r.kind == resource), None
        )
        if res is None:
            raise ValueError(f"{resource!r} is not a served resource: {sorted(RESOURCES)}")
        if apply not in _APPLY:
            raise ValueError(f"apply is one of {sorted(_APPLY)}, not {apply!r}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive integer, not {times!r}")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        rule = FaultRule(
            self,
            action,
            None if wanted == "*" else wanted,
            res.plural,
            name,
            namespace,
            seconds=float(seconds),
            apply=apply,
            times=times,
            status=status,
        )
        with self._cond:
            self._rules.append(rule)
        return rule

    def _forget(self, rule: FaultRule) -> None:  # with the condition held
        rule.remaining = 0
        if rule in self._rules:
            self._rules.remove(rule)
        self._cond.notify_all()

    def _rules_in_flight(self) -> list[FaultRule]:  # with the condition held
        rules: list[FaultRule] = []
        for record in self._held:
            if record.fault is not None and record.fault not in rules:
                rules.append(record.fault)
        return rules

    def _take(
        self,
        method: str,
        res: Resource | None,
        namespace: str | None,
        name: str | None,
        record: RecordedRequest,
    ) -> FaultRule | None:
        if res is None:
            return None
        with self._cond:
            for rule in self._rules:
                if rule.matches(method, res, namespace, name):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    rule.requests.append(record)
                    rule._in_flight += 1
                    self._in_flight += 1
                    self._held.append(record)
                    record.fault = rule
                    return rule
        return None

    def _settle(self, rule: FaultRule, record: RecordedRequest) -> None:
        with self._cond:
            rule._in_flight -= 1
            self._in_flight -= 1
            self._held.remove(record)
            self._cond.notify_all()

    def _hold(self, rule: FaultRule) -> bool:
        """Hold for the rule's seconds, or until released; False if the stand-in stops."""
        if not rule.seconds:
            return not self._stopping
        with self._cond:
            round_at_start = rule._release_round
            self._cond.wait_for(
                lambda: self._stopping or rule._release_round != round_at_start, rule.seconds
            )
            return not self._stopping

    def _set_stopping(self, stopping: bool) -> None:
        with self._cond:
            self._stopping = stopping
            self._cond.notify_all()

    def _run(
        self,
        rule: FaultRule,
        record: RecordedRequest,
        carry_out: Callable[[], _Answer],
        failure: Callable[[int], ApiError],
    ) -> _Answer | object:
        """Answer a request the rule took: carry it out around the hold, then answer."""
        try:
            answer: _Answer | None = None
            if rule.apply == "before":
                answer = carry_out()
                record.outcome, record.status = answer[0], 0  # not sent yet
            if not self._hold(rule) and answer is None:
                return _DROP  # stopped while held: a request not carried out never is
            if rule.apply == "after":
                answer = carry_out()
                record.outcome, record.status = answer[0], 0
            if rule.action == "drop":
                return _DROP
            if rule.action == "fail":
                error = failure(rule.status)
                record.status = error.code
                return error.code, error.body(), error.headers
            assert answer is not None  # a hold always carries the request out
            record.status = answer[0]
            return answer
        finally:
            self._settle(rule, record)


class KubeApiStandin:
    """The stand-in server. Use as a context manager, or ``start()`` then ``stop()``.

    ``faults`` injects the faults a real cluster shows, ``store`` edits objects behind the
    client's back (see the module docstring). ``put_creates_configmaps=True`` makes a PUT of
    a missing ConfigMap create it (the stand-in's old answer; a real server says 404).
    """

    def __init__(self, *, put_creates_configmaps: bool = False) -> None:
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._revision = 1000
        self._log: list[RecordedRequest] = []
        self._intercepts: list[_Intercept] = []
        self._disabled: set[str] = set()
        self._create_on_update = {r.plural for r in RESOURCES.values() if r.create_on_update}
        if put_creates_configmaps:
            self._create_on_update.add("configmaps")
        self._continue_issued: set[str] = set()
        self._continue_expired: set[str] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.faults = FaultPlan(self)
        self.store = ObjectStore(self)

    # lifecycle

    def start(self) -> KubeApiStandin:
        self._stopping.clear()
        self.faults._set_stopping(False)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="k8s-api-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open keep-alive connections and join every server thread."""
        if self._server is None:
            return
        self._stopping.set()
        self.faults._set_stopping(True)  # ends every hold
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()  # joins the per-connection threads
        assert self._thread is not None
        self._thread.join()
        self._server = None

    def __enter__(self) -> KubeApiStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # seeding and inspection

    def put(self, obj: Mapping[str, Any], *, resource: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as another writer would (no preconditions); return the stored copy.

        The resource is taken from ``obj["kind"]`` unless given by its plural name.
        """
        res = self._resource_for(obj, resource)
        obj = copy.deepcopy(dict(obj))
        meta = obj.setdefault("metadata", {})
        key = (res.plural, meta.get("namespace", ""), meta["name"])
        with self._lock:
            existing = self._objects.get(key)
            if existing is None:
                stored = self._stamp_new(res, obj)
                if "status" in obj:  # seeding may set what a controller would have written
                    stored["status"] = copy.deepcopy(obj["status"])
            else:
                meta.pop("resourceVersion", None)
                stored = self._stamp_update(res, existing, obj, keep_status=False)
            self._objects[key] = stored
            return copy.deepcopy(stored)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def remove(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            if self._objects.pop((resource, namespace, name), None) is not None:
                self._revision += 1

    def disable(self, resource: str) -> None:
        """Stop serving a resource type: its paths answer 404 as on a cluster without it."""
        with self._lock:
            self._disabled.add(resource)

    def requests(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """The request log, optionally filtered by method and a path substring."""
        with self._lock:
            return [
                r
                for r in self._log
                if (method is None or r.method == method) and (path is None or path in r.path)
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # fault injection

    def fail_next(
        self, status: int, *, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and a real-looking Status."""
        self._intercept(_Intercept("fail", times, method, path, status=status))

    def delay_next(
        self, seconds: float, *, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Hold the next matching requests for ``seconds`` before handling them."""
        self._intercept(_Intercept("delay", times, method, path, seconds=seconds))

    def drop_next(
        self, *, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Close the connection on the next matching requests without answering."""
        self._intercept(_Intercept("drop", times, method, path))

    def before_next(
        self,
        action: Callable[[], None],
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Run ``action`` (e.g. another writer's ``put``) just before handling the next
        matching requests: a deterministic way to lose a race between a read and a write."""
        self._intercept(_Intercept("call", times, method, path, action=action))

    def _intercept(self, intercept: _Intercept) -> None:
        if intercept.method is not None:
            intercept.method = intercept.method.upper()
        with self._lock:
            self._intercepts.append(intercept)

    def _take_intercept(self, method: str, path: str) -> _Intercept | None:
        with self._lock:
            for intercept in self._intercepts:
                if intercept.matches(method, path):
                    intercept.times -= 1
                    if intercept.times <= 0:
                        self._intercepts.remove(intercept)
                    return intercept
        return None

    # request handling

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]] | object:
        """Answer one request: ``(status, JSON body or text, extra headers)`` or ``_DROP``."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        record = RecordedRequest(
            method, path, query, {k.lower(): v for k, v in headers.items()}, _parse_body(raw)
        )
        with self._lock:
            self._log.append(record)

        route = _route(path)
        res, namespace, name = route if route else (None, None, None)
        verb = _verb(method, name)
        intercept = self._take_intercept(method, path)
        rule = None
        if intercept is None or intercept.kind not in {"drop", "fail"}:
            rule = self.faults._take(method, res, namespace, name, record)
        if rule is None:
            return self._answer(record, res, namespace, name, verb, path, raw, intercept)
        return self.faults._run(
            rule,
            record,
            lambda: self._answer(record, res, namespace, name, verb, path, raw, intercept),
            lambda code: injected_error(code, res, verb, namespace, name),
        )

    def _answer(
        self,
        record: RecordedRequest,
        res: Resource | None,
        namespace: str | None,
        name: str | None,
        verb: str,
        path: str,
        raw: bytes,
        intercept: _Intercept | None,
    ) -> Any:
        """Carry out one request (after any intercept) and answer it, or ``_DROP``."""
        try:
            if intercept is not None:
                if intercept.kind == "drop":
                    record.status = 0
                    return _DROP
                if intercept.kind == "fail":
                    raise injected_error(intercept.status, res, verb, namespace, name)
                if intercept.kind == "delay":
                    self._stopping.wait(intercept.seconds)
                if intercept.kind == "call" and intercept.action is not None:
                    intercept.action()
            if res is None or res.plural in self._disabled:
                if _group_version(path) not in self._served_group_versions():
                    raise _page_not_found()
                raise _no_such_resource()
            if verb not in res.verbs:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    _details(res, name),
                )
            status, body = self._dispatch(verb, res, namespace, name, record, raw)
            record.status = status
            return status, body, {}
        except ApiError as error:
            record.status = error.code
            return error.code, error.body(), error.headers

    def _served_group_versions(self) -> set[tuple[str, str]]:
        with self._lock:
            return {
                (r.group, r.version) for r in RESOURCES.values() if r.plural not in self._disabled
            }

    def _dispatch(
        self,
        verb: str,
        res: Resource,
        namespace: str | None,
        name: str | None,
        record: RecordedRequest,
        raw: bytes,
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if verb == "list":
                return 200, self._list(res, namespace, record.query)
            if verb == "create":
                return 201, self._create(res, namespace or "", _json_object(raw))
            assert name is not None and namespace is not None
            if verb == "get":
                return 200, copy.deepcopy(self._existing(res, namespace, name))
            if verb == "update":
                return self._update(res, namespace, name, _json_object(raw))
            if verb == "patch":
                return 200, self._patch(res, namespace, name, record.content_type or "", raw)
            return 200, self._delete(res, namespace, name, raw)

    def _existing(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects.get((res.plural, namespace, name))
        if obj is None:
            raise _not_found(res, name)
        return obj

    def _list(
        self, res: Resource, namespace: str | None, query: Mapping[str, str]
    ) -> dict[str, Any]:
        try:
            labels_ok = label_selector(query.get("labelSelector", ""))
            fields_ok = field_selector(query.get("fieldSelector", ""))
        except _SelectorError as exc:
            raise _bad_request(str(exc)) from None
        keys = sorted(k for k in self._objects if k[0] == res.plural and namespace in (None, k[1]))
        token = query.get("continue", "")
        start = _decode_continue(token)
        if token in self._continue_expired:
            assert start is not None
            raise _continue_expired(_encode_continue(*start, inconsistent=True))
        items = []
        for key in keys:
            if start is not None and (key[1], key[2]) <= start:
                continue
            obj = self._objects[key]
            meta = obj["metadata"]
            if labels_ok(meta.get("labels") or {}) and fields_ok(meta):
                items.append((key, obj))
        limit = int(query.get("limit") or 0)
        list_meta: dict[str, Any] = {"resourceVersion": str(self._revision)}
        if limit and len(items) > limit:
            last_key = items[limit - 1][0]
            list_meta["continue"] = _encode_continue(last_key[1], last_key[2])
            self._continue_issued.add(list_meta["continue"])
            self._continue_expired.discard(list_meta["continue"])
            list_meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out_items = []
        for _, obj in items:
            item = copy.deepcopy(obj)
            if not res.custom:
                # Built-in list items carry no kind/apiVersion; custom resources keep theirs.
                item.pop("kind", None)
                item.pop("apiVersion", None)
            out_items.append(item)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": list_meta,
            "items": out_items,
        }

    def _check_body(self, res: Resource, body: dict[str, Any], namespace: str) -> str:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if res.custom and (not kind or not api_version):
            raise _bad_request(f"Object 'Kind' is missing in '{json.dumps(body)}'")
        if kind is not None and kind != res.kind:
            raise _bad_request(f"the kind in the data ({kind}) does not match {res.kind}")
        if api_version is not None and api_version != res.api_version:
            raise _bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({res.api_version})"
            )
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        body_namespace = meta.get("namespace")
        if body_namespace and body_namespace != namespace:
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace
        return meta.get("name") or ""

    def _create(self, res: Resource, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = self._check_body(res, body, namespace)
        if not name:
            raise _invalid(
                res, "", "metadata.name", "Required value: name or generateName is required"
            )
        if body["metadata"].get("resourceVersion"):
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be "
                "created",
            )
        key = (res.plural, namespace, name)
        if key in self._objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.qualified} "{name}" already exists',
                _details(res, name),
            )
        stored = self._stamp_new(res, body)
        self._objects[key] = stored
        return copy.deepcopy(stored)

    def _update(
        self, res: Resource, namespace: str, name: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        body_name = self._check_body(res, body, namespace)
        if body_name != name:
            raise _bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        key = (res.plural, namespace, name)
        existing = self._objects.get(key)
        if existing is None:
            if res.plural not in self._create_on_update:
                raise _not_found(res, name)
            body["metadata"].pop("resourceVersion", None)
            self._objects[key] = stored = self._stamp_new(res, body)
            return 201, copy.deepcopy(stored)
        sent_version = body["metadata"].get("resourceVersion")
        if not sent_version:
            if res.custom:
                raise _invalid(
                    res,
                    name,
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
        elif sent_version != existing["metadata"]["resourceVersion"]:
            raise _conflict(res, name)
        stored = self._stamp_update(res, existing, body, keep_status=True)
        self._objects[key] = stored
        return 200, copy.deepcopy(stored)

    def _patch(
        self, res: Resource, namespace: str, name: str, content_type: str, raw: bytes
    ) -> dict[str, Any]:
        existing = self._existing(res, namespace, name)
        media = content_type.split(";")[0].strip().lower()
        try:
            patch = json.loads(raw or b"null")
        except ValueError:
            raise _bad_request("error decoding patch: invalid JSON") from None
        if media == JSON_PATCH:
            try:
                patched = apply_json_patch(existing, patch)
            except _BadPatch as exc:
                raise _bad_request(str(exc)) from None
            except PatchError:
                raise _patch_failed() from None
        elif media == MERGE_PATCH or (media == STRATEGIC_MERGE_PATCH and not res.custom):
            if not isinstance(patch, dict):
                raise _bad_request("error decoding patch: a merge patch must be a JSON object")
            patched = apply_merge_patch(existing, patch)
        else:
            raise _unsupported_patch(res)
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise _bad_request("the patched object is not a Kubernetes object")
        meta = patched["metadata"]
        if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
            raise _invalid(res, name, "metadata.name", "Invalid value: field is immutable")
        # A resourceVersion left in the patched object is a precondition, as on a real server.
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != existing["metadata"]["resourceVersion"]:
            raise _conflict(res, name)
        stored = self._stamp_update(res, existing, patched, keep_status=True)
        self._objects[(res.plural, namespace, name)] = stored
        return copy.deepcopy(stored)

    def _delete(self, res: Resource, namespace: str, name: str, raw: bytes) -> dict[str, Any]:
        existing = self._existing(res, namespace, name)
        options = _parse_body(raw) if raw else None
        preconditions = (options or {}).get("preconditions") or {}
        wanted = preconditions.get("resourceVersion")
        current = existing["metadata"]["resourceVersion"]
        if wanted and wanted != current:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the ResourceVersion '
                f"in the precondition ({wanted}) does not match the ResourceVersion in record "
                f"({current}). The object might have been modified",
                _details(res, name),
            )
        del self._objects[(res.plural, namespace, name)]
        self._revision += 1
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": _details(res, name, uid=existing["metadata"]["uid"]),
        }

    # object bookkeeping (called with the lock held)

    def _stamp_new(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj["metadata"]
        meta.setdefault("namespace", "")
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if res.custom:
            meta["generation"] = 1
        if res.status_subresource:
            obj.pop("status", None)
        self._revision += 1
        meta["resourceVersion"] = str(self._revision)
        return obj

    def _stamp_update(
        self, res: Resource, existing: dict[str, Any], obj: dict[str, Any], *, keep_status: bool
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        old_meta = existing["metadata"]
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta = obj.setdefault("metadata", {})
        for system_field in ("namespace", "uid", "creationTimestamp", "generation"):
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
            else:
                meta.pop(system_field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if res.status_subresource and keep_status:
            obj.pop("status", None)
            if "status" in existing:
                obj["status"] = copy.deepcopy(existing["status"])
        if same_json(obj, existing):
            return existing  # a no-op write keeps the resourceVersion, as etcd does
        if res.custom and _spec_of(obj) != _spec_of(existing):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        self._revision += 1
        meta["resourceVersion"] = str(self._revision)
        return obj

    @staticmethod
    def _resource_for(obj: Mapping[str, Any], resource: str | None) -> Resource:
        if resource is not None:
            return RESOURCES[resource]
        for res in RESOURCES.values():
            if res.kind == obj.get("kind"):
                return res
        raise KeyError(f"no served resource has kind {obj.get('kind')!r}")


class ObjectStore:
    """The stand-in's objects, for writers that bypass the HTTP API (``standin.store``).

    Nothing here is logged as a request or touched by faults: it is another operator's
    ``kubectl``, a controller, etcd compaction. Thread-safe against requests being served.
    """

    def __init__(self, standin: KubeApiStandin) -> None:
        self._standin = standin

    def put(self, obj: Mapping[str, Any], *, resource: str | None = None) -> dict[str, Any]:
        """``KubeApiStandin.put``: store ``obj`` with no preconditions (status as given)."""
        return self._standin.put(obj, resource=resource)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        return self._standin.get(resource, namespace, name)

    def remove(self, resource: str, namespace: str, name: str) -> None:
        self._standin.remove(resource, namespace, name)

    def edit(
        self,
        resource: str,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any]:
        """Change an object as ``kubectl edit`` would; return the stored copy.

        ``change`` gets a copy of the stored object and edits it in place (or returns the new
        object). The result is written through the main resource as an update: ``status`` and
        the system fields of ``metadata`` stay, ``resourceVersion`` is bumped and, on a spec
        change of a custom resource, ``generation`` too. An edit that changes nothing writes
        nothing (as ``kubectl edit`` says "no changes made"). ``KeyError`` if it is missing.
        """
        res = RESOURCES[resource]
        standin = self._standin
        with standin._lock:
            existing = standin._objects.get((res.plural, namespace, name))
            if existing is None:
                raise KeyError(f'{res.qualified} "{namespace}/{name}" is not stored')
            edited = copy.deepcopy(existing)
            returned = change(edited)
            if returned is not None:
                edited = returned
            meta = edited.get("metadata")
            if not isinstance(meta, dict) or meta.get("name") != name:
                raise ValueError("an edit cannot rename the object or drop its metadata")
            stored = standin._stamp_update(res, existing, edited, keep_status=True)
            standin._objects[(res.plural, namespace, name)] = stored
            return copy.deepcopy(stored)

    def set_route_weights(
        self, namespace: str, name: str, rule_index: int, weights: Mapping[str, int | None]
    ) -> dict[str, Any]:
        """Set backendRef weights of one HTTPRoute rule by backend name, as an operator's
        ``kubectl edit`` would (``edit``); ``None`` removes the weight (the default, 1).

        ``KeyError`` if the route, the rule or a named backend is missing; ``ValueError`` if
        a backend name is in the rule twice. Return the stored route.
        """

        def change(route: dict[str, Any]) -> None:
            rules = route.get("spec", {}).get("rules") or []
            if not 0 <= rule_index < len(rules):
                raise KeyError(f"HTTPRoute {namespace}/{name} has no rule {rule_index}")
            refs = rules[rule_index].get("backendRefs") or []
            for backend, weight in weights.items():
                found = [ref for ref in refs if ref.get("name") == backend]
                if not found:
                    raise KeyError(f"rule {rule_index} of {namespace}/{name} has no {backend!r}")
                if len(found) > 1:
                    raise ValueError(f"backend {backend!r} is in rule {rule_index} twice")
                if weight is None:
                    found[0].pop("weight", None)
                else:
                    found[0]["weight"] = weight

        return self.edit("httproutes", namespace, name, change)

    def expire_continue_tokens(self) -> int:
        """Make every list ``continue`` token handed out so far stale, as etcd compaction does:
        a list that presents one answers 410 ``Expired``. Return how many tokens expired."""
        standin = self._standin
        with standin._lock:
            count = len(standin._continue_issued)
            standin._continue_expired |= standin._continue_issued
            standin._continue_issued.clear()
            return count


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in {"metadata", "status", "kind", "apiVersion"}}


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise _bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the request body must be a JSON object")
    return body


def _encode_continue(namespace: str, name: str, *, inconsistent: bool = False) -> str:
    fields: dict[str, Any] = {"start": [namespace, name]}
    if inconsistent:
        fields["rv"] = -1  # as the real server marks a token that continues at the latest
    token = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(token).decode()


def _decode_continue(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token))["start"]
    except (ValueError, KeyError, TypeError):
        raise _bad_request("continue key is not valid") from None
    return namespace, name


def _group_version(path: str) -> tuple[str, str] | None:
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        return "", "v1"
    if len(segments) >= 3 and segments[0] == "apis":
        return segments[1], segments[2]
    return None


def _route(path: str) -> tuple[Resource, str | None, str | None] | None:
    """Map an API path to (resource, namespace, name); None for paths not served."""
    group_version = _group_version(path)
    if group_version is None:
        return None
    rest = [s for s in path.split("/") if s][2 if group_version[0] == "" else 3 :]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 2:
        return None  # subresources (e.g. /status) and the namespaces resource are not served
    res = RESOURCES.get(rest[0])
    if res is None or (res.group, res.version) != group_version:
        return None
    name = rest[1] if len(rest) == 2 else None
    if name is not None and namespace is None:
        return None
    return res, namespace, name


def _verb(method: str, name: str | None) -> str:
    if method == "GET":
        return "get" if name else "list"
    if method == "POST" and name:
        return "unsupported"
    if method in {"PUT", "PATCH", "DELETE"} and not name:
        return "unsupported"  # collection-wide writes are not served
    return _VERB_BY_METHOD.get(method, "unsupported")


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every connection thread
    block_on_close = True

    def __init__(self, standin: KubeApiStandin) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections so their threads end now, not at a timeout."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-response is normal in fault-injection tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or every keep-alive response waits on a delayed ACK
    timeout = 30  # an abandoned keep-alive connection cannot hold a thread for ever
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        answer = self.server.standin.handle(self.command, self.path, dict(self.headers), raw)
        if answer is _DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, body, headers = answer  # type: ignore[misc]
        if isinstance(body, str):
            payload, media = body.encode(), "text/plain; charset=utf-8"
        else:
            payload, media = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
