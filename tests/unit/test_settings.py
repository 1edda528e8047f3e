import pytest
from pydantic import ValidationError

from conversation_api.settings import DEFAULT_JWT_SECRET, Settings, normalise_database_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_development_accepts_the_default_secret() -> None:
    assert Settings(_env_file=None, environment="development").jwt_secret == DEFAULT_JWT_SECRET


@pytest.mark.parametrize("secret", [DEFAULT_JWT_SECRET, "changeme", "short-but-real"])
def test_production_refuses_default_or_weak_secrets(secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, environment="production", jwt_secret=secret, rasa_token="t")


def test_production_requires_a_rasa_token() -> None:
    with pytest.raises(ValidationError, match="RASA_TOKEN"):
        Settings(_env_file=None, environment="production", jwt_secret="x" * 40)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("RASA_URL", "http://rasa:5005/")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/test"
    assert settings.redis_url is None
    assert settings.rasa_url == "http://rasa:5005"


@pytest.mark.parametrize(("given", "expected"), [("30/minute", "30/minute"), ("", None), ("0", None), (None, None)])
def test_the_message_rate_is_a_limits_string_or_off(given: str | None, expected: str | None) -> None:
    assert Settings(_env_file=None, rate_limit_messages=given).rate_limit_messages == expected


def test_an_unreadable_message_rate_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(_env_file=None, rate_limit_messages="thirty a minute")
