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
