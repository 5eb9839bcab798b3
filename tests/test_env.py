import pytest
from django.core.exceptions import ImproperlyConfigured

from cascade_admin.env import env_bool, env_int, env_list, env_str


def test_env_str_required_and_default(monkeypatch):
    monkeypatch.delenv("CC_X", raising=False)
    assert env_str("CC_X", "d") == "d"
    with pytest.raises(ImproperlyConfigured, match="CC_X is required"):
        env_str("CC_X")


def test_env_reads_mounted_secret_files(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("CC_KEY_FILE", str(secret))
    assert env_str("CC_KEY") == "s3cret"
    monkeypatch.setenv("CC_KEY", "other")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_str("CC_KEY")


@pytest.mark.parametrize("raw,value", [("true", True), ("0", False), ("Yes", True), ("off", False)])
def test_env_bool(monkeypatch, raw, value):
    monkeypatch.setenv("CC_B", raw)
    assert env_bool("CC_B", not value) is value


def test_malformed_values_fail_loudly(monkeypatch):
    monkeypatch.setenv("CC_B", "maybe")
    monkeypatch.setenv("CC_I", "ten")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("CC_B", False)
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("CC_I", 1)
    monkeypatch.setenv("CC_I", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_int("CC_I", 1, minimum=0)


def test_env_list(monkeypatch):
    monkeypatch.setenv("CC_L", "a.example, b.example,,")
    assert env_list("CC_L", []) == ["a.example", "b.example"]


def test_env_rate(monkeypatch):
    from cascade_admin.env import env_rate

    assert env_rate("CC_R", "30/minute") == "30/minute"
    monkeypatch.setenv("CC_R", "5/s")
    assert env_rate("CC_R", "30/minute") == "5/s"
    for bad in ("5", "0/minute", "five/minute", "5/fortnight", "-1/day"):
        monkeypatch.setenv("CC_R", bad)
        with pytest.raises(ImproperlyConfigured, match="CC_R"):
            env_rate("CC_R", "30/minute")


# --- one NAME_FILE reader for the console, the Langfuse settings and the pod ----------------


def test_the_shared_reader(tmp_path):
    from routing.envfile import EnvFileError, env_value

    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert env_value("X", {"X": " v "}) == "v"
    assert env_value("X", {"X": ""}) is None
    assert env_value("X", {}) is None
    assert env_value("X", {"X_FILE": str(secret)}) == "s3cret"
    assert env_value("X", {"X_FILE": str(secret)}, files=False) is None
    with pytest.raises(EnvFileError, match="Set X or X_FILE, not both"):
        env_value("X", {"X": "v", "X_FILE": str(secret)})
    with pytest.raises(EnvFileError, match="X_FILE=.*cannot be read"):
        env_value("X", {"X_FILE": str(tmp_path / "missing")})


def test_console_langfuse_and_pod_read_files_alike(tmp_path, monkeypatch):
    from labeling.langfuse_adapter import LangfuseConfigError, settings_from_env
    from routing.pod.settings import SettingsError, parse_settings

    secret = tmp_path / "secret"
    secret.write_text("sk-lf-file\n")
    both = {"LANGFUSE_SECRET_KEY": "sk", "LANGFUSE_SECRET_KEY_FILE": str(secret)}

    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret))
    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY or SECRET_KEY_FILE"):
        env_str("SECRET_KEY")
    env = {"LANGFUSE_BASE_URL": "http://lf", "LANGFUSE_PUBLIC_KEY": "pk", **both}
    with pytest.raises(LangfuseConfigError, match="not both"):
        settings_from_env(env)
    from tests.pod.test_settings import REQUIRED

    twice = {"CASCADE_POD_ADMIN_TOKEN": "t", "CASCADE_POD_ADMIN_TOKEN_FILE": str(secret)}
    with pytest.raises(SettingsError, match="not both"):
        parse_settings([], {**REQUIRED, **twice})
    assert (
        parse_settings([], {**REQUIRED, "CASCADE_POD_ADMIN_TOKEN_FILE": str(secret)}).admin_token
        == "sk-lf-file"
    )
    only_file = {k: v for k, v in env.items() if k != "LANGFUSE_SECRET_KEY"}
    assert settings_from_env(only_file).secret_key == "sk-lf-file"
