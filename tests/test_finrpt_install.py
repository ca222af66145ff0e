"""install(): finrpt's own Dataer, which defines the price methods itself, patched in place
so US codes go to the chain and A-share codes keep finrpt's path."""

from __future__ import annotations

import pytest

from finrpt_providers.dataer import INSTALLABLE, install
from tests.conftest import chain_config, report_flatfiles
from tests.test_dataer import predictor_prompt


@pytest.fixture(scope="module")
def flatfiles(market):
    import datetime as dt

    with report_flatfiles(market, dt.date(2025, 10, 15), dt.date(2025, 12, 31)) as ff:
        yield ff


@pytest.fixture
def cfg(flatfiles, rest, fake_yahoo, tmp_path):
    return chain_config(flatfiles, rest, fake_yahoo, tmp_path)


def make_host():
    """Shaped like the public finrpt fork's Dataer: it defines both methods itself, its yf
    method calls Yahoo directly, its ak method sends US codes to its own yf method."""

    class FinrptDataer:
        def __init__(self):
            self.calls = []

        def get_finacncials_yf(self, stock_code, end_date, start_date=None):
            self.calls.append(("own yf", stock_code))
            raise RuntimeError("finrpt's own yfinance path ran: it would call Yahoo")

        def get_finacncials_ak(self, stock_code, end_date, start_date=None):
            self.calls.append(("own ak", stock_code))
            if not (stock_code.endswith((".SS", ".SZ")) or stock_code[:6].isdigit()):
                return self.get_finacncials_yf(stock_code, end_date, start_date)
            return {"akshare": stock_code}

    return FinrptDataer


def test_a_mixin_is_hidden_by_the_class_own_method_but_install_is_not():
    from finrpt_providers.dataer import DataerMixin

    Host = make_host()
    Mixed = type("Mixed", (DataerMixin, Host), {})
    assert Mixed.get_finacncials_yf is DataerMixin.get_finacncials_yf  # mixin first: wins here...
    Sub = type("Sub", (Host, DataerMixin), {"get_finacncials_yf": Host.get_finacncials_yf})
    assert Sub.get_finacncials_yf is Host.get_finacncials_yf  # ...but a method on the class hides it
    install(Sub)
    assert Sub.get_finacncials_yf is not Host.get_finacncials_yf


def test_install_routes_us_codes_to_the_chain_and_a_shares_to_the_class(cfg, market):
    Host = install(make_host())
    Host.finrpt_config = cfg
    d = Host()
    fin = d.get_finacncials_yf("NVDA", "2025-12-20", "2025-11-10")
    assert fin["stock_info"]["provider"] == "massive_flatfiles" and fin["stock_info"]["symbol"] == "NVDA"
    ak = d.get_finacncials_ak("AAPL", "2025-12-20")
    assert ak["stock_info"]["symbol"] == "AAPL"
    assert str(ak["stock_data"]["date"].iloc[0]) == "2025-11-20"  # akshare's one-month default window
    stock, bench = predictor_prompt(ak)  # finrpt's Predictor lines work on it
    assert stock.startswith("2025-11-20: ") and bench.startswith("2025-11-20: ")
    assert d.get_finacncials_ak("600519.SS", "2025-12-20") == {"akshare": "600519.SS"}
    assert d.get_finacncials_ak("300750", "2025-12-20") == {"akshare": "300750"}
    assert ("own yf", "NVDA") not in d.calls and ("own yf", "AAPL") not in d.calls
    assert [c for c in d.calls if c[0] == "own ak"] == [("own ak", "600519.SS"), ("own ak", "300750")]
    massive = d.get_finacncials_massive("NVDA", "2025-12-20", "2025-11-10")
    assert massive["stock_info"]["adjustment"] == "splits"


def test_install_is_idempotent_a_decorator_and_can_patch_fewer():
    Host = make_host()
    first = install(Host)
    methods = {m: Host.__dict__[m] for m in INSTALLABLE}
    assert install(Host) is Host and {m: Host.__dict__[m] for m in INSTALLABLE} == methods  # not wrapped twice

    @install(methods=["get_finacncials_massive"])
    class Only(make_host()):
        pass

    assert "get_finacncials_massive" in Only.__dict__ and "get_finacncials_yf" not in Only.__dict__
    with pytest.raises(RuntimeError, match="own yfinance path"):
        Only().get_finacncials_yf("AAPL", "2025-12-20")

    @install
    class Plain:
        pass

    assert first is Host and set(INSTALLABLE) <= set(Plain.__dict__)
    with pytest.raises(ValueError, match="get_finacncials_yf"):
        install(make_host(), methods=["get_prices"])
    with pytest.raises(TypeError, match="patches a class"):
        install(make_host()())
