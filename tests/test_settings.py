"""Settings.from_env: defaults, fail-fast validation naming the variable, origins, and the persistent secret key.

Every test passes an explicit environment mapping; ``os.environ`` is never touched.
"""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from server.settings import SECRET_FILE_NAME, Settings, SettingsError, load_or_create_secret, sqlite_url

SECRET = "s" * 40


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A minimal environment: a data directory of the test's own and a valid secret, plus the given variables."""
    base = {"QUANZI_DATA_DIR": str(tmp_path / "data"), "QUANZI_SECRET_KEY": SECRET}
    base.update(values)
    return base


def test_defaults_with_only_a_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env(env(tmp_path))
    assert settings.data_dir == data_dir
    assert settings.database_url == sqlite_url(data_dir / "quanzi.db")
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.is_sqlite
    assert settings.database_schema is None
    assert settings.redis_url is None
    assert settings.redis_prefix == "quanzi:"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.allowed_origins == ()
    assert settings.cookie_secure is False
    assert settings.trust_forwarded is False
    assert settings.secret_key == SECRET
    # The SQLite database lives in the data directory, which exists so it can be created there.
    assert data_dir.is_dir()


def test_empty_environment_uses_quanzi_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.data_dir == Path("quanzi-data")
    assert settings.database_url == sqlite_url(tmp_path / "quanzi-data" / "quanzi.db")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    # No secret was given, so one was generated and kept in the data directory.
    assert (tmp_path / "quanzi-data" / SECRET_FILE_NAME).read_text().strip() == settings.secret_key


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path, QUANZI_PORT="", QUANZI_REDIS_URL="", QUANZI_COOKIE_SECURE=""))
    assert settings.port == 8080
    assert settings.redis_url is None
    assert settings.cookie_secure is False


def test_valid_values_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(env(
        tmp_path,
        QUANZI_HOST="0.0.0.0",
        QUANZI_PORT="9000",
        QUANZI_COOKIE_SECURE="yes",
        QUANZI_TRUST_FORWARDED="1",
        QUANZI_REDIS_URL="redis://cache:6379/2",
        QUANZI_REDIS_PREFIX="school:",
        QUANZI_DATABASE_URL="postgresql+asyncpg://quanzi@db/quanzi",
        QUANZI_DATABASE_SCHEMA="tenant_1",
        QUANZI_LOGIN_ATTEMPTS_PER_ACCOUNT="3",
    ))
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.public_origin == "http://127.0.0.1:9000"
    assert settings.cookie_secure is True
    assert settings.trust_forwarded is True
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.redis_prefix == "school:"
    assert settings.database_url == "postgresql+asyncpg://quanzi@db/quanzi"
    assert not settings.is_sqlite
    assert settings.database_schema == "tenant_1"
    assert settings.login_attempts_per_account == 3


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_boolean_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    assert Settings.from_env(env(tmp_path, QUANZI_COOKIE_SECURE=raw)).cookie_secure is expected


@pytest.mark.parametrize(("name", "value"), [
    ("QUANZI_PORT", "abc"),
    ("QUANZI_PORT", "0"),
    ("QUANZI_PORT", "70000"),
    ("QUANZI_PORT", "80.5"),
    ("QUANZI_COOKIE_SECURE", "maybe"),
    ("QUANZI_TRUST_FORWARDED", "2"),
    ("QUANZI_ALLOWED_ORIGINS", "not-a-url"),
    ("QUANZI_ALLOWED_ORIGINS", "https://ok.example,ftp://files.example"),
    ("QUANZI_ALLOWED_ORIGINS", "https://school.example/path"),
    ("QUANZI_REDIS_URL", "http://x"),
    ("QUANZI_REDIS_PREFIX", "has space"),
    ("QUANZI_DATABASE_URL", "mysql://x"),
    ("QUANZI_DATABASE_URL", "postgresql://no-async-driver/db"),
    ("QUANZI_DATABASE_SCHEMA", "bad name;"),
    ("QUANZI_DATABASE_SCHEMA", "1starts_with_digit"),
    ("QUANZI_DATABASE_SCHEMA", 'x"; DROP SCHEMA public; --'),
    ("QUANZI_SECRET_KEY", "too-short"),
    ("QUANZI_SESSION_TTL_SECONDS", "5"),
    ("QUANZI_PASSWORD_HASH_MEMORY_KIB", "8"),
    ("QUANZI_LOGIN_ATTEMPTS_PER_ACCOUNT", "0"),
])
def test_bad_value_fails_fast_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env(tmp_path, **{name: value}))
    assert name in str(caught.value)


def test_bad_value_message_says_what_was_given(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="QUANZI_PORT") as caught:
        Settings.from_env(env(tmp_path, QUANZI_PORT="70000"))
    message = str(caught.value)
    assert "70000" in message
    assert "65535" in message


def test_port_bounds_are_inclusive(tmp_path: Path) -> None:
    assert Settings.from_env(env(tmp_path, QUANZI_PORT="1")).port == 1
    assert Settings.from_env(env(tmp_path, QUANZI_PORT="65535")).port == 65535


def test_settings_error_is_a_value_error() -> None:
    # Callers that only know ValueError still catch configuration problems.
    assert issubclass(SettingsError, ValueError)


def test_short_secret_given_directly_is_refused() -> None:
    with pytest.raises(SettingsError, match="QUANZI_SECRET_KEY"):
        Settings(secret_key="x" * 31)
    assert Settings(secret_key="x" * 32).secret_key == "x" * 32


def test_allowed_origins_are_parsed_into_a_tuple(tmp_path: Path) -> None:
    settings = Settings.from_env(env(
        tmp_path,
        QUANZI_ALLOWED_ORIGINS=" https://school.example , http://localhost:5173/,,https://a.example:8443 ",
    ))
    assert settings.allowed_origins == (
        "https://school.example", "http://localhost:5173", "https://a.example:8443",
    )
    assert isinstance(settings.allowed_origins, tuple)


def test_single_allowed_origin(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path, QUANZI_ALLOWED_ORIGINS="https://school.example"))
    assert settings.allowed_origins == ("https://school.example",)


def test_redis_schemes_accepted(tmp_path: Path) -> None:
    for url in ("redis://localhost:6379/0", "rediss://cache.example:6380", "unix:///run/redis.sock"):
        assert Settings.from_env(env(tmp_path, QUANZI_REDIS_URL=url)).redis_url == url


def test_explicit_database_url_is_kept_and_sqlite_url_accepted(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "elsewhere.db")
    settings = Settings.from_env(env(tmp_path, QUANZI_DATABASE_URL=url))
    assert settings.database_url == url
    assert settings.is_sqlite


def test_secret_is_generated_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    environ = {"QUANZI_DATA_DIR": str(data_dir)}
    first = Settings.from_env(environ)
    secret_file = data_dir / SECRET_FILE_NAME
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert secret_file.read_text().strip() == first.secret_key

    second = Settings.from_env(environ)
    assert second.secret_key == first.secret_key
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    # A different data directory gets a different secret.
    other = Settings.from_env({"QUANZI_DATA_DIR": str(tmp_path / "other")})
    assert other.secret_key != first.secret_key


def test_explicit_secret_wins_and_no_file_is_written(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env({"QUANZI_DATA_DIR": str(data_dir), "QUANZI_SECRET_KEY": SECRET})
    assert settings.secret_key == SECRET
    assert not (data_dir / SECRET_FILE_NAME).exists()


def test_existing_secret_file_is_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stored = "k" * 48
    (data_dir / SECRET_FILE_NAME).write_text(stored + "\n")
    assert Settings.from_env({"QUANZI_DATA_DIR": str(data_dir)}).secret_key == stored


@pytest.mark.parametrize("content", ["", "short\n", "x" * 31 + "\n", "   \n"])
def test_too_short_secret_file_is_refused(tmp_path: Path, content: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret_file = data_dir / SECRET_FILE_NAME
    secret_file.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"QUANZI_DATA_DIR": str(data_dir)})
    message = str(caught.value)
    assert str(secret_file) in message
    assert "QUANZI_SECRET_KEY" in message
    # The bad file is left for the operator to look at, not silently replaced.
    assert secret_file.read_text() == content




def test_data_dir_that_is_a_file_is_a_settings_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "occupied"
    not_a_dir.write_text("a file where the data directory should be")
    for environ in ({"QUANZI_DATA_DIR": str(not_a_dir), "QUANZI_SECRET_KEY": SECRET},
                    {"QUANZI_DATA_DIR": str(not_a_dir)}):
        with pytest.raises(SettingsError, match="QUANZI_DATA_DIR"):
            Settings.from_env(environ)


def _start_together(data_dir: Path, starters: int) -> tuple[list[str], list[str]]:
    """``starters`` threads released at the same instant, each loading (or creating) the secret."""
    barrier = threading.Barrier(starters)
    secrets_seen: list[str] = []
    failures: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            secrets_seen.append(load_or_create_secret(data_dir))
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return secrets_seen, failures


def test_processes_starting_together_agree_on_one_generated_secret(tmp_path: Path) -> None:
    """Several servers started at once on one data directory (a restart script, a process manager) must all come
    up with the same secret, not crash because another one is creating the file at that moment."""
    for round_ in range(20):
        data_dir = tmp_path / f"round{round_}"
        secrets_seen, failures = _start_together(data_dir, 8)
        assert failures == [], f"round {round_}: concurrent first start failed: {failures}"
        assert len(set(secrets_seen)) == 1
        assert (data_dir / SECRET_FILE_NAME).read_text().strip() == secrets_seen[0]
