"""Settings from arguments, a TOML file, the environment and ``.env`` (highest first).

Every setting has one canonical name, the environment variable (``MASSIVE_API_KEY``);
the TOML file mirrors them by section (``[massive_rest] api_key``). Values of secret
settings never appear in ``repr``/``str`` or in :meth:`Config.describe`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InvalidQuery

DEFAULT_PROVIDERS = ("massive_flatfiles", "massive_rest", "yfinance")

# canonical name -> (TOML section, TOML key)
TOML_NAMES: dict[str, tuple[str, str]] = {
    "FINRPT_PRICE_PROVIDERS": ("chain", "providers"),
    "MASSIVE_API_KEY": ("massive_rest", "api_key"),
    "MASSIVE_REST_BASE_URL": ("massive_rest", "base_url"),
    "MASSIVE_REST_CONNECT_TIMEOUT": ("massive_rest", "connect_timeout"),
    "MASSIVE_REST_READ_TIMEOUT": ("massive_rest", "read_timeout"),
    "MASSIVE_REST_MAX_RETRIES": ("massive_rest", "max_retries"),
    "MASSIVE_REST_BACKOFF": ("massive_rest", "backoff"),
    "MASSIVE_REST_MAX_WAIT": ("massive_rest", "max_wait"),
    "MASSIVE_REST_REQUESTS_PER_MINUTE": ("massive_rest", "requests_per_minute"),
    "MASSIVE_REST_WORKERS": ("massive_rest", "workers"),
    "MASSIVE_S3_ACCESS_KEY": ("massive_flatfiles", "access_key"),
    "MASSIVE_S3_SECRET_KEY": ("massive_flatfiles", "secret_key"),
    "MASSIVE_S3_ENDPOINT": ("massive_flatfiles", "endpoint"),
    "MASSIVE_S3_BUCKET": ("massive_flatfiles", "bucket"),
    "MASSIVE_S3_CONNECT_TIMEOUT": ("massive_flatfiles", "connect_timeout"),
    "MASSIVE_S3_READ_TIMEOUT": ("massive_flatfiles", "read_timeout"),
    "MASSIVE_S3_MAX_RETRIES": ("massive_flatfiles", "max_retries"),
    "MASSIVE_FLATFILES_WORKERS": ("massive_flatfiles", "workers"),
    "MASSIVE_FLATFILES_ACTIONS": ("massive_flatfiles", "actions"),
    "FINRPT_PROVIDERS_CACHE_DIR": ("store", "path"),
    "FINRPT_YFINANCE_BASE_URL": ("yfinance", "base_url"),
    "FINRPT_YFINANCE_TIMEOUT": ("yfinance", "timeout"),
    "FINRPT_PROVIDERS_TODAY": ("chain", "today"),
}
_BY_TOML = {v: k for k, v in TOML_NAMES.items()}

DEFAULTS: dict[str, str] = {
    "FINRPT_PRICE_PROVIDERS": ",".join(DEFAULT_PROVIDERS),
    "MASSIVE_REST_BASE_URL": "https://api.massive.com",
    "MASSIVE_S3_ENDPOINT": "https://files.massive.com",
    "MASSIVE_S3_BUCKET": "flatfiles",
}

SECRET_NAMES = frozenset({"MASSIVE_API_KEY", "POLYGON_API_KEY", "MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY"})
_SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def is_secret(name: str) -> bool:
    """Built-in secrets, and any third-party setting whose name says it is one."""
    up = name.upper()
    return up in SECRET_NAMES or any(m in up.rsplit("_", 1)[-1] for m in _SECRET_MARKERS)


def redact(value: str) -> str:
    return "****" if value else ""


def canonical_name(section: str, key: str) -> str:
    """TOML ``[section] key`` -> canonical name (``[myprov] api_key`` -> ``MYPROV_API_KEY``)."""
    return _BY_TOML.get((section, key), f"{section}_{key}".upper())


def _as_str(name: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, Path, dt.date)):
        return str(value)
    raise InvalidQuery(f"setting {name} has an unsupported value type {type(value).__name__}: use a string")


def _flatten(data: Mapping[str, Any], origin: str) -> dict[str, str]:
    """Accept canonical names and TOML-shaped nested sections alike."""
    out: dict[str, str] = {}
    for k, v in data.items():
        if isinstance(v, Mapping):
            for kk, vv in v.items():
                if isinstance(vv, Mapping):
                    raise InvalidQuery(f"{origin}: [{k}.{kk}] is nested too deep: use [{k}] {kk}_... = ...")
                name = canonical_name(str(k), str(kk))
                out[name] = _as_str(name, vv)
        elif v is not None:
            out[str(k).upper()] = _as_str(str(k), v)
    return out


def _read_toml(path: Path) -> dict[str, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidQuery(f"config file {path} is not valid TOML ({e}): fix or remove it") from None
    except OSError as e:
        raise InvalidQuery(f"config file {path} cannot be read ({e.strerror}): fix its path "
                           "in FINRPT_PROVIDERS_CONFIG or remove it") from None
    return _flatten(data, str(path))


class Config:
    """Resolved settings. ``get(name)`` returns the value (secrets included, for code);
    ``repr``, ``str`` and :meth:`describe` redact secrets (for people and logs).
    """

    def __init__(self, values: Mapping[str, str] | None = None, sources: Mapping[str, str] | None = None):
        self._values: dict[str, str] = dict(values or {})
        self._sources: dict[str, str] = dict(sources or {})

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        toml_path: str | os.PathLike | None = None,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> "Config":
        """Resolve: ``overrides`` > TOML > environment > ``.env`` > defaults.

        TOML: ``toml_path``, else ``$FINRPT_PROVIDERS_CONFIG``, else
        ``./finrpt_providers.toml`` if it exists. ``.env``: ``dotenv_path``, else
        ``./.env`` if it exists; it never overrides the environment.
        """
        env = dict(os.environ if environ is None else environ)
        here = Path(cwd) if cwd is not None else Path.cwd()
        layers: list[tuple[str, dict[str, str]]] = [("default", dict(DEFAULTS))]

        dotenv_file = Path(dotenv_path) if dotenv_path else here / ".env"
        if dotenv_file.is_file():
            from dotenv import dotenv_values

            layers.append((f".env ({dotenv_file})", {k.upper(): v for k, v in dotenv_values(dotenv_file).items() if v is not None}))
        layers.append(("environment", env))

        if toml_path is None:
            toml_path = env.get("FINRPT_PROVIDERS_CONFIG") or None
            if toml_path is None and (here / "finrpt_providers.toml").is_file():
                toml_path = here / "finrpt_providers.toml"
            elif toml_path is not None and not Path(toml_path).is_file():
                raise InvalidQuery(f"FINRPT_PROVIDERS_CONFIG points to {toml_path}, which does not exist: fix the path or unset it")
        if toml_path is not None:
            layers.append((f"toml ({toml_path})", _read_toml(Path(toml_path))))
        if overrides:
            over = overrides._values if isinstance(overrides, Config) else _flatten(overrides, "arguments")
            layers.append(("arguments", dict(over)))

        values: dict[str, str] = {}
        sources: dict[str, str] = {}
        for origin, layer in layers:
            for k, v in layer.items():
                values[k] = v
                sources[k] = origin
        return cls(values, sources)

    def merged(self, overrides: Mapping[str, Any] | None) -> "Config":
        """This config with ``overrides`` (canonical or TOML-shaped) on top."""
        if not overrides:
            return self
        over = _flatten(overrides, "arguments")
        return Config({**self._values, **over}, {**self._sources, **{k: "arguments" for k in over}})

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self._values.get(name.upper())
        return v if v not in (None, "") else default

    def section(self, section: str) -> dict[str, str]:
        """Settings of a TOML section, keyed by their TOML key (for third-party providers)."""
        prefix = section.upper() + "_"
        out = {key: self._values[name] for name, (sec, key) in TOML_NAMES.items() if sec == section and name in self._values}
        for name, v in self._values.items():
            if name.startswith(prefix) and name not in TOML_NAMES:
                out[name[len(prefix):].lower()] = v
        return out

    def source(self, name: str) -> str | None:
        return self._sources.get(name.upper())

    def get_float(self, name: str, default: float) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidQuery(f"setting {name}={raw!r} is not a number: fix it") from None

    @property
    def providers(self) -> list[str]:
        raw = self.get("FINRPT_PRICE_PROVIDERS", "")
        return [p.strip() for p in raw.split(",") if p.strip()]

    @property
    def cache_dir(self) -> Path:
        p = self.get("FINRPT_PROVIDERS_CACHE_DIR")
        if p:
            return Path(p).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("finrpt-providers"))

    def today(self) -> dt.date:
        """The date 'now' in ET (pinned by FINRPT_PROVIDERS_TODAY, e.g. in the sandbox)."""
        pinned = self.get("FINRPT_PROVIDERS_TODAY")
        if pinned:
            try:
                return dt.date.fromisoformat(pinned)
            except ValueError:
                raise InvalidQuery(f"FINRPT_PROVIDERS_TODAY={pinned!r} is not a date: write 'YYYY-MM-DD'") from None
        from .calendar import today_et

        return today_et()

    def describe(self, names: list[str] | None = None) -> list[tuple[str, str, str]]:
        """(name, value with secrets redacted, where it came from) for display."""
        keys = names if names is not None else sorted(set(self._values) & (set(TOML_NAMES) | set(DEFAULTS)))
        return [(k, redact(self._values.get(k, "")) if is_secret(k) else self._values.get(k, ""),
                 self._sources.get(k, "unset")) for k in keys]

    def __repr__(self) -> str:
        shown = {k: (redact(v) if is_secret(k) else v) for k, v in sorted(self._values.items())
                 if k in TOML_NAMES or self._sources.get(k, "").startswith(("toml", "arguments"))}
        return f"Config({shown!r})"

    __str__ = __repr__

    def __reduce__(self):
        # Pickling would write secrets into a file; refuse rather than leak.
        raise TypeError("Config holds secrets and is not picklable: pass settings by name instead")
