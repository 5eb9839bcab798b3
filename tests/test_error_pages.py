"""Errors look like the console: styled 404/403/500 pages, no bare fragments or 403s."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_missing_page_is_the_consoles_own_404(client, reviewer):
    client.force_login(reviewer)

    response = client.get("/versions/no-such-version/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found" in html and "Back to the console" in html and "<nav" in html


def test_a_server_error_is_a_styled_page(settings):
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "Something went wrong" in html and "console.css" in html


def test_the_sync_runs_fragment_opened_directly_goes_to_the_labeling_page(client, operator):
    client.force_login(operator)

    assert client.get("/labeling/sync/runs/").url == "/labeling/"
    fragment = client.get("/labeling/sync/runs/", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and 'id="sync-runs"' in fragment.content.decode()


def test_the_api_docs_send_a_visitor_to_the_login_page():
    response = Client().get("/api/docs/")

    assert response.status_code == 302 and response.url.startswith("/login/")
