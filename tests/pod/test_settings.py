"""Settings: flags over environment, secrets from files, loud failures on bad values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from routing.pod.settings import MB, SettingsError, parse_settings
from tests.pod.podkit import ROOT

REQUIRED = {
    "CASCADE_POD_CONFIG": "/etc/cascade/config.json",
    "CASCADE_POD_WEAK_URL": "http://qwen:8000/v1/",
    "CASCADE_POD_STRONG_URL": "http://glm:8000/v1",
    "CASCADE_POD_WEAK_MODEL": "Qwen/Qwen3-4B",
    "CASCADE_POD_STRONG_MODEL": "zai-org/GLM-5",
}


def test_defaults_come_from_the_environment():
    settings = parse_settings([], REQUIRED)

    assert settings.weak.url == "http://qwen:8000/v1"  # trailing slash dropped
    assert settings.strong.model == "zai-org/GLM-5"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.max_body_bytes == 10 * MB
    assert settings.admin_token is None
    assert settings.langfuse is None
    assert settings.forward_client_auth is False


def test_a_flag_wins_over_its_variable():
    settings = parse_settings(
        ["--port", "9000", "--weak-model", "small"], {**REQUIRED, "CASCADE_POD_PORT": "7000"}
    )

    assert settings.port == 9000
    assert settings.weak.model == "small"


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    (tmp_path / "lf").write_text("sk-lf-1")
    env = {
        **REQUIRED,
        "CASCADE_POD_ADMIN_TOKEN_FILE": str(tmp_path / "token"),
        "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
        "LANGFUSE_SECRET_KEY_FILE": str(tmp_path / "lf"),
    }

    settings = parse_settings([], env)

    assert settings.admin_token == "s3cret"
    assert settings.langfuse.secret_key == "sk-lf-1"
    assert settings.langfuse.base_url == "https://cloud.langfuse.com"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CASCADE_POD_CONFIG": ""}, "CASCADE_POD_CONFIG is required"),
        ({"CASCADE_POD_WEAK_URL": "qwen:8000"}, "must be an http(s) URL"),
        ({"CASCADE_POD_STRONG_MODEL": ""}, "CASCADE_POD_STRONG_MODEL is required"),
        ({"CASCADE_POD_PORT": "eighty"}, "is not a whole number"),
        ({"CASCADE_POD_FIRST_BYTE_TIMEOUT": "-1"}, "must be >= 0.01"),
        ({"CASCADE_POD_FORWARD_CLIENT_AUTH": "maybe"}, "is not a boolean"),
        ({"LANGFUSE_PUBLIC_KEY": "pk"}, "go together"),
        ({"CASCADE_POD_ADMIN_TOKEN_FILE": "/nonexistent/token"}, "cannot be read"),
        (
            {"CASCADE_POD_ADMIN_TOKEN": "t", "CASCADE_POD_ADMIN_TOKEN_FILE": "/t"},
            "Set CASCADE_POD_ADMIN_TOKEN or CASCADE_POD_ADMIN_TOKEN_FILE, not both",
        ),
        ({"CASCADE_POD_LOG_LEVEL": "loud"}, "unknown level"),
    ],
)
def test_bad_settings_fail_loudly(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings([], {**REQUIRED, **env})


def test_the_command_exits_with_a_message_on_bad_settings():
    result = subprocess.run(
        [sys.executable, "-m", "routing.pod", "--port", "x"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **REQUIRED},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "CASCADE_POD_PORT: 'x' is not a whole number" in result.stderr
