"""Request rates for the API (DRF throttles answer 429 with Retry-After).

The rates are read from the settings on each request, so a test or a deployment changing
REST_FRAMEWORK sees the new values (DRF's own classes keep the values of import time)."""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .client_ip import client_ip


class _ScopedThrottle(SimpleRateThrottle):
    scope: str

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        return None if rate is None else str(rate)

    def get_ident(self, request):
        return client_ip(request)


class LoginThrottle(_ScopedThrottle):
    """Token requests per client address, whether or not the password is right."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class _PerUserThrottle(_ScopedThrottle):
    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS:
            return None  # reading results costs little; starting work is what is counted
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ClassifyThrottle(_PerUserThrottle):
    scope = "classify"


class JobStartThrottle(_PerUserThrottle):
    """Replays, candidate mining, sweeps and proposals: each a job of seconds to minutes."""

    scope = "jobs"
