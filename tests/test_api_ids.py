"""A non-numeric id is a 404 on every numeric-id route of the API, never a 500."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


def api_routes(patterns=None, prefix=""):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern.url_patterns, text)
        elif (
            isinstance(pattern, URLPattern)
            and text.startswith("^api/v1/")
            or (isinstance(pattern, URLPattern) and text.startswith("api/v1/"))
        ):
            yield text


def numeric_id_routes():
    routes = set()
    for text in api_routes():
        if "(?P<pk>" in text:  # every id route, whatever its pattern allows
            path = re.sub(r"\(\?P<pk>[^)]*\)", "abc", text)
            path = re.sub(r"\(\?P<format>[^)]*\)|\\\.|\$|\^|\?", "", path)
            if "(?P" not in path:
                routes.add("/" + path.rstrip("/") + "/")
    return sorted(routes)


def test_the_api_has_numeric_id_routes_to_check():
    routes = numeric_id_routes()
    assert "/api/v1/items/abc/adjudicate/" in routes
    assert "/api/v1/tuning-jobs/abc/adopt/" in routes
    assert len(routes) > 20


@pytest.mark.parametrize("path", numeric_id_routes())
def test_a_non_numeric_id_is_a_404(api, admin_user, path):
    client = api.as_(admin_user)
    for method in ("get", "post", "patch"):
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code in (404, 405), (method, path, response.status_code)
