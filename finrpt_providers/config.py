"""Settings from arguments, a TOML file, the environment and ``.env`` (highest first).

Every setting has one canonical name, the environment variable (``MASSIVE_API_KEY``);
the TOML file mirrors them by section (``[massive_rest] api_key``). Values of secret
settings never appear in ``repr``/``str`` or in :meth:`Config.describe`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .redact import register as register_secrets
from .errors import ConfigurationError, InvalidQuery

_TYPES = ("str", "int", "float", "bool", "list", "url", "wsurl", "path", "location", "date", "proxies")


def _credentials_in_url(text: str) -> bool:
    """A URL carrying a secret: userinfo (``scheme://user:pass@host``) or a query string
    (pyarrow reads ``?access_key=..&secret_key=..`` from an s3:// URL)."""
    if "://" not in text:
        return False
    rest = text.split("://", 1)[1]
    return "@" in rest.split("/", 1)[0] or "?" in rest


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting a provider (or the core) reads, declared once.

    ``name`` is the canonical environment name; ``section``/``key`` its place in the
    TOML file. ``type`` is one of str, int, float, bool, list (comma list), url
    (http/https), path, date. Bounds: ``ge``/``gt``/``le``; ``choices`` for a closed
    set. ``secret`` values are redacted everywhere people can see them. ``aliases``
    are other environment names read when ``name`` is unset (e.g. POLYGON_API_KEY).
    """

    name: str
    section: str
    key: str
    type: str = "str"
    default: Any = None
    secret: bool = False
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"setting {self.name}: type must be one of {', '.join(_TYPES)}, not {self.type!r}")

    def accepted(self) -> str:
        """The accepted values, in words (for errors and docs)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        bounds = []
        if self.gt is not None:
            bounds.append(f"> {self.gt:g}")
        if self.ge is not None:
            bounds.append(f">= {self.ge:g}")
        if self.le is not None:
            bounds.append(f"<= {self.le:g}")
        what = {"int": "a whole number", "float": "a number", "bool": "true or false", "url": "an http(s) URL",
                "wsurl": "a ws:// or wss:// URL", "location": "a path, or a URL such as s3://bucket/prefix",
                "list": "a comma-separated list", "date": "a date YYYY-MM-DD", "path": "a path",
                "proxies": "a comma-separated list of INDEX=TICKER (e.g. I:SPX=SPY,I:NDX=QQQ)",
                "str": "text"}[self.type]
        return what + (" " + " and ".join(bounds) if bounds else "")

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``; ConfigurationError naming the setting and what it accepts."""
        import math

        def bad(why: str = "") -> ConfigurationError:
            shown = "****" if self.secret else repr(raw)
            return ConfigurationError(f"setting {self.name} ([{self.section}] {self.key}) = {shown} is not valid"
                                      f"{': ' + why if why else ''}: use {self.accepted()}")

        text = raw.strip()
        if self.type in ("url", "wsurl", "location") and _credentials_in_url(text):
            # never echo the value: it holds a secret
            raise ConfigurationError(
                f"setting {self.name} ([{self.section}] {self.key}) holds credentials in its URL (user:password@ or "
                "a ?query; the value is not shown): keep the URL bare and put keys in their own secret settings "
                "(for a store: FINRPT_STORE_S3_ACCESS_KEY and FINRPT_STORE_S3_SECRET_KEY)")
        if self.type == "int":
            try:
                value: Any = float(text)
            except ValueError:
                raise bad() from None
            if not math.isfinite(value) or value != int(value):
                raise bad()
            value = int(value)
        elif self.type == "float":
            try:
                value = float(text)
            except ValueError:
                raise bad() from None
            if not math.isfinite(value):
                raise bad()
        elif self.type == "bool":
            low = text.lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise bad()
            value = low in ("1", "true", "yes", "on")
        elif self.type == "list":
            value = [p.strip() for p in text.split(",") if p.strip()]
        elif self.type == "proxies":
            from .errors import InvalidQuery
            from .query import is_index, normalize_ticker

            value = {}
            for part in (p.strip() for p in text.split(",") if p.strip()):
                index, sep, etf = part.partition("=")
                try:
                    index, etf = normalize_ticker(index.strip()), normalize_ticker(etf.strip())
                except InvalidQuery as e:
                    raise bad(f"{part!r}: {e}") from None
                if not sep or not is_index(index) or is_index(etf):
                    raise bad(f"{part!r} is not INDEX=TICKER (an index such as I:SPX or ^GSPC, then a fund)")
                value[index] = etf
        elif self.type == "url":
            if not text.lower().startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
                raise bad()
            value = text.rstrip("/")
        elif self.type == "wsurl":
            if not text.lower().startswith(("ws://", "wss://")) or len(text.split("://", 1)[1]) == 0:
                raise bad()
            value = text.rstrip("/")
        elif self.type == "date":
            try:
                value = dt.date.fromisoformat(text)
            except ValueError:
                raise bad() from None
        elif self.type == "location":
            if not text or any(ord(c) < 32 for c in text):
                raise bad("empty, or with control characters")
            if "://" in text:
                scheme, rest = text.split("://", 1)
                if not scheme.isidentifier() or not rest.strip("/"):
                    raise bad("a URL needs a scheme and a place, e.g. s3://bucket/prefix")
                value = scheme.lower() + "://" + rest.rstrip("/")
            else:
                value = Path(text).expanduser()
        elif self.type == "path":
            if not text or any(ord(c) < 32 for c in text):
                raise bad("empty, or with control characters")
            value = Path(text).expanduser()
        else:
            value = text
        if self.choices and str(value).lower() not in self.choices:
            raise bad()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge) \
                    or (self.le is not None and not value <= self.le):
                raise bad("out of range")
        return value


#: the core's own settings (providers declare theirs on their class)
CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("FINRPT_PRICE_PROVIDERS", "chain", "providers", "list",
            help="providers to try, in order (default: the built-in ones, in the order they are listed in "
                 "plugins.DEFAULT_PLUGINS)"),
    Setting("FINRPT_ACTIONS_PROVIDERS", "chain", "actions", "list",
            help="where splits and dividends come from, in order (default: the providers of the chain that "
                 "serve them, in chain order; never one that is not configured; empty list: none)"),
    Setting("FINRPT_STATEMENTS_PROVIDERS", "chain", "statements", "list",
            help="where financial statements come from, in order (default: the providers of the chain that "
                 "serve them, in chain order; never one that is not configured; empty list: none)"),
    Setting("FINRPT_PROVIDERS_TODAY", "chain", "today", "date",
            help="pin the date 'today' in New York (the sandbox and tests do)"),
    Setting("FINRPT_PROVIDERS_CACHE_DIR", "store", "path", "location",
            help="where stores and caches live (default: the platform user cache dir); a URL (s3://bucket/prefix, "
                 "file:///shared/dir, what pyarrow or fsspec can open) puts the stores on object storage"),
    Setting("FINRPT_STORE_S3_ENDPOINT", "store", "s3_endpoint", "url",
            help="S3-compatible endpoint of an s3:// store (default: AWS)"),
    Setting("FINRPT_STORE_S3_ACCESS_KEY", "store", "s3_access_key", secret=True,
            help="access key id of an s3:// store (default: the AWS credential chain; never a data source's keys)"),
    Setting("FINRPT_STORE_S3_SECRET_KEY", "store", "s3_secret_key", secret=True,
            help="secret key of an s3:// store"),
    Setting("FINRPT_STORE_S3_REGION", "store", "s3_region",
            help="region of an s3:// store (default: us-east-1)"),
    Setting("FINRPT_STORE_REQUEST_DEADLINE", "store", "request_deadline", "float", 60.0, gt=0, le=3600,
            help="seconds one request to a store on object storage may take in all, however its server trickles "
                 "(plus a second per 256 KiB of the object)"),
    Setting("FINRPT_MAX_INTRADAY_SESSIONS", "chain", "max_intraday_sessions", "int", 2520, ge=1,
            help="most sessions one intraday question may span (2520: ten years of minute bars, ~2.4M)"),
    Setting("FINRPT_INDEX_PROXIES", "chain", "index_proxies", "proxies", "",
            help="opt-in: a fund answering for an index no configured provider serves (I:SPX=SPY), named in "
                 "attrs['proxy'] and a warning; empty: an index nobody serves fails"),
    Setting("FINRPT_MAX_TICKERS", "cli", "max_tickers", "int", 5000, ge=1,
            help="most distinct tickers one command takes (a --tickers-file and the command line together); "
                 "checked before any fetch (every ticker of a session: the market command, get_market)"),
    Setting("FINRPT_STREAM_QUEUE", "stream", "queue", "int", 1000, ge=1, le=1_000_000,
            help="frames a live stream holds for a slow reader before its connection pauses (nothing is dropped)"),
    Setting("FINRPT_STREAM_MEMORY_MB", "stream", "memory_mb", "int", 256, ge=8, le=1_048_576,
            help="MiB a live stream may hold: half for frames waiting for a slow reader, half for the session's "
                 "bars kept for answers about today (the oldest go first); a message over a quarter is refused"),
    Setting("FINRPT_STREAM_MAX_RECONNECTS", "stream", "max_reconnects", "int", 20, ge=0, le=10_000,
            help="failed reconnects in a row before a live stream gives up"),
    Setting("FINRPT_STREAM_BACKOFF", "stream", "backoff", "float", 0.5, ge=0, le=60,
            help="first pause before reconnecting, seconds (doubles up to 30 s, with jitter)"),
)


_settings_cache: tuple[object, dict[str, Setting]] | None = None


def all_settings() -> dict[str, Setting]:
    """Every declared setting by canonical name: the core's, then each registered provider's
    (built once per registry)."""
    global _settings_cache
    from .plugins import default_providers, registry

    reg = registry()
    if _settings_cache is not None and _settings_cache[0] is reg:
        return _settings_cache[1]
    out = {s.name: s for s in CORE_SETTINGS}
    chain = out["FINRPT_PRICE_PROVIDERS"]
    out[chain.name] = dataclasses.replace(chain, default=",".join(default_providers()))
    for entry in reg.values():
        for s in entry.provider.settings:
            out.setdefault(s.name, s)
    _settings_cache = (reg, out)
    return out


def toml_names() -> dict[str, tuple[str, str]]:
    """Canonical name -> (TOML section, TOML key), from the declarations."""
    return {s.name: (s.section, s.key) for s in all_settings().values()}


_SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def is_secret(name: str) -> bool:
    """Declared secrets, and any undeclared setting whose name says it is one."""
    up = name.upper()
    decl = all_settings()
    if up in decl:
        return decl[up].secret
    if any(up in s.aliases and s.secret for s in decl.values()):
        return True
    return any(m in up.rsplit("_", 1)[-1] for m in _SECRET_MARKERS)


def redact(value: str) -> str:
    return "****" if value else ""


def canonical_name(section: str, key: str) -> str:
    """TOML ``[section] key`` -> canonical name (``[myprov] api_key`` -> ``MYPROV_API_KEY``)."""
    by_toml = {v: k for k, v in toml_names().items()}
    return by_toml.get((section, key), f"{section}_{key}".upper())


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
    if path.is_dir():
        raise ConfigurationError(f"config file {path} is a directory: point FINRPT_PROVIDERS_CONFIG (or --config) "
                                 "at a .toml file, or unset it")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidQuery(f"config file {path} is not valid TOML ({e}): fix or remove it") from None
    except RecursionError:
        raise InvalidQuery(f"config file {path} nests tables or arrays too deeply to be a config: fix or "
                           "remove it") from None
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
        # every secret this process holds is masked in errors and logs, whoever prints them
        register_secrets(*(v for k, v in self._values.items() if v and is_secret(k)))

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
        declared = all_settings()
        defaults = {n: _as_str(n, s.default) for n, s in declared.items() if s.default is not None}
        layers: list[tuple[str, dict[str, str]]] = [("default", defaults)]

        dotenv_file = Path(dotenv_path) if dotenv_path else here / ".env"
        if dotenv_file.is_file():
            from dotenv import dotenv_values

            layers.append((f".env ({dotenv_file})", {k.upper(): v for k, v in dotenv_values(dotenv_file).items() if v is not None}))
        layers.append(("environment", env))

        if toml_path is None:
            toml_path = env.get("FINRPT_PROVIDERS_CONFIG") or None
            if toml_path is None and (here / "finrpt_providers.toml").is_file():
                toml_path = here / "finrpt_providers.toml"
            elif toml_path is not None and not Path(toml_path).exists():
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
        for name, s in declared.items():  # aliases fill a setting left at its default
            if sources.get(name, "default") == "default":
                for alias in s.aliases:
                    if values.get(alias):
                        values[name], sources[name] = values[alias], sources[alias]
                        break
        cfg = cls(values, sources)
        cfg.check()
        return cfg

    @classmethod
    def exact(cls, values: Mapping[str, str], origin: str = "the driver") -> "Config":
        """Exactly ``values`` (resolved elsewhere, e.g. by the process that started a Dask
        task) over the declared defaults: no file, ``.env`` or environment variable of THIS
        machine is read. Every configuration rebuilt away from the user's process is built
        here, so a ``finrpt_providers.toml`` or ``.env`` planted in a worker's directory
        changes nothing."""
        declared = all_settings()
        values = {str(k): str(v) for k, v in values.items() if v is not None}
        defaults = {n: _as_str(n, s.default) for n, s in declared.items() if s.default is not None}
        sources = {**{n: "default" for n in defaults}, **{k: origin for k in values}}
        cfg = cls({**defaults, **values}, sources)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Parse every declared setting that has a value: a bad one fails here, naming it."""
        for name, s in all_settings().items():
            raw = self._values.get(name)
            if raw not in (None, ""):
                s.parse(raw)

    def value(self, name: str) -> Any:
        """The typed value of a declared setting (its default when unset; None when it has none)."""
        s = all_settings().get(name.upper())
        if s is None:
            raise KeyError(f"{name} is not a declared setting")
        raw = self._values.get(s.name)
        if raw == "" and s.type == "list":
            return []  # set, and empty: an empty list (e.g. no provider at all), not the default
        if raw in (None, ""):
            return s.parse(_as_str(name, s.default)) if s.default is not None else None
        return s.parse(raw)

    def merged(self, overrides: Mapping[str, Any] | None) -> "Config":
        """This config with ``overrides`` (canonical or TOML-shaped) on top."""
        if not overrides:
            return self
        over = _flatten(overrides, "arguments")
        cfg = Config({**self._values, **over}, {**self._sources, **{k: "arguments" for k in over}})
        cfg.check()
        return cfg

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self._values.get(name.upper())
        return v if v not in (None, "") else default

    def section(self, section: str) -> dict[str, str]:
        """Settings of a TOML section, keyed by their TOML key (for third-party providers)."""
        prefix = section.upper() + "_"
        names = toml_names()
        out = {key: self._values[name] for name, (sec, key) in names.items() if sec == section and name in self._values}
        for name, v in self._values.items():
            if name.startswith(prefix) and name not in names:
                out[name[len(prefix):].lower()] = v
        return out

    def source(self, name: str) -> str | None:
        return self._sources.get(name.upper())

    def get_float(self, name: str, default: float) -> float:
        """A number from an undeclared setting (declared ones: use :meth:`value`)."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(f"setting {name}={raw!r} is not a number: fix it") from None

    @property
    def providers(self) -> list[str]:
        return list(self.value("FINRPT_PRICE_PROVIDERS") or [])

    @property
    def statements_providers(self) -> list[str] | None:
        """The configured statements source order (None: unset, use the default order)."""
        if "FINRPT_STATEMENTS_PROVIDERS" not in self._values:
            return None
        return list(self.value("FINRPT_STATEMENTS_PROVIDERS") or [])

    @property
    def actions_providers(self) -> list[str] | None:
        """The configured corporate-actions source order (None: unset, use the default order)."""
        if "FINRPT_ACTIONS_PROVIDERS" not in self._values:
            return None
        return list(self.value("FINRPT_ACTIONS_PROVIDERS") or [])

    @property
    def store_location(self) -> Path | str:
        """Where stores live: a local Path, or a URL (``s3://bucket/prefix``, ``file:///dir``)."""
        p = self.value("FINRPT_PROVIDERS_CACHE_DIR")
        return p if isinstance(p, str) else self.cache_dir

    @property
    def cache_dir(self) -> Path:
        """A LOCAL directory for caches (the platform's when the stores are on object storage)."""
        p = self.value("FINRPT_PROVIDERS_CACHE_DIR")
        if p and not isinstance(p, str):
            return p
        import platformdirs

        return Path(platformdirs.user_cache_dir("finrpt-providers"))

    def today(self) -> dt.date:
        """The date 'now' in ET (pinned by FINRPT_PROVIDERS_TODAY, e.g. in the sandbox).
        Every 'today' in the package comes from here."""
        pinned = self.value("FINRPT_PROVIDERS_TODAY")
        if pinned:
            return pinned
        from .calendar import today_et

        return today_et()

    def describe(self, names: list[str] | None = None) -> list[tuple[str, str, str]]:
        """(name, value with secrets redacted, where it came from) for display."""
        keys = names if names is not None else sorted(all_settings())
        return [(k, redact(self._values.get(k, "")) if is_secret(k) else self._values.get(k, ""),
                 self._sources.get(k, "unset")) for k in keys]

    def __repr__(self) -> str:
        names = all_settings()
        shown = {k: (redact(v) if is_secret(k) else v) for k, v in sorted(self._values.items())
                 if k in names or self._sources.get(k, "").startswith(("toml", "arguments"))}
        return f"Config({shown!r})"

    __str__ = __repr__

    def __reduce__(self):
        # Pickling would write secrets into a file; refuse rather than leak.
        raise TypeError("Config holds secrets and is not picklable: pass settings by name instead")


def resolve_config(config: "Config | dict | None") -> "Config":
    """``config`` as a :class:`Config`: itself, or loaded (a dict of settings over the usual
    sources; None: the usual sources)."""
    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, dict):
        return Config.load(config)
    from .errors import InvalidQuery

    raise InvalidQuery(f"config must be a finrpt_providers.Config or a dict of settings, not {type(config).__name__}")
