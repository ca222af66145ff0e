"""A configuration rebuilt away from the user's process (a Dask worker, the local scheduler's
tasks) is exactly the driver's: nothing of the worker machine's files or environment."""

from __future__ import annotations

import tempfile

import pytest

from finrpt_providers import Config
from finrpt_providers import dask as fpdask


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A private TMPDIR (and working directory) holding a planted TOML and .env, and planted
    environment variables: what a hostile neighbour on a worker machine can do."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "finrpt_providers.toml").write_text(
        '[store]\ns3_endpoint = "http://127.0.0.1:9"\n[massive_rest]\napi_key = "planted-toml-key"\n')
    (tmp / ".env").write_text("FINRPT_PROVIDERS_TODAY=2001-01-02\nMASSIVE_API_KEY=planted-env-key\n")
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("FINRPT_STORE_S3_ACCESS_KEY", "planted-env-access")
    monkeypatch.setenv("FINRPT_PROVIDERS_CONFIG", str(tmp / "finrpt_providers.toml"))
    assert tempfile.gettempdir() == str(tmp)
    return tmp


def test_a_worker_reads_no_setting_from_its_machine(planted):
    driver = Config.load({"FINRPT_PROVIDERS_CACHE_DIR": "s3://bucket/prefix", "MASSIVE_S3_ACCESS_KEY": "ak",
                          "MASSIVE_S3_SECRET_KEY": "sk"}, environ={}, cwd=planted.parent)
    assert driver.get("FINRPT_STORE_S3_ENDPOINT") is None
    name = fpdask.share_config(driver)
    try:
        worker = fpdask.worker_config(name)
        assert worker.get("FINRPT_STORE_S3_ENDPOINT") is None  # the planted TOML's endpoint is not used
        assert worker.get("MASSIVE_API_KEY") is None  # nor the planted .env's or TOML's key
        assert worker.get("FINRPT_STORE_S3_ACCESS_KEY") is None  # nor the worker's environment
        assert worker.value("FINRPT_PROVIDERS_TODAY") is None
        assert worker.get("MASSIVE_S3_ACCESS_KEY") == "ak" and worker.get("MASSIVE_S3_SECRET_KEY") == "sk"
        assert worker.store_location == "s3://bucket/prefix"
        # every value the driver resolved travels, and nothing else is set
        assert {k: v for k, v in worker._values.items()} == {k: v for k, v in driver._values.items()}
        assert not any("toml" in (worker.source(k) or "") or ".env" in (worker.source(k) or "")
                       for k in worker._values)
    finally:
        with fpdask._LOCK:
            fpdask._LOCAL.pop(name, None)
            fpdask._CACHE.pop(name, None)


def test_exact_config_fills_declared_defaults_only(planted):
    cfg = Config.exact({"FINRPT_PRICE_PROVIDERS": "yfinance"})
    assert cfg.providers == ["yfinance"]
    assert cfg.value("MASSIVE_S3_BUCKET") == "flatfiles"  # a declared default, from code
    assert cfg.get("MASSIVE_API_KEY") is None and cfg.source("FINRPT_PRICE_PROVIDERS") == "the driver"
