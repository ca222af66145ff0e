"""The README's two edits, applied to a finrpt-shaped host (tests/finrpt_like), make a report's
data come from the configured chain, offline in the sandbox, with no connection to any host
but 127.0.0.1 (checked at the socket level) and so never to Yahoo's."""

from __future__ import annotations

import importlib
import json
import socket
import sys
from pathlib import Path

import pytest

HOST = Path(__file__).parent / "finrpt_like"
INSTALL_LINE = "from finrpt_providers.dataer import install; install(Dataer)"
IMPORT_BEFORE, IMPORT_AFTER = "import yfinance as yf", "from finrpt_providers import yf"


@pytest.fixture
def finrpt_checkout(tmp_path, monkeypatch):
    """A copy of the host with the README's edits applied, importable as ``finrpt_like``."""
    pkg = tmp_path / "finrpt_like"
    (pkg / "source").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "source" / "__init__.py").write_text("")
    dataer = (HOST / "Dataer_py.txt").read_text()
    (pkg / "source" / "Dataer.py").write_text(dataer + "\n\n" + INSTALL_LINE + "\n")  # edit 1: one line
    charts = (HOST / "charts_py.txt").read_text()
    assert charts.count(IMPORT_BEFORE) == 1
    (pkg / "charts.py").write_text(charts.replace(IMPORT_BEFORE, IMPORT_AFTER))  # edit 2: one import line
    (pkg / "predictor.py").write_text((HOST / "predictor_py.txt").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in [m for m in sys.modules if m.startswith("finrpt_like")]:
        monkeypatch.delitem(sys.modules, m)
    return pkg


@pytest.fixture
def only_localhost(monkeypatch):
    """Every name resolution and connection (Python's sockets) and every libcurl request is
    recorded; anything but 127.0.0.1 fails."""
    seen: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *a, **k):
        seen.append(str(host))
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test: no network ({host})")
        return real_getaddrinfo(host, *a, **k)

    def connect(self, address, *a, **k):
        if isinstance(address, tuple):
            seen.append(str(address[0]))
            if address[0] not in ("127.0.0.1", "localhost"):
                raise OSError(f"test: no network ({address[0]})")
        return real_connect(self, address, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    # yfinance's HTTP goes through libcurl (curl_cffi), which resolves and connects in C:
    # its requests are recorded (and refused off 127.0.0.1) where they leave Python.
    from urllib.parse import urlsplit

    from curl_cffi import requests as curl_requests

    real_request = curl_requests.Session.request

    def request(self, method, url, *a, **k):
        host = urlsplit(str(url)).hostname or ""
        seen.append(host)
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test: no network ({host})")
        return real_request(self, method, url, *a, **k)

    monkeypatch.setattr(curl_requests.Session, "request", request)
    return seen


def test_the_two_edits_make_a_report_offline_from_the_chain(finrpt_checkout, only_localhost, monkeypatch, market):
    from finrpt_providers.testing.sandbox import sandbox

    with sandbox(market, minute_days=[]) as box:
        config, market = box
        for k, v in config._values.items():  # what finrpt's .env would hold
            monkeypatch.setenv(k, v)
        Dataer = importlib.import_module("finrpt_like.source.Dataer").Dataer
        charts = importlib.import_module("finrpt_like.charts")
        predictor = importlib.import_module("finrpt_like.predictor")
        end = (market.sessions[-1]).isoformat()
        # the pipeline's path: US codes now come from the chain, A-shares stay on akshare
        fin = Dataer().get_finacncials_ak("AAPL", end)
        assert fin["stock_info"]["provider"].startswith("massive_flatfiles")
        stock, bench = predictor.predictor_prompt(fin)
        assert stock.count(":") == len(fin["stock_data"]) and bench
        assert Dataer().get_finacncials_ak("600519.SS", end) == {"akshare": "600519.SS"}
        # the charts and the key-data table: yfinance's calls, answered by the chain
        closes = charts.price_chart_data("AAPL")
        truth = market.truth("AAPL", closes["AAPL"].index[0].date(), closes["AAPL"].index[-1].date(), "1d", "total")
        assert closes["AAPL"].to_numpy() == pytest.approx(truth["close"].to_numpy(), rel=1e-9)
        table = charts.key_data_table("AAPL")
        assert table["currency"] == "USD" and table["eps"] > 0 and table["low_52w"] < table["high_52w"]
        pickled = json.dumps(table)  # plain values
        assert "NaN" not in pickled
    yahoo_hosts = [h for h in only_localhost if "yahoo" in h]
    assert yahoo_hosts == [] and set(only_localhost) <= {"127.0.0.1", "localhost"}


def test_without_the_edits_the_host_goes_to_yahoo(finrpt_checkout, only_localhost, monkeypatch):
    """The control: the unedited charts module asks Yahoo's hosts (refused here)."""
    plain = finrpt_checkout / "charts_plain.py"
    plain.write_text((HOST / "charts_py.txt").read_text())
    charts = importlib.import_module("finrpt_like.charts_plain")
    with pytest.raises(Exception):  # noqa: B017  (whatever yfinance makes of a refused connection)
        charts.key_data_table("AAPL")
    assert any("yahoo" in h for h in only_localhost)
