"""The OpenBB provider ``finrpt``: finrpt-providers' chain behind OpenBB's standard models.

    obb.equity.price.historical("AAPL,MSFT", provider="finrpt", adjustment="total")

Credentials (OpenBB's mechanism, ``obb.user.credentials`` or ``user_settings.json``) map
onto our settings: ``finrpt_massive_api_key`` -> ``MASSIVE_API_KEY``,
``finrpt_massive_s3_access_key`` / ``_secret_key`` -> ``MASSIVE_S3_ACCESS_KEY`` /
``MASSIVE_S3_SECRET_KEY``; everything else is our usual configuration (environment,
``.env``, ``finrpt_providers.toml``).
"""

from openbb_core.provider.abstract.provider import Provider

from .fetchers import (
    FinrptEquityHistoricalFetcher,
    FinrptHistoricalDividendsFetcher,
    FinrptHistoricalSplitsFetcher,
    FinrptMarketSnapshotsFetcher,
)

finrpt_provider = Provider(
    name="finrpt",
    description="finrpt-providers: Massive flat files, Massive REST and yfinance behind one fallback chain, "
                "with provenance, stitching, a local Parquet store and one adjustment rule for every source.",
    website="https://github.com/finrpt/finrpt-providers",
    credentials=["massive_api_key", "massive_s3_access_key", "massive_s3_secret_key"],
    fetcher_dict={
        "EquityHistorical": FinrptEquityHistoricalFetcher,
        "HistoricalSplits": FinrptHistoricalSplitsFetcher,
        "HistoricalDividends": FinrptHistoricalDividendsFetcher,
        "MarketSnapshots": FinrptMarketSnapshotsFetcher,
    },
    repr_name="finrpt-providers",
    instructions="Set the keys of the sources you use (Massive REST key, Massive S3 key pair); yfinance needs none. "
                 "FINRPT_PRICE_PROVIDERS orders the sources.",
)

__all__ = ["finrpt_provider"]
