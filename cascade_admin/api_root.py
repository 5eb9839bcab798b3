"""``GET /api/v1/``: every resource of every app's router, with its URL.

Each app's DefaultRouter has a root of its own, but all four are mounted at ``api/v1/`` and
only the first would answer (listing versions and keyword sets only). This root reads the
URL resolver instead of a list of routers, so a router added later is listed without an edit.
A resource is listed by its collection URL, or, if it has none (``items`` only has
``items/{pk}/adjudicate/``), by the template of its shortest route.
"""

import itertools
import re

from django.urls import URLResolver, get_resolver, get_script_prefix
from rest_framework.response import Response
from rest_framework.views import APIView

PREFIX = "api/v1/"
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")  # regex and path() parameters


def _template(pattern) -> str:
    """``^items/(?P<pk>[^/.]+)/adjudicate/$`` -> ``items/{pk}/adjudicate/``."""
    text = str(pattern).removeprefix("^").removesuffix("$")
    return _GROUP.sub(lambda m: "{%s}" % (m[1] or m[2]), text)


def _viewset_routes(patterns, prefix=""):
    """(basename, URL name, route template) of each ViewSet route; format suffixes left out."""
    for pattern in patterns:
        route = prefix + _template(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _viewset_routes(pattern.url_patterns, route)
            continue
        viewset = hasattr(pattern.callback, "actions")  # what ViewSet.as_view() returns
        if viewset and "format" not in pattern.pattern.regex.groupindex:
            yield pattern.callback.initkwargs["basename"], pattern.name, route


def _prefix(route: str) -> str:
    """The router prefix a route belongs to: ``auth/tokens/{pk}/`` -> ``auth/tokens``."""
    parts = route.removeprefix(PREFIX).split("/")
    return "/".join(p for p in itertools.takewhile(lambda p: p and "{" not in p, parts))


def api_resources() -> dict[str, str]:
    """``{"versions": "/api/v1/versions/", ...}`` in URLconf order."""
    routes: dict[str, list[tuple[str, str]]] = {}
    for basename, name, route in _viewset_routes(get_resolver().url_patterns):
        if route.startswith(PREFIX):
            routes.setdefault(basename, []).append((name, route))
    resources = {}
    for basename, named in routes.items():
        collection = [route for name, route in named if name == f"{basename}-list"]
        route = collection[0] if collection else min((r for _, r in named), key=len)
        resources[_prefix(route)] = get_script_prefix() + route
    return resources


class ApiRootView(APIView):
    """The API's resources. Reading it needs the reviewer role, as every read does (the
    default permission classes)."""

    schema = None  # not an operation of its own, as DRF's router roots are not

    def get(self, request, format=None):
        # Not build_absolute_uri: it would quote the braces of a template to %7B...%7D.
        origin = f"{request.scheme}://{request.get_host()}"
        return Response({key: origin + url for key, url in api_resources().items()})
