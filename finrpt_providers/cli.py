"""The ``finrpt-providers`` command. Exit codes: 0 ok, 2 bad input, 1 failure.

Errors are one readable line on stderr (``--debug`` adds the traceback); data goes
to stdout, what the chain did goes to stderr, so ``--format csv > file`` stays clean.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from . import redact
from . import text as text_mod
from .errors import InvalidQuery, ProviderError

log = redact.logger("finrpt_providers")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: exit 2, one line + usage
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {_echo_safe(message, _ARGV)}\n")


from .text import ECHO_LIMIT  # noqa: E402  (inputs longer than this are echoed cut)
#: the arguments of the running main() (argparse's errors echo them; see _echo_safe)
_ARGV: list[str] = []


def _short(text: Any, quote: bool = False) -> str:
    """An input as an error line echoes it: :func:`finrpt_providers.text.short`."""
    return text_mod.short(text, quote)


def _echo_safe(message: str, inputs: Sequence[str] = ()) -> str:
    """``message`` with every long input of ``inputs`` it quotes (whole, or as repr) shortened by
    :func:`_short`: errors raised deeper down echo what they were given."""
    for v in sorted({v for v in inputs if isinstance(v, str) and len(v) > ECHO_LIMIT}, key=len, reverse=True):
        if v in message:
            message = message.replace(repr(v), _short(v, quote=True)).replace(v, _short(v))
    return message


from .text import table as _table  # noqa: E402


def _config(args: argparse.Namespace):
    from .config import Config

    if getattr(args, "sandbox_config", None) is not None:
        return args.sandbox_config
    return Config.load(toml_path=args.config)


def cmd_providers(args: argparse.Namespace) -> int:
    from . import list_providers

    cfg = _config(args)
    rows = [[p["name"], p["plugin"], "ready" if p["ready"] else f"not ready: {p['reason']}",
             " ".join(p["intervals"]), " ".join(p["adjustments"]), " ".join(p["serves"])]
            for p in list_providers(cfg, check_imports=True)]
    print(_table(rows, ["provider", "plugin", "status", "intervals (native)", "adjustments (native)", "also"]))
    known = {r[0] for r in rows}
    order = [f"{n}{'' if n in known else ' (not installed)'}" for n in cfg.providers]
    print(f"\nchain order: {', '.join(order) or '(empty)'}  [FINRPT_PRICE_PROVIDERS from "
          f"{cfg.source('FINRPT_PRICE_PROVIDERS') or 'default'}]")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from .config import all_settings

    cfg = _config(args)
    settings = all_settings()
    rows = [[name, value, origin, f"[{settings[name].section}] {settings[name].key}"]
            for name, value, origin in cfg.describe(sorted(settings))]
    print(_table(rows, ["setting", "value", "from", "toml"]))
    return 0


def _said(attrs: dict) -> dict[str, Any]:
    """The session (intraday) and the as-of date (point in time) an answer says it holds."""
    out: dict[str, Any] = {}
    if "extended_hours" in attrs:
        out["extended_hours"] = bool(attrs["extended_hours"])
    if attrs.get("as_of") is not None:
        out["as_of"] = str(attrs["as_of"])
    return out


def _bars_json(df) -> dict[str, Any]:
    import pandas as pd

    def ts(x: Any) -> Any:
        return x.isoformat() if hasattr(x, "isoformat") else x

    bars = []
    for t, row in zip(df.index, df.itertuples(index=False)):
        rec = {"timestamp": t.isoformat()}
        for k, v in zip(df.columns, row):
            rec[k] = None if pd.isna(v) else (int(v) if k == "transactions" else float(v))
        bars.append(rec)
    a = df.attrs
    return {
        "ticker": a.get("ticker"), "interval": a.get("interval"), "adjustment": a.get("adjustment"),
        **_said(a),
        "provider": a.get("provider"),
        "sources": [{k: ts(v) for k, v in s.items()} for s in a.get("sources", [])],
        "attempts": a.get("attempts", []),
        "bars": bars,
    }


def _ticker_key(ticker: str) -> str:
    """What the chain dedupes a valid ticker by (its SIP spelling, as normalize_ticker writes it),
    without validating it: cheap enough to count a million lines."""
    t = ticker.replace("-", ".") if ticker.count("-") == 1 else ticker
    return t.upper() if t == t.lower() else t


def _checked_ticker(ticker: str) -> str:
    """``ticker`` validated (InvalidQuery echoing it shortened when long)."""
    from .query import normalize_ticker

    try:
        return normalize_ticker(ticker)
    except InvalidQuery as e:
        raise InvalidQuery(_echo_safe(str(e), [ticker])) from None


def _cap_tickers(tickers: Sequence[str], cfg, where: str, whole: str) -> None:
    """At most FINRPT_MAX_TICKERS distinct tickers (counted as the chain dedupes them), before any
    fetch: InvalidQuery naming the count, the limit, the setting, and ``whole`` (how to ask for a
    whole market instead)."""
    limit = cfg.value("FINRPT_MAX_TICKERS")
    if len(tickers) <= limit:
        return
    n = len(dict.fromkeys(_ticker_key(t) for t in tickers))
    if n > limit:
        origin = cfg.source("FINRPT_MAX_TICKERS") or "default"
        raise InvalidQuery(f"{n} distinct tickers {where}: more than the limit of {limit} a command takes "
                           f"(FINRPT_MAX_TICKERS = {limit}, from {origin}): {whole}, split the list, or raise "
                           "FINRPT_MAX_TICKERS ([cli] max_tickers) if you mean it")


def _read_tickers_file(path: str) -> list[str]:
    """The tickers of a text file, one a line ('#' starts a comment; blank lines skipped)."""
    shown = _short(path)
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError) as e:
        raise InvalidQuery(f"cannot read --tickers-file {shown} "
                           f"({getattr(e, 'strerror', None) or type(e).__name__}): fix the path") from None
    what = "one ticker a line, '#' starts a comment, UTF-8"
    nul = data.find(b"\0")
    if nul >= 0:
        raise InvalidQuery(f"--tickers-file {shown} is not a text file of tickers ({what}): it holds binary data "
                           f"(a NUL byte at byte {nul}); point it at the list of tickers")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidQuery(f"--tickers-file {shown} is not a text file of tickers ({what}): it is not UTF-8 text "
                           f"(byte {e.start}); point it at the list of tickers, or save it as UTF-8") from None
    return [t for t in (ln.split("#", 1)[0].strip() for ln in text.splitlines()) if t]


def _tickers(args: argparse.Namespace, cfg) -> list[str]:
    """The positional tickers, then those of --tickers-file (one a line, '#' comments), at most
    FINRPT_MAX_TICKERS distinct ones, each checked (long ones echoed shortened), before any fetch."""
    tickers = list(args.tickers)
    if args.tickers_file:
        tickers += _read_tickers_file(args.tickers_file)
    if not tickers:
        raise InvalidQuery("no ticker given: name one or more (fetch AAPL MSFT ...) or use --tickers-file FILE")
    where = (f"in --tickers-file {_short(args.tickers_file)}" + (" and on the command line" if args.tickers else "")
             if args.tickers_file else "on the command line")
    _cap_tickers(tickers, cfg, where, "for every ticker of a session use `finrpt-providers market DATE` "
                 "(get_market in Python)")
    for t in tickers:
        _checked_ticker(t)
    return tickers


def _check_output(path: str | None, option: str = "--output", example: str = "bars.csv") -> None:
    """Before any fetch: ``path`` can take the file (not a directory; its directory exists and takes
    new files, tried by creating and removing a temporary file there, as the write will). InvalidQuery
    (exit 2) naming the path and the fix, so a long fetch never ends in an unwritable path."""
    if not path:
        return
    import os
    import stat
    import tempfile

    shown = _short(path)

    def kind(p: str) -> str | None:
        try:
            mode = os.stat(p).st_mode
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return "under a file"
        return "dir" if stat.S_ISDIR(mode) else "file"

    try:
        target = kind(path)
        parent = os.path.dirname(path) or "."
        up = kind(parent)
    except ValueError:  # a NUL character
        raise InvalidQuery(f"{option} {shown} is not a valid path (it holds a NUL character): "
                           "name a file such as out/bars.csv") from None
    except OSError as e:  # a name too long, a loop of links, a directory that cannot be searched
        raise InvalidQuery(f"cannot write {option} {shown} ({e.strerror}): pick another path") from None
    if target == "dir":
        raise InvalidQuery(f"{option} {shown} is a directory: name a file in it, e.g. "
                           f"{option} {os.path.join(shown, example)}")
    if path.endswith(("/", os.sep)):
        raise InvalidQuery(f"{option} {shown} ends with a slash, but the directory does not exist: name a file, "
                           f"e.g. {option} {shown}{example}")
    if up is None:
        import shlex

        mkdir = f"mkdir -p {shlex.quote(parent)}" if len(parent) <= ECHO_LIMIT else "mkdir -p"
        raise InvalidQuery(f"cannot write {option} {shown}: the directory {_short(parent)} does not exist: "
                           f"create it first ({mkdir}) or pick another path")
    if up != "dir":
        raise InvalidQuery(f"cannot write {option} {shown}: {_short(parent)} is not a directory: pick another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(path)[:64]}.", suffix=".probe", dir=parent)
    except OSError as e:
        raise InvalidQuery(f"cannot write {option} {shown}: the directory {_short(parent)} does not take new "
                           f"files ({e.strerror}): fix its permissions or pick another path") from None
    os.close(fd)
    os.unlink(probe)


def _write(args: argparse.Namespace, write) -> None:
    """``write(stream_or_path)`` to --output atomically (temp file, then rename), else stdout."""
    if not args.output:
        write(sys.stdout)
        return
    import os
    import tempfile

    target = Path(args.output)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: more tickers than this fetched over the network get a progress bar on stderr
HANDFUL = 5


def _basket_progress(n: int):
    """A progress bar on stderr for a basket of more than a handful of tickers, drawn as
    providers fetching over the network report each ticker done (a warm store reports
    nothing: no bar)."""
    import contextlib

    from .provider import progress_to

    if n <= HANDFUL:
        return contextlib.nullcontext()
    bar = ProgressBar(n, None, "fetch", unit="tickers")
    seen: set[str] = set()

    def done(ticker: str) -> None:
        seen.add(ticker)
        bar(min(len(seen), n), 0)

    return progress_to(done)


#: the file extension of each --format (for the examples in errors)
_EXT = {"table": "txt", "csv": "csv", "json": "json", "parquet": "parquet"}


_EXTENDED_HELP = ("intraday: 04:00-20:00 New York, hourly bars on the clock (default: the regular session "
                  "09:30-16:00, hourly bars from 09:30)")


def cmd_fetch(args: argparse.Namespace) -> int:
    from .chain import get_prices

    cfg = _config(args)
    tickers = _tickers(args, cfg)
    if args.format == "parquet" and not args.output:
        raise InvalidQuery("--format parquet writes a file: add --output FILE.parquet")
    _check_output(args.output, example=f"bars.{_EXT[args.format]}")
    end = args.end or cfg.today().isoformat()
    single = len(tickers) == 1
    with _basket_progress(len(tickers)):
        df = get_prices(tickers[0] if single else tickers, args.start, end, interval=args.interval,
                        adjustment=args.adjustment, providers=args.provider or None, config=cfg, errors=args.errors,
                        extended_hours=args.extended_hours)
    if args.format == "json":
        body = _bars_json(df) if single else _basket_json(df)

        def dump(out):
            if isinstance(out, str):
                Path(out).write_text(json.dumps(body, indent=1) + "\n")
            else:
                json.dump(body, out, indent=1)
                out.write("\n")

        _write(args, dump)
    elif args.format == "csv":
        _write(args, lambda out: df.to_csv(out, float_format="%.10g"))
    elif args.format == "parquet":
        flat = df.reset_index()
        flat.attrs = {}  # pyarrow would try to store attrs (not JSON-safe) in the schema
        _write(args, lambda out: flat.to_parquet(out, index=False))
    else:
        import pandas as pd

        def show(out):
            with pd.option_context("display.max_rows", args.max_rows, "display.width", 200,
                                   "display.max_columns", 20):
                print(df if len(df) else "(no bars: the range holds no sessions)", file=out)

        _write(args, lambda out: show(out) if not isinstance(out, str) else Path(out).write_text(df.to_string()))
    if single:
        for a in df.attrs["attempts"]:
            print(f"  {a['provider']}: {a['outcome']}: {a['detail']}", file=sys.stderr)
        extra = ""
        if df.attrs.get("actions"):
            extra += f"; adjusted with corporate actions from {df.attrs['actions']}"
        if df.attrs.get("partial_last"):
            extra += "; the last period is still running"
        print(f"{len(df)} bars from {df.attrs['provider'] or 'nobody (no sessions in range)'}{extra}", file=sys.stderr)
        return 0
    by = {}
    for t, who in df.attrs["provider"].items():
        by.setdefault(who or "nobody (no sessions in range)", []).append(t)
    for who, ts in by.items():
        print(f"  {who}: {len(ts)} ticker(s): {' '.join(ts[:12])}{' ...' if len(ts) > 12 else ''}", file=sys.stderr)
    for t, why in df.attrs["failed"].items():
        print(f"  {t}: failed: {why}", file=sys.stderr)
    print(f"{len(df)} bars of {len(df.attrs['tickers'])} ticker(s)"
          + (f"; {len(df.attrs['failed'])} left out (--errors omit)" if df.attrs["failed"] else "")
          + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    return 0


def cmd_market(args: argparse.Namespace) -> int:
    from .market import get_market

    if args.format == "parquet" and not args.output:
        raise InvalidQuery("--format parquet writes a file: add --output FILE.parquet")
    _check_output(args.output, example=f"market.{_EXT[args.format]}")
    cfg = _config(args)
    df = get_market(args.date, args.end, interval=args.interval, adjustment=args.adjustment,
                    providers=args.provider or None, config=cfg, extended_hours=args.extended_hours)
    _emit_long(args, df)
    for a in df.attrs["attempts"]:
        print(f"  {a['provider']}: {a['outcome']}: {a['detail']}", file=sys.stderr)
    for t, why in df.attrs["failed"].items():
        print(f"  {t}: left out: {why}", file=sys.stderr)
    n = df.index.get_level_values("ticker").nunique() if len(df) else 0
    print(f"{len(df)} bars of {n} tickers" + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    return 0


def _emit_long(args: argparse.Namespace, df) -> None:
    """A long (ticker, timestamp) frame in the asked format, to --output or stdout."""
    flat = df.reset_index()
    flat.attrs = {}
    if args.format == "parquet":
        _write(args, lambda out: flat.to_parquet(out, index=False))
    elif args.format == "csv":
        _write(args, lambda out: df.to_csv(out, float_format="%.10g"))
    elif args.format == "json":
        flat["timestamp"] = flat["timestamp"].map(lambda t: t.isoformat())
        text = flat.to_json(orient="records", double_precision=10)
        _write(args, lambda out: Path(out).write_text(text + "\n") if isinstance(out, str) else out.write(text + "\n"))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", args.max_rows, "display.width", 200, "display.max_columns", 20):
            text = df.to_string() if args.output else str(df if len(df) else "(no bars: the range holds no sessions)")
        _write(args, lambda out: Path(out).write_text(text + "\n") if isinstance(out, str) else print(text, file=out))


def _basket_json(df) -> dict[str, Any]:
    from .provider import empty_bars

    out = {"interval": df.attrs.get("interval"), "adjustment": df.attrs.get("adjustment"), **_said(df.attrs),
           "failed": df.attrs.get("failed", {}), "tickers": {}}
    for t in df.attrs.get("tickers", []):
        one = df.xs(t, level="ticker") if t in df.index.get_level_values("ticker") else empty_bars()
        one.attrs = {"ticker": t, "interval": df.attrs.get("interval"), "adjustment": df.attrs.get("adjustment"),
                     "provider": df.attrs["provider"].get(t), "sources": df.attrs["sources"].get(t, []),
                     "attempts": df.attrs["attempts"].get(t, [])}
        out["tickers"][t] = _bars_json(one)
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole system against the built-in sandbox (lives with the sandbox, in testing)."""
    from .testing.demo import run_demo

    _check_output(args.plot, "--plot", "demo.png")
    return run_demo(args.plot)


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import Tolerances, compare

    _checked_ticker(args.ticker)
    _check_output(args.plot, "--plot", "compare.png")
    cfg = _config(args)
    end = args.end or cfg.today().isoformat()
    result = compare(args.ticker, args.start, end, providers=args.providers, interval=args.interval,
                     adjustment=args.adjustment, config=cfg, extended_hours=args.extended_hours,
                     tolerances=Tolerances(args.price_rtol, args.volume_rtol, args.missing_sessions))
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(result.report())
    if args.plot:
        result.plot(args.plot)
        print(f"chart written to {args.plot}", file=sys.stderr)
    return 0 if result.agree else 1


class ProgressBar:
    """files, bytes, rate and ETA on one line of ``stream`` (a line every few seconds when not a TTY)."""

    def __init__(self, total_files: int, total_bytes: int | None, label: str, stream: TextIO | None = None,
                 unit: str = "files"):
        self.total_files, self.total_bytes, self.label, self.unit = total_files, total_bytes, label, unit
        self.files = self.bytes = 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files, self.bytes = files, nbytes
            now = time.monotonic()
            if self.tty or now - self._last >= 2.0 or self.files == self.total_files:
                self._last = now
                self._draw(now)
            if self.files == self.total_files and self.tty:
                self.stream.write("\n")

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.t0, 1e-9)
        rate = self.bytes / elapsed
        if self.total_bytes:
            left = max(self.total_bytes - self.bytes, 0) / rate if rate else float("inf")
        else:
            left = (self.total_files - self.files) * elapsed / self.files if self.files else float("inf")
        frac = self.files / self.total_files if self.total_files else 1.0
        bar = "#" * int(frac * 24)
        size = f"{self.bytes / 1e6:.1f}" + (f"/{self.total_bytes / 1e6:.1f}" if self.total_bytes else "")
        eta = "--" if left == float("inf") else f"{left:.0f}s"
        volume = f"  {size} MB  {rate / 1e6:.1f} MB/s" if self.bytes or self.total_bytes else ""
        line = f"{self.label} [{bar:<24}] {self.files}/{self.total_files} {self.unit}{volume}  ETA {eta}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()


class Context:
    """What a plugin command's handler gets besides its arguments."""

    def __init__(self, config, out: TextIO | None = None, err: TextIO | None = None):
        self.config = config
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def echo(self, line: str) -> None:
        """A line for people (stderr: stdout stays clean for data)."""
        print(line, file=self.err)

    def progress(self, label: str, total_files: int, total_bytes: int | None = None) -> Callable[[int, int], None]:
        """A progress bar; call what it returns with (files done, bytes done)."""
        return ProgressBar(total_files, total_bytes, label, self.err)


class Commands:
    """What the ``register_commands(cli)`` hook receives."""

    def __init__(self, sub: Any, taken: set[str]):
        self._sub, self._taken = sub, taken

    def command(self, name: str, help: str, handler: Callable[[argparse.Namespace, Context], int]
                ) -> argparse.ArgumentParser:
        """Add ``finrpt-providers NAME``; ``handler(args, ctx)`` returns the exit code.
        Returns the argparse parser, to add arguments to."""
        if name in self._taken:
            raise ValueError(f"the command {name!r} exists already")
        self._taken.add(name)
        p = self._sub.add_parser(name, help=help, description=help)

        def run(args: argparse.Namespace) -> int:
            return handler(args, Context(_config(args)))

        p.set_defaults(func=run)
        return p


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="finrpt-providers", description="US stock prices from several sources behind one "
                "interface, with a fallback chain. `finrpt-providers providers` lists the installed sources.")
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: $FINRPT_PROVIDERS_CONFIG, "
                   "else ./finrpt_providers.toml)")
    p.add_argument("--sandbox", action="store_true", help="answer from the built-in offline sandbox "
                   "(fake services over a synthetic market) instead of the real services")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the chain does")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sp = sub.add_parser("providers", help="list providers, their plugin, and whether they are ready")
    sp.set_defaults(func=cmd_providers)

    sc = sub.add_parser("config", help="show the resolved settings (secrets redacted) and where each came from")
    sc.set_defaults(func=cmd_config)

    sc2 = sub.add_parser("compare", help="ask each provider alone and compare their bars (exit 1 if they disagree)")
    sc2.add_argument("ticker")
    sc2.add_argument("--start", required=True, help="first session, YYYY-MM-DD (inclusive)")
    sc2.add_argument("--end", help="last session, YYYY-MM-DD (inclusive; default: today)")
    sc2.add_argument("--providers", nargs="+", metavar="NAME", help="default: FINRPT_PRICE_PROVIDERS")
    sc2.add_argument("--interval", default="1d")
    sc2.add_argument("--adjustment", default="splits")
    sc2.add_argument("--extended-hours", action="store_true", help=_EXTENDED_HELP)
    sc2.add_argument("--price-rtol", type=float, default=5e-4, help="largest relative price difference (5e-4)")
    sc2.add_argument("--volume-rtol", type=float, default=0.05, help="largest relative volume difference (0.05)")
    sc2.add_argument("--missing-sessions", type=int, default=0, help="sessions a provider may lack (0)")
    sc2.add_argument("--plot", metavar="FILE.png", help="write a chart: close by provider and their differences")
    sc2.add_argument("--json", action="store_true", help="machine-readable output")
    sc2.set_defaults(func=cmd_compare)

    sd = sub.add_parser("demo", help="the whole system against the built-in offline sandbox")
    sd.add_argument("--plot", default="finrpt-providers-demo.png", metavar="FILE.png",
                    help="where to write the comparison chart (default: ./finrpt-providers-demo.png)")
    sd.set_defaults(func=cmd_demo)

    sf = sub.add_parser("fetch", help="fetch bars for one ticker, or a basket, through the chain")
    sf.add_argument("tickers", nargs="*", metavar="TICKER", help="US tickers as the SIP writes them, e.g. AAPL BRK.B")
    sf.add_argument("--tickers-file", metavar="FILE", help="more tickers, one a line ('#' starts a comment)")
    sf.add_argument("--start", required=True, help="first session, YYYY-MM-DD (inclusive)")
    sf.add_argument("--end", help="last session, YYYY-MM-DD (inclusive; default: today)")
    sf.add_argument("--interval", default="1d", help="1m 5m 15m 30m 1h 1d 1wk 1mo 3mo (default 1d)")
    sf.add_argument("--adjustment", default="splits", help="raw, splits or total (default splits)")
    sf.add_argument("--extended-hours", action="store_true", help=_EXTENDED_HELP)
    sf.add_argument("--provider", action="extend", nargs="+", metavar="NAME",
                    help="providers to try, in order (default: FINRPT_PRICE_PROVIDERS)")
    sf.add_argument("--errors", choices=["raise", "omit"], default="raise",
                    help="a basket with tickers nobody can serve: fail (default) or answer the others")
    sf.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sf.add_argument("--output", metavar="FILE", help="write there (atomically) instead of stdout; parquet needs it")
    sf.add_argument("--max-rows", type=int, default=60, help="rows shown by --format table")
    sf.set_defaults(func=cmd_fetch)

    sm = sub.add_parser("market", help="every ticker for one session (or a range), through the chain")
    sm.add_argument("date", help="the session, YYYY-MM-DD")
    sm.add_argument("end", nargs="?", help="last session of a range, YYYY-MM-DD (inclusive)")
    sm.add_argument("--interval", default="1d", help="a base interval the market providers serve (default 1d)")
    sm.add_argument("--adjustment", default="splits", help="raw, splits or total (default splits)")
    sm.add_argument("--extended-hours", action="store_true", help=_EXTENDED_HELP)
    sm.add_argument("--provider", action="extend", nargs="+", metavar="NAME",
                    help="providers to try, in order (default: FINRPT_PRICE_PROVIDERS)")
    sm.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    sm.add_argument("--output", metavar="FILE", help="write there (atomically) instead of stdout; parquet needs it")
    sm.add_argument("--max-rows", type=int, default=60, help="rows shown by --format table")
    sm.set_defaults(func=cmd_market)

    sl = sub.add_parser("stream", help="print bars as they close (a live feed) until Ctrl-C, --count or --until")
    sl.add_argument("tickers", nargs="+", metavar="TICKER", help="US tickers, or '*' for every ticker")
    sl.add_argument("--interval", choices=["1m", "1s"], default="1m", help="bars per minute (default) or second")
    sl.add_argument("--extended-hours", action="store_true", help="bars of 04:00-20:00 New York (default: the "
                    "regular session, 09:30-16:00)")
    sl.add_argument("--format", choices=["table", "csv", "json"], default="table", help="json: one object a line")
    sl.add_argument("--count", type=int, metavar="N", help="stop after N bars")
    sl.add_argument("--until", metavar="HH:MM", help="stop at the first bar at or after HH:MM New York time, or "
                    "when the clock there passes it")
    sl.add_argument("--provider", action="extend", nargs="+", metavar="NAME",
                    help="providers to try, in order (default: FINRPT_PRICE_PROVIDERS)")
    sl.set_defaults(func=cmd_stream)

    from .plugins import load_plugins, pm

    load_plugins()
    cli = Commands(sub, set(sub.choices))
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except (Exception, SystemExit) as e:  # a broken plugin must not break (or end) the command line
            warnings.warn(f"skipped the commands of plugin {impl.plugin_name!r}: {type(e).__name__}: {e}",
                          stacklevel=2)
    return p


def _until(text: str | None):
    """``HH:MM`` -> a time of day (InvalidQuery naming the format)."""
    import datetime as dt

    if text is None:
        return None
    try:
        return dt.datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise InvalidQuery(f"--until {_short(text, quote=True)} is not a time: use HH:MM, New York time "
                           "(e.g. 16:00)") from None


def cmd_stream(args: argparse.Namespace) -> int:
    """Bars as they close until Ctrl-C (exit 0), ``--count`` bars, or ``--until`` HH:MM."""
    import datetime as dt
    import json

    import pandas as pd

    from .live import stream

    until = _until(args.until)
    if args.count is not None and args.count < 1:
        raise InvalidQuery(f"--count {args.count} must be at least 1")
    cfg = _config(args)
    named = [t for t in args.tickers if t != "*"]
    _cap_tickers(named, cfg, "on the command line", "for every ticker stream '*'")
    for t in named:
        _checked_ticker(t)
    pinned = cfg.get("FINRPT_PROVIDERS_TODAY") is not None  # a pinned day: the bars' clock alone decides
    live = stream(args.tickers, interval=args.interval, config=cfg, providers=args.provider,
                  extended_hours=args.extended_hours)
    hours = "04:00-20:00" if args.extended_hours else "the regular session (--extended-hours for 04:00-20:00)"
    print(f"streaming {', '.join(live.tickers)} {args.interval} bars of {hours} from {live.provider} "
          f"({live.feed} feed): Ctrl-C to stop", file=sys.stderr, flush=True)
    shown = 0
    cols = ["open", "high", "low", "close", "volume", "vwap"]
    if args.format == "csv":
        print("ticker,timestamp," + ",".join(cols) + ",source", flush=True)
    try:
        with live:
            for frame in live:
                if "gaps" in frame.attrs:
                    for t, (a, b) in frame.attrs["gaps"].items():
                        print(f"warning: bars of {t} between {a:%H:%M:%S} and {b:%H:%M:%S} are missing (the "
                              "connection dropped and the fill failed)", file=sys.stderr)
                for (ticker, ts), row in frame.iterrows():
                    if until is not None and (ts.time() >= until or (not pinned and dt.datetime.now(
                            ts.tz).time() >= until and dt.datetime.now(ts.tz).date() == ts.date())):
                        return 0
                    src = frame.attrs.get("source", "stream")
                    if args.format == "json":
                        print(json.dumps({"ticker": ticker, "timestamp": ts.isoformat(),
                                          **{c: None if pd.isna(row[c]) else float(row[c]) for c in cols},
                                          "source": src}), flush=True)
                    elif args.format == "csv":
                        print(f"{ticker},{ts.isoformat()}," + ",".join("" if pd.isna(row[c]) else repr(float(row[c]))
                                                                        for c in cols) + f",{src}", flush=True)
                    else:
                        print(f"{ts:%Y-%m-%d %H:%M:%S} {ticker:<6} o {row.open:>10.4f} h {row.high:>10.4f} "
                              f"l {row.low:>10.4f} c {row.close:>10.4f} v {row.volume:>14,.2f} vwap "
                              f"{row.vwap:>10.4f}{'  (filled from REST)' if src == 'fill' else ''}", flush=True)
                    shown += 1
                    if args.count is not None and shown >= args.count:
                        return 0
    except KeyboardInterrupt:
        print(f"stopped after {shown} bar(s)", file=sys.stderr)
        return 0
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _ARGV[:] = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redact.protect(*redact.HTTP_LOGGERS)  # --debug shows what the HTTP stacks log: never a secret
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        if args.sandbox and args.func is not cmd_demo:
            from .testing.sandbox import sandbox

            with sandbox() as box:
                # live bars replay the market's last session: the stream's today is that session
                args.sandbox_config = box.stream_config if args.func is cmd_stream else box.config
                return args.func(args)
        return args.func(args)
    except InvalidQuery as e:
        print(f"error: {_echo_safe(str(e), _ARGV)}", file=sys.stderr)
        return 2
    except ProviderError as e:
        print(f"error: {_echo_safe(str(e), _ARGV)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except Exception as e:
        if args.debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {_echo_safe(redact.scrub(str(e)), _ARGV)} (run with --debug "
              "for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
