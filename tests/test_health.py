import pytest


@pytest.mark.django_db
def test_probes_answer_without_a_login(client):
    assert client.get("/healthz").content == b"ok"
    response = client.get("/readyz")
    assert response.status_code == 200 and response.content == b"ready"
    assert "no-cache" in response["Cache-Control"]


def test_readiness_fails_without_a_database(client, settings):
    # No django_db mark: pytest-django blocks database access, as a dead database would.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert b"database unavailable" in response.content


@pytest.mark.django_db
def test_readiness_fails_without_collected_static_files(client, settings, tmp_path):
    settings.STATIC_ROOT = str(tmp_path / "empty")  # collectstatic never ran here
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert b"collectstatic" in response.content
