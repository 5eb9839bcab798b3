"""gunicorn settings for the console's web process (``gunicorn -c gunicorn.conf.py``).

Sized for a container with about one CPU: ``WEB_CONCURRENCY`` processes of ``WEB_THREADS``
threads each (most time is spent waiting on PostgreSQL, Langfuse or the Kubernetes API).
Logs go to stderr as JSON lines (cascade_admin/logging.py), access lines included. Nothing
is written outside /tmp, so the root filesystem can be read-only.

The address is ``WEB_HOST``:``PORT``. ``WEB_HOST`` defaults to 0.0.0.0, which the container
needs (the kubelet's probes and the Service reach the pod's IP; the Dockerfile and manifests
set neither variable beyond ``PORT=8000``). bin/serve, for hosts outside Kubernetes, defaults
it to 127.0.0.1 instead. Not ``HOST``: some shells set that to the machine's name.
"""

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

from cascade_admin.env import env_bool, env_int, env_str

# A host name (RFC 1123 labels) or an IP address; anything else fails start-up here, naming
# the variable, rather than as a puzzling socket error (or a bind to the wrong interface).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def _bind_address() -> str:
    host = env_str("WEB_HOST", "0.0.0.0")  # noqa: S104 - the container's default, see above
    port = env_int("PORT", 8000, minimum=1, maximum=65535)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host) or len(host) > 253:
            raise ImproperlyConfigured(
                f"WEB_HOST={host!r} is not an IP address or host name (the port goes in PORT)."
            ) from None
        return f"{host}:{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


wsgi_app = "cascade_admin.wsgi:application"
bind = [_bind_address()]

workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
worker_class = "gthread"
threads = env_int("WEB_THREADS", 4, minimum=1)
# A request longer than this is killed and logged; the gateway's own timeout should be shorter.
timeout = env_int("WEB_TIMEOUT", 60, minimum=1)
graceful_timeout = 30  # the Deployment's terminationGracePeriodSeconds is longer
# Longer than the gateway's idle timeout, so the gateway closes idle connections first.
keepalive = 75
# Recycle workers now and then: bounds any slow leak; the jitter avoids all restarting at once.
max_requests = 2000
max_requests_jitter = 200
# Load the app before forking: faster worker start, a broken setting fails the pod at once.
preload_app = True

# Worker heartbeat files go to $TMPDIR (/tmp: an in-memory emptyDir in the Deployment).
control_socket_disable = True  # the control socket would be written under $HOME

accesslog = "-" if env_bool("WEB_ACCESS_LOG", True) else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
_json = os.environ.get("LOG_FORMAT", "json") == "json"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "cascade_admin.logging.JsonFormatter"},
        "access_json": {"()": "cascade_admin.logging.GunicornAccessJsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "error": {
            "class": "logging.StreamHandler",
            "formatter": "json" if _json else "text",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access_json" if _json else "text",
            "stream": "ext://sys.stderr",
        },
    },
    # Django's LOGGING (settings) takes over the root logger once the app is loaded.
    "root": {"handlers": ["error"], "level": loglevel.upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["error"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
