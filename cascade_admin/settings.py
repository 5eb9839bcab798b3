"""Settings, all read from the environment (see cascade_admin/env.py).

With nothing set, the console runs embedded: SQLite under ``var/``, Celery tasks
in-process, a generated secret key kept in ``var/``. Production sets at least
DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and ALLOWED_HOSTS, and behind a TLS-terminating
gateway TRUST_X_FORWARDED_PROTO and SECURE_SSL_REDIRECT (docs/operator-guide.md lists the
whole production environment; with it ``manage.py check --deploy`` is clean).
"""

import ipaddress
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CASCADE_VAR_DIR", str(BASE_DIR / "var")))

DATABASE_URL = env_str("DATABASE_URL", "")
EMBEDDED = not DATABASE_URL

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])


def _embedded_secret_key() -> str:
    """A per-install random key, so the embedded mode needs no set-up and shares no secret."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY is required when DATABASE_URL is set.")
    SECRET_KEY = _embedded_secret_key()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "cascade_admin",  # project-wide commands (seed_demo seeds every app)
    "accounts",
    "audit",
    "routing",
    "labeling",
    "tuning",
    "rollouts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LoginRequiredExceptApiMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused for a locked-out client into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cascade_admin.urls"
WSGI_APPLICATION = "cascade_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "cascade.sqlite3",
            # Several reviewers at once: readers never wait for the writer (WAL), a writer
            # waits for the lock instead of failing ("database is locked"), and takes it at
            # the start of its transaction (IMMEDIATE), so a read-then-write cannot deadlock.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
        }
    }
else:
    DATABASES = {
        "default": dict(
            dj_database_url.parse(
                DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
            )
        )
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The API's request-rate counters live here. Several gunicorn workers share them only through
# a shared cache: production sets CACHE_URL (redis://...); otherwise each process counts alone.
CACHE_URL = env_str("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# --- password guessing and API tokens -----------------------------------------------------
# Failed logins (the page and POST /api/v1/auth/token/ alike) are counted per username and per
# client address; at LOGIN_FAILURE_LIMIT within LOGIN_LOCKOUT_MINUTES either is refused with a
# 429 and Retry-After until the window has passed. `manage.py unlock_login` lifts it early.
AUTHENTICATION_BACKENDS = [
    "accounts.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own, not the pair
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout ends when it says it will
AXES_CLIENT_IP_CALLABLE = "accounts.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # successful logins need no row each
AXES_VERBOSE = False
# Client addresses come from REMOTE_ADDR unless it is one of these proxies (addresses or CIDR
# ranges, e.g. the ingress controller's pod network): then from X-Forwarded-For.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as e:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {e}") from None
# API tokens: hashed at rest (knox), several per user, each with a name and an expiry.
KNOX_TOKEN_MODEL = "accounts.ApiToken"  # noqa: S105 (a model name, not a secret)
# knox's own migrations create its table even when the model is swapped for ours; without
# them Django creates nothing for knox (its only model is swapped out).
MIGRATION_MODULES = {"knox": None}
API_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365, minimum=API_TOKEN_TTL_DAYS)
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 20, minimum=1)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "TOKEN_PREFIX": "cc_",  # lets secret scanners recognise a leaked token
    "AUTO_REFRESH": False,
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "routing:home"  # by role: reviewers to labeling, operators to versions
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Production serves collected, hashed files; the embedded run serves straight from the tree.
WHITENOISE_USE_FINDERS = EMBEDDED or DEBUG
if not (EMBEDDED or DEBUG):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# --- transport and browser security -----------------------------------------------------
# Production (not embedded, not DEBUG) defaults to HTTPS-only cookies and HSTS; the embedded
# console on http://127.0.0.1 keeps plain cookies so it works with no set-up.
PRODUCTION = not (EMBEDDED or DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Behind a gateway that terminates TLS, Django sees plain HTTP. Trust the gateway's
# X-Forwarded-Proto only when told to: a client reaching gunicorn directly could forge it.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Kubelet probes and Prometheus scrapes speak plain HTTP to the pod, never through the gateway.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# HSTS is sent only on HTTPS responses, so it never reaches the embedded http:// console.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # security.W021 asks for HSTS preload. Preloading is a decision for the owner of the
    # registrable domain (the preload list takes apex domains only), not for one app on a
    # subdomain; SECURE_HSTS_PRELOAD=true opts in where the console owns its domain.
    "security.W021",
]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp). Pages load only same-origin scripts (htmx and small
# files under static/): no inline scripts, no inline event handlers, no eval. Inline style
# *attributes* stay allowed for the progress bars' widths; <style> elements do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "script-src-attr": ["'none'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

REST_FRAMEWORK = {
    # Token first: a request with no credentials gets 401 and WWW-Authenticate: Token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.tokens.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Scoped rates (accounts/throttles.py): token requests per client address, the expensive
    # endpoints per user. A 429 carries Retry-After.
    "DEFAULT_THROTTLE_RATES": {
        "login": env_rate("API_THROTTLE_LOGIN", "30/minute"),
        "classify": env_rate("API_THROTTLE_CLASSIFY", "600/minute"),
        "jobs": env_rate("API_THROTTLE_JOBS", "60/hour"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ReadReviewerWriteOperator"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "cascade_admin.schema.AutoSchema",
    "EXCEPTION_HANDLER": "cascade_admin.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cascade Console API",
    "DESCRIPTION": "Classifier versions, keyword sets and routing decisions of a cascade router.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Served from our own static files: browsers of an air-gapped cluster reach no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "LabelValueEnum": "labeling.models.LabelValue",
        "ProposalKindEnum": "tuning.proposals.KINDS",
        "BatchKindEnum": "labeling.models.BatchKind",
    },
}

# Celery: without a broker, tasks run in-process (embedded mode).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
# A late-acknowledged task whose worker died is handed to another worker after this long
# (Redis' default is an hour). Tasks claim their work in the database, so a redelivered
# task that finds it running elsewhere leaves it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=1)

CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker logs through LOGGING below (JSON too)


# --- Langfuse --------------------------------------------------------------------------------
# Read where they are used (labeling.langfuse_adapter, Django-free: the CLI and the benchmarks
# share it; labeling/sync.py, labeling/metrics.py) and checked here as well, so that a
# malformed or half-given Langfuse setting stops start-up instead of the first sync.
def _check_langfuse() -> None:
    from labeling.langfuse_adapter.errors import LangfuseConfigError
    from labeling.langfuse_adapter.settings import label_score_name_from_env, settings_from_env

    connection = (
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
    )
    try:
        label_score_name_from_env()
        if any(env_str(name, "") for name in connection):
            settings_from_env()
    except LangfuseConfigError as e:
        raise ImproperlyConfigured(str(e)) from None


_check_langfuse()
# How far behind now a sync stops, so that traces still being ingested are read whole later.
LANGFUSE_INGEST_LAG_SECONDS = env_int("LANGFUSE_INGEST_LAG_SECONDS", 120, minimum=0)
# How far before the last sync's end the next one starts (late traces and feedback).
LANGFUSE_SYNC_OVERLAP_MINUTES = env_int("LANGFUSE_SYNC_OVERLAP_MINUTES", 60, minimum=0)
# When set, /metrics needs "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- rollouts (rollouts/conf.py) -----------------------------------------------------------
# Where weights and configs go: "local" (the database only: the embedded default), "cluster"
# (KUBECONFIG + CASCADE_K8S_CONTEXT, else the in-cluster service account) or "host"
# (CASCADE_K8S_HOST, optional CASCADE_K8S_TOKEN). Empty: chosen from what is set
# (rollouts.conf.k8s_target).
K8S_TARGETS = ("local", "cluster", "host")
CASCADE_K8S_TARGET = env_str("CASCADE_K8S_TARGET", "")
if CASCADE_K8S_TARGET not in ("", *K8S_TARGETS):
    raise ImproperlyConfigured(
        f"CASCADE_K8S_TARGET={CASCADE_K8S_TARGET!r} must be one of {', '.join(K8S_TARGETS)}."
    )
CASCADE_K8S_HOST = env_str("CASCADE_K8S_HOST", "")
if CASCADE_K8S_TARGET == "host" and not CASCADE_K8S_HOST:
    raise ImproperlyConfigured("CASCADE_K8S_TARGET=host needs CASCADE_K8S_HOST.")
CASCADE_K8S_TOKEN = env_str("CASCADE_K8S_TOKEN", "")
CASCADE_K8S_TIMEOUT = env_int("CASCADE_K8S_TIMEOUT", 5, minimum=1)  # seconds per API call
POD_ADMIN_TOKEN = env_str("POD_ADMIN_TOKEN", "")  # bearer token of the pods' PUT /admin/config
PUBLISH_TIMEOUT = env_int("PUBLISH_TIMEOUT", 30, minimum=1)
PUBLISH_POLL_INTERVAL = env_int("PUBLISH_POLL_INTERVAL", 250, minimum=10)  # milliseconds
# A running publication silent this long lost its worker and is taken over.
PUBLISH_STALE_SECONDS = env_int("PUBLISH_STALE_SECONDS", 60, minimum=1)
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "")  # unset: every gate unknown
# Short: each evaluation tick runs two queries per gate, so a hung Prometheus must fail fast
# rather than overrun the tick; a query that times out leaves its gate unknown.
PROMETHEUS_TIMEOUT = env_int("PROMETHEUS_TIMEOUT", 3, minimum=1, maximum=30)
ROLLOUT_EVALUATE_INTERVAL = env_int("ROLLOUT_EVALUATE_INTERVAL", 30, minimum=1)
# UTC hour of the daily misroute check of the previous day's labels (the night's labeling in).
ROLLOUT_DAILY_CHECK_HOUR = env_int("ROLLOUT_DAILY_CHECK_HOUR", 6, minimum=0, maximum=23)
NOTIFY_WEBHOOK_URL = env_str("NOTIFY_WEBHOOK_URL", "")  # Slack-compatible; unset: none

# Logs go to stderr: one JSON object per line in production (LOG_FORMAT=json), plain text for
# the embedded console and DEBUG (LOG_FORMAT=text).
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "text")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "cascade_admin.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
