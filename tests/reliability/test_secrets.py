"""Secret hygiene: with sentinel secrets and DEBUG logging, run faults and the CLI, then look
for the sentinels everywhere: log records, exception texts, CLI output, reprs, files."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import finrpt_providers as fp
from finrpt_providers import PriceQuery
from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.providers.massive_flatfiles.s3 import FlatFilesS3
from finrpt_providers.providers.massive_rest import MassiveClient
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST

API_KEY = "SENTINEL-api-key-7f3c1e"
ACCESS = "SENTINELACCESSKEY9Q2W"
SECRET = "SENTINEL-secret-k3y/abc+def"
SENTINELS = (API_KEY, ACCESS, SECRET)


@pytest.fixture(scope="module")
def secret_fakes(market):
    import datetime as dt

    minute = [d for d in market.sessions if dt.date(2026, 6, 22) <= d <= dt.date(2026, 6, 26)]
    with FakeMassiveREST(market, api_key=API_KEY) as rest, \
            FakeFlatFiles(market, days=market.sessions[-30:-1], minute_days=minute, access_key=ACCESS,
                          secret_key=SECRET) as ff:
        yield rest, ff


def _settings(rest, ff, yahoo, cache) -> dict[str, str]:
    return {**ff.config(), "MASSIVE_API_KEY": API_KEY, "MASSIVE_REST_BASE_URL": rest.url,
            "FINRPT_YFINANCE_BASE_URL": yahoo.url, "FINRPT_PROVIDERS_TODAY": "2026-07-01",
            "FINRPT_PROVIDERS_CACHE_DIR": str(cache), "MASSIVE_REST_BACKOFF": "0.01", "MASSIVE_REST_MAX_RETRIES": "1",
            "MASSIVE_REST_READ_TIMEOUT": "1", "MASSIVE_S3_READ_TIMEOUT": "1", "MASSIVE_S3_MAX_RETRIES": "1",
            "FINRPT_YFINANCE_TIMEOUT": "3"}


def _leaks(texts) -> list[str]:
    return [t[:300] for t in texts if any(s in t for s in SENTINELS)]


def test_no_sentinel_anywhere_under_faults_with_debug_logging(secret_fakes, fake_yahoo, tmp_path, caplog, capsys):
    rest, ff = secret_fakes
    cfg = Config.load(_settings(rest, ff, fake_yahoo, tmp_path / "cache"), environ={})
    caplog.set_level(logging.DEBUG)
    texts: list[str] = [repr(cfg), str(cfg), repr(cfg.describe()), repr(MassiveClient(cfg)), repr(FlatFilesS3(cfg))]
    texts += [repr(registry()[n].provider.configured(cfg)) for n in registry()]
    scenarios = [
        ("ok", lambda: None),
        ("rest 429", lambda: setattr(rest, "rate_limit_all", True)),
        ("rest 5xx", lambda: setattr(rest, "fail_next", 20)),
        ("rest reset", lambda: setattr(rest, "reset_next", 20)),
        ("rest wrong key", lambda: setattr(rest, "api_key", "other")),
        ("rest 403", lambda: setattr(rest, "entitled", set())),
        ("s3 403", lambda: ff.deny_prefixes.add("us_stocks_sip/")),
        ("s3 500", lambda: setattr(ff, "fail_next", 20)),
        ("s3 cut", lambda: setattr(ff, "cut_next", 20)),
    ]
    for label, setup in scenarios:
        rest.reset()
        rest.api_key = API_KEY
        rest.retry_after = "0"
        ff.deny_prefixes.clear()
        ff.fail_next = ff.cut_next = 0
        setup()
        for interval, providers in (("1d", ["massive_rest"]), ("1d", ["massive_flatfiles"]),
                                    ("1m", ["massive_flatfiles", "massive_rest", "yfinance"])):
            try:
                df = fp.get_prices("AAPL", "2026-06-22", "2026-06-26", interval=interval, providers=providers,
                                   config=cfg)
                texts.append(repr(df.attrs))
            except fp.ProviderError as e:
                texts += [str(e), repr(e), repr(getattr(e, "attempts", ""))]
    # wrong S3 key pair
    bad = cfg.merged({"MASSIVE_S3_SECRET_KEY": SECRET + "x", "MASSIVE_S3_ACCESS_KEY": "WRONG" + ACCESS})
    with pytest.raises(fp.AuthenticationFailed) as info:
        registry()["massive_flatfiles"].provider.configured(bad).fetch(PriceQuery("AAPL", "2026-06-15", "2026-06-16"))
    texts += [str(info.value), repr(info.value)]
    rest.reset()
    rest.api_key = API_KEY
    ff.fail_next = ff.cut_next = 0
    ff.deny_prefixes.clear()
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert len(caplog.records) > 50  # debug logging was really on (botocore, urllib3, ours)
    assert _leaks(texts) == []
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in SENTINELS), path


def test_no_sentinel_in_cli_output_with_debug(secret_fakes, fake_yahoo, tmp_path):
    rest, ff = secret_fakes
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_"))}
    env.update(_settings(rest, ff, fake_yahoo, tmp_path / "cache"))
    runs = [
        ["--debug", "providers"], ["--debug", "config"],
        ["--debug", "fetch", "AAPL", "--start", "2026-06-22", "--end", "2026-06-26", "--format", "json"],
        ["--debug", "fetch", "AAPL", "--start", "2026-06-22", "--end", "2026-06-26", "--provider", "massive_rest"],
        ["--debug", "sync", "--start", "2026-06-22", "--end", "2026-06-26", "--dry-run"],
        ["--debug", "sync", "--start", "2026-06-22", "--end", "2026-06-26", "--datasets", "day_aggs_v1",
         "minute_aggs_v1"],
        ["--debug", "verify", "--upstream"],
        ["-v", "compare", "AAPL", "--start", "2026-06-22", "--end", "2026-06-26", "--providers", "massive_rest",
         "massive_flatfiles"],
    ]
    outputs = []
    for args in runs:
        res = subprocess.run([sys.executable, "-m", "finrpt_providers.cli", *args], capture_output=True, text=True,
                             env=env, timeout=120)
        outputs += [res.stdout, res.stderr]
        assert res.returncode in (0, 1), res.stderr[-2000:]
    bad_env = {**env, "MASSIVE_API_KEY": API_KEY + "-wrong"}
    res = subprocess.run([sys.executable, "-m", "finrpt_providers.cli", "--debug", "fetch", "AAPL", "--start",
                          "2026-06-22", "--provider", "massive_rest"], capture_output=True, text=True, env=bad_env,
                         timeout=120)
    assert res.returncode == 1 and "AuthenticationFailed" not in res.stdout
    outputs += [res.stdout, res.stderr]
    assert any("DEBUG" in o for o in outputs)
    assert _leaks(outputs) == []
    for path in Path(tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert not any(s.encode() in path.read_bytes() for s in SENTINELS), path
