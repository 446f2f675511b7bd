"""Process settings: one frozen object, built from the environment and validated up front.

Every variable is ``QUANZI_<NAME>``. A bad value raises :class:`SettingsError` naming the variable, before anything
starts. Tests build :class:`Settings` directly instead of editing ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_FILE_NAME = "secret_key"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    secret_key: str
    data_dir: Path = Path("quanzi-data")
    database_url: str = ""
    database_schema: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "quanzi:"
    host: str = "127.0.0.1"
    port: int = 8080
    allowed_origins: tuple[str, ...] = ()
    cookie_secure: bool = False
    trust_forwarded: bool = False
    session_ttl_seconds: int = 14 * 24 * 3600
    max_body_bytes: int = 256 * 1024
    max_socket_message_bytes: int = 64 * 1024
    socket_token_ttl_seconds: int = 60
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 64 * 1024
    login_attempts_per_account: int = 10
    login_attempts_per_ip: int = 50
    login_window_seconds: int = 15 * 60
    web_client_dir: Path = field(default=PROJECT_ROOT / "web_client")
    class_grace_seconds: float = 30.0
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_seconds: int = 3600
    node_url: str | None = None  # where this very process is reached (for media pinning across processes)

    def __post_init__(self) -> None:
        if len(self.secret_key) < 32:
            raise SettingsError("QUANZI_SECRET_KEY must be at least 32 characters")
        if self.turn_urls and not self.turn_secret:
            raise SettingsError("QUANZI_TURN_URLS needs QUANZI_TURN_SECRET (coturn's static-auth-secret)")
        if not self.database_url:
            object.__setattr__(self, "database_url", sqlite_url(self.data_dir / "quanzi.db"))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def public_origin(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``QUANZI_*`` variables; create the data directory and, if needed, a persistent secret key."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("QUANZI_DATA_DIR", "quanzi-data")).expanduser()
        secret = env.get("QUANZI_SECRET_KEY") or load_or_create_secret(data_dir)
        database_url = env.get("QUANZI_DATABASE_URL", "")
        if database_url:
            _check_database_url(database_url)
        else:
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SettingsError(f"QUANZI_DATA_DIR: cannot create {data_dir}: {exc.strerror or exc}") from None
        return cls(
            secret_key=secret,
            data_dir=data_dir,
            database_url=database_url,
            database_schema=_get(env, "QUANZI_DATABASE_SCHEMA", _identifier, None),
            redis_url=_get(env, "QUANZI_REDIS_URL", _redis_url, None),
            redis_prefix=_get(env, "QUANZI_REDIS_PREFIX", _prefix, "quanzi:"),
            host=env.get("QUANZI_HOST", "127.0.0.1"),
            port=_get(env, "QUANZI_PORT", _int_range(1, 65535), 8080),
            allowed_origins=_get(env, "QUANZI_ALLOWED_ORIGINS", _origins, ()),
            cookie_secure=_get(env, "QUANZI_COOKIE_SECURE", _bool, False),
            trust_forwarded=_get(env, "QUANZI_TRUST_FORWARDED", _bool, False),
            session_ttl_seconds=_get(env, "QUANZI_SESSION_TTL_SECONDS", _int_range(60, 365 * 24 * 3600),
                                     14 * 24 * 3600),
            max_body_bytes=_get(env, "QUANZI_MAX_BODY_BYTES", _int_range(1024, 64 * 1024 * 1024), 256 * 1024),
            max_socket_message_bytes=_get(env, "QUANZI_MAX_SOCKET_MESSAGE_BYTES", _int_range(1024, 16 * 1024 * 1024),
                                          64 * 1024),
            socket_token_ttl_seconds=_get(env, "QUANZI_SOCKET_TOKEN_TTL_SECONDS", _int_range(5, 3600), 60),
            password_hash_time_cost=_get(env, "QUANZI_PASSWORD_HASH_TIME_COST", _int_range(1, 20), 3),
            password_hash_memory_kib=_get(env, "QUANZI_PASSWORD_HASH_MEMORY_KIB",
                                          _int_range(1024, 4 * 1024 * 1024), 64 * 1024),
            login_attempts_per_account=_get(env, "QUANZI_LOGIN_ATTEMPTS_PER_ACCOUNT", _int_range(1, 10_000), 10),
            login_attempts_per_ip=_get(env, "QUANZI_LOGIN_ATTEMPTS_PER_IP", _int_range(1, 100_000), 50),
            web_client_dir=_get(env, "QUANZI_WEB_CLIENT_DIR", _directory, PROJECT_ROOT / "web_client"),
            login_window_seconds=_get(env, "QUANZI_LOGIN_WINDOW_SECONDS", _int_range(1, 24 * 3600), 15 * 60),
            class_grace_seconds=_get(env, "QUANZI_CLASS_GRACE_SECONDS", _int_range(0, 600), 30),
            stun_urls=_get(env, "QUANZI_STUN_URLS", _ice_urls(("stun:", "stuns:")), ()),
            turn_urls=_get(env, "QUANZI_TURN_URLS", _ice_urls(("turn:", "turns:")), ()),
            turn_secret=env.get("QUANZI_TURN_SECRET") or None,
            turn_ttl_seconds=_get(env, "QUANZI_TURN_TTL_SECONDS", _int_range(60, 3600), 3600),
            node_url=_get(env, "QUANZI_NODE_URL", _node_url, None),
        )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in the data directory, created (mode 0600) on first use.

    Processes starting together on one data directory agree on one secret: each writes a complete candidate file and
    links it into place; whoever links second reads the winner's, so no reader ever sees a partial file.
    """
    path = data_dir / SECRET_FILE_NAME
    try:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            candidate = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    os.link(candidate, path)
                except FileExistsError:
                    pass  # another process got there first: use theirs
            finally:
                candidate.unlink(missing_ok=True)
        secret = path.read_text().strip()
    except OSError as exc:
        reason = exc.strerror or exc
        raise SettingsError(f"QUANZI_DATA_DIR: cannot keep the secret key in {data_dir}: {reason}") from None
    if len(secret) < 32:
        raise SettingsError(f"{path} holds a secret shorter than 32 characters; delete it or set QUANZI_SECRET_KEY")
    return secret


def _get(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc} (got {raw!r})") from None


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def _origins(raw: str) -> tuple[str, ...]:
    origins = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"{item!r} is not an origin like https://school.example")
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(origins)


def _ice_urls(schemes: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        urls = tuple(part.strip() for part in raw.split(",") if part.strip())
        for url in urls:
            if not url.startswith(schemes) or any(ch.isspace() for ch in url):
                raise ValueError(f"{url!r} must start with {' or '.join(schemes)}")
        return urls

    return parse


def _node_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be an http(s) URL like https://school.example/node/1")
    return raw.rstrip("/")


def _redis_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis:// or rediss:// URL")
    return raw


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not (path / "index.html").is_file():
        raise ValueError("must be a directory holding the web client's index.html")
    return path


def _prefix(raw: str) -> str:
    if len(raw) > 64 or any(ch.isspace() for ch in raw):
        raise ValueError("must be at most 64 characters without spaces")
    return raw


def _identifier(raw: str) -> str:
    if not raw.replace("_", "").isalnum() or raw[0].isdigit():
        raise ValueError("must be a plain SQL identifier (letters, digits, underscore)")
    return raw


def _check_database_url(raw: str) -> None:
    scheme = urlsplit(raw).scheme
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise SettingsError(
            f"QUANZI_DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (got {scheme!r})"
        )
