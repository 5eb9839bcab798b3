"""Where weights and configs go: a Kubernetes cluster, or the embedded local target.

``kube()`` opens a ``KubeAdapter`` for the configured cluster, or returns None on the local
target (nothing leaves the database; the whole flow can still be tried).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import conf
from .k8s_adapter import KubeAdapter, api_client_for_host, api_client_from_environment

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def kube() -> Iterator[KubeAdapter | None]:
    target = conf.k8s_target()
    if target == "local":
        yield None
        return
    timeout = conf.k8s_timeout()
    if target == "host":
        api_client = api_client_for_host(
            conf.k8s_host(), token=conf.k8s_token(), use_env_proxy=False
        )
    else:
        api_client = api_client_from_environment()
    with KubeAdapter(api_client, request_timeout=(min(timeout, 3.0), timeout)) as adapter:
        yield adapter
