"""This plugin's commands: ``sync``, ``verify``, ``trades`` and ``quotes``.

Added through the ``register_commands(cli)`` hook; the CLI hands each handler the
parsed arguments and a context (``ctx.config``, ``ctx.out``/``ctx.err`` streams,
``ctx.progress(...)`` for a progress bar it draws). Nothing here imports the CLI.
"""

from __future__ import annotations

from typing import Any

from ... import calendar
from ...errors import InvalidQuery
from ...provider import to_date
from .files import AGG_DATASETS, NAME


def register(cli: Any) -> None:
    ss = cli.command("sync", "mirror Massive flat files into the local Parquet store", cmd_sync)
    ss.add_argument("--start", required=True, help="first session, YYYY-MM-DD (inclusive)")
    ss.add_argument("--end", help="last session, YYYY-MM-DD (inclusive; default: today)")
    ss.add_argument("--datasets", nargs="+", metavar="DATASET",
                    help="day_aggs_v1 (default) and/or minute_aggs_v1")
    ss.add_argument("--workers", type=int, help="downloads at once (default MASSIVE_FLATFILES_WORKERS or 4)")
    ss.add_argument("--dry-run", action="store_true", help="print what would be fetched and its size, fetch nothing")
    ss.add_argument("--cluster", metavar="ADDRESS", help="fetch on a Dask cluster: tcp://HOST:8786 (a running "
                    "scheduler) or local:N (N worker processes here); needs finrpt-providers[dask]")

    sv = cli.command("verify", "check the flat-file store against its manifest (and upstream); repair", cmd_verify)
    sv.add_argument("--datasets", nargs="+", metavar="DATASET", help="default: day_aggs_v1 minute_aggs_v1")
    sv.add_argument("--upstream", action="store_true", help="also compare each session's ETag/size with S3")
    sv.add_argument("--repair", action="store_true", help="remove temp files, fetch damaged/replaced sessions again")

    for kind in ("trades", "quotes"):
        st = cli.command(kind, f"one ticker's {kind} on one session, streamed out of the day's flat file",
                         cmd_trades if kind == "trades" else cmd_quotes)
        st.add_argument("ticker", help="US ticker as the SIP writes it, e.g. AAPL or BRK.B")
        st.add_argument("--date", required=True, help="the session, YYYY-MM-DD")
        st.add_argument("--format", choices=["table", "csv", "json"], default="table")
        st.add_argument("--max-rows", type=int, default=60, help="rows shown by --format table")


def _datasets(given: list[str] | None, default: list[str]) -> list[str]:
    datasets = given or default
    bad = [d for d in datasets if d not in AGG_DATASETS]
    if bad:
        raise InvalidQuery(f"cannot use dataset(s) {', '.join(bad)}: choose from {', '.join(AGG_DATASETS)} (trades "
                           "and quotes are streamed per ticker with `finrpt-providers trades` / `quotes`)")
    return datasets


def _workers(args: Any, cfg) -> int:
    if args.workers is not None and args.workers < 1:
        raise InvalidQuery(f"--workers {args.workers} is not valid: use 1 or more")
    return args.workers or cfg.value("MASSIVE_FLATFILES_WORKERS")


def cmd_sync(args: Any, ctx: Any) -> int:
    from . import store_for
    from .mirror import sync
    from .s3 import FlatFilesS3

    cfg = ctx.config
    start = to_date(args.start, "start")
    end = to_date(args.end, "end") if args.end else cfg.today()
    if start > end:
        raise InvalidQuery(f"start {start} is after end {end}: swap them (both are inclusive)")
    datasets = _datasets(args.datasets, ["day_aggs_v1"])
    workers = _workers(args, cfg)
    days = calendar.sessions(start, min(end, cfg.today()))
    store = store_for(cfg)
    s3 = FlatFilesS3(cfg)
    client = None
    if args.cluster and not args.dry_run:
        from ...dask import connect

        client = connect(args.cluster)
    try:
        results = sync(s3, store, datasets, days, workers, dry_run=args.dry_run,
                       progress=lambda label, files, nbytes: ctx.progress(label, files, nbytes), report=ctx.echo,
                       client=client)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None) if args.cluster.startswith("local:") else None
            client.close()
            if cluster is not None:
                cluster.close()
    for dataset, out in results.items():
        if not args.dry_run:
            ctx.echo(f"{dataset}: fetched {len(out.fetched)} files ({out.bytes / 1e6:.1f} MB gz, "
                     f"{out.csv_bytes / 1e6:.1f} MB CSV); {len(out.missing)} sessions not upstream; "
                     f"store: {store.root}")
    return 0


def cmd_verify(args: Any, ctx: Any) -> int:
    from . import store_for
    from .mirror import verify
    from .s3 import FlatFilesS3

    cfg = ctx.config
    store = store_for(cfg)
    ctx.echo(f"store: {store.root}")
    left = verify(lambda: FlatFilesS3(cfg), store, _datasets(args.datasets, list(AGG_DATASETS)),
                  upstream=args.upstream, repair=args.repair, workers=cfg.value("MASSIVE_FLATFILES_WORKERS"),
                  report=ctx.echo)
    if left and not args.repair:
        ctx.echo("run again with --repair to fetch the damaged sessions again")
    return 1 if left else 0


def cmd_trades(args: Any, ctx: Any) -> int:
    return _ticks("trades", args, ctx)


def cmd_quotes(args: Any, ctx: Any) -> int:
    return _ticks("quotes", args, ctx)


def _ticks(kind: str, args: Any, ctx: Any) -> int:
    import pandas as pd

    from . import iter_quotes, iter_trades

    it = (iter_trades if kind == "trades" else iter_quotes)(args.ticker, args.date, ctx.config)
    rows = 0
    for i, chunk in enumerate(it):
        rows += len(chunk)
        if args.format == "csv":
            chunk.to_csv(ctx.out, index=False, header=i == 0)
        elif args.format == "json":
            ctx.out.write(chunk.to_json(orient="records", lines=True, date_format="iso"))
        elif i == 0:  # a table shows the first chunk; the count below covers them all
            with pd.option_context("display.max_rows", args.max_rows, "display.width", 200,
                                   "display.max_columns", 20):
                ctx.out.write(f"{chunk}\n")
    ctx.echo(f"{rows} {kind} for {args.ticker} on {args.date} from {NAME}")
    return 0
