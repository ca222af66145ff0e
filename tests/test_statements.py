"""The statements gate (company.normalise_statements): hostile statements answers, through
get_statements, are refused value by value (absent, named in attrs), never printed."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

from finrpt_providers import PriceProvider, get_statements, plugins, report
from finrpt_providers.config import Config
from finrpt_providers.errors import DataIntegrityError, PluginError
from finrpt_providers.testing import plugin_of
from finrpt_providers.testing.http import Response
from tests.conftest import REST_KEY


def item(value, unit="USD"):
    return {"value": value, "unit": unit, "label": "x"}


def filing(end, *, timeframe="quarterly", fiscal_period="Q1", filed=None, url=None, income=None, balance=None):
    r = {"end_date": end, "timeframe": timeframe, "fiscal_period": fiscal_period, "fiscal_year": end[:4],
         "financials": {"income_statement": income or {}, "balance_sheet": balance or {}}}
    if filed:
        r["filing_date"] = filed
    if url:
        r["source_filing_url"] = url
    return r


@pytest.fixture
def serve(rest, monkeypatch):
    """serve(results): the fake Massive REST answers /vX/reference/financials with them."""
    def set_results(results):
        monkeypatch.setattr(rest, "_financials", lambda q, rid: Response.json(
            {"status": "OK", "request_id": rid, "results": results, "count": len(results)}))
    return set_results


@pytest.fixture
def mcfg(rest):
    return Config.load({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_PRICE_PROVIDERS": "massive_rest", "FINRPT_STATEMENTS_PROVIDERS": "massive_rest",
                        "FINRPT_PROVIDERS_TODAY": "2026-07-01"}, environ={})


def refused(frame):
    return {(r["item"], r["period"]): r["why"] for r in frame.attrs["refused"]}


def test_sound_answer_passes_unchanged(serve, mcfg):
    serve([filing("2026-03-31", income={"revenues": item(9.1e10), "diluted_earnings_per_share": item(1.5, "USD / shares"),
                                         "diluted_average_shares": item(1.5e10, "shares")})])
    got, source = get_statements("AAPL", config=mcfg)
    inc = got["income"]
    assert source == "massive_rest" and list(inc.index) == ["Total Revenue", "Diluted EPS", "Diluted Average Shares"]
    assert inc.loc["Total Revenue", "2026-03-31"] == 9.1e10 and inc.loc["Diluted EPS", "2026-03-31"] == 1.5
    assert inc.attrs["refused"] == [] and inc.attrs["currency"] == "USD" and inc.attrs["source"] == "massive_rest"


def test_eur_values_are_refused_and_named_not_shown_as_usd(serve, mcfg):
    serve([filing("2026-03-31", income={"revenues": item(8.0e10, "EUR"), "net_income_loss": item(2.0e10),
                                         "diluted_earnings_per_share": item(1.2, "EUR / shares")})])
    got, _ = get_statements("AAPL", config=mcfg)
    inc = got["income"]
    assert list(inc.index) == ["Net Income"] and inc.loc["Net Income", "2026-03-31"] == 2.0e10
    why = refused(inc)
    assert "EUR, not USD" in why[("Total Revenue", "2026-03-31")]
    assert "EUR, not USD" in why[("Diluted EPS", "2026-03-31")]


def test_non_numbers_become_missing_never_one(serve, mcfg):
    serve([filing("2026-03-31", income={"revenues": item(True), "net_income_loss": item("2.3e10"),
                                         "operating_income_loss": item(None), "gross_profit": item(4.0e10)})])
    inc = get_statements("AAPL", config=mcfg)[0]["income"]
    assert list(inc.index) == ["Gross Profit"] and inc.loc["Gross Profit", "2026-03-31"] == 4.0e10
    why = refused(inc)
    assert why[("Total Revenue", "2026-03-31")] == "not a number (bool)"
    assert why[("Net Income", "2026-03-31")] == "not a number (str)"
    assert why[("Operating Income", "2026-03-31")] == "not a number (NoneType)"
    assert "1.00" not in report.statement_text(inc)


def test_nan_and_inf_are_refused_and_never_printed(serve, mcfg):
    serve([filing("2026-03-31", income={"revenues": item(float("inf")), "net_income_loss": item(float("nan")),
                                         "gross_profit": item(-float("inf")), "cost_of_revenue": item(5.0e10)}),
           filing("2025-12-31", income={"revenues": item(9.0e10)})])
    inc = get_statements("AAPL", config=mcfg)[0]["income"]
    assert inc.loc["Total Revenue", "2025-12-31"] == 9.0e10 and pd.isna(inc.loc["Total Revenue", "2026-03-31"])
    assert inc.loc["Cost Of Revenue", "2026-03-31"] == 5.0e10 and "Gross Profit" not in inc.index
    assert math.isfinite(inc.to_numpy(dtype=float)[~pd.isna(inc.to_numpy(dtype=float))].sum())
    why = refused(inc)
    assert {k: v for k, v in why.items()} == {("Total Revenue", "2026-03-31"): "not a finite number",
                                             ("Net Income", "2026-03-31"): "not a finite number",
                                             ("Gross Profit", "2026-03-31"): "not a finite number"}
    text = report.statement_text(inc)
    assert "inf" not in text and "nan" not in text and "Total Revenue: 2025-12-31 90.00B" in text


@pytest.mark.parametrize("amendment_first", [True, False])
def test_two_filings_for_one_period_latest_filed_wins_whatever_the_order(serve, mcfg, amendment_first):
    original = filing("2026-03-31", filed="2026-04-30", url="10-Q", income={"revenues": item(9.0e10)})
    amended = filing("2026-03-31", filed="2026-06-15", url="10-Q/A", income={"revenues": item(9.3e10)})
    other = filing("2025-12-31", filed="2026-01-30", income={"revenues": item(8.8e10)})
    serve([amended, original, other] if amendment_first else [original, amended, other])
    inc = get_statements("AAPL", config=mcfg)[0]["income"]
    assert list(inc.columns.strftime("%Y-%m-%d")) == ["2026-03-31", "2025-12-31"]
    assert inc.loc["Total Revenue", "2026-03-31"] == 9.3e10 and inc.loc["Total Revenue", "2025-12-31"] == 8.8e10
    [choice] = inc.attrs["filings"]
    assert choice["period"] == "2026-03-31" and choice["chosen"] == "10-Q/A" and choice["dropped"] == ["10-Q"]
    assert "filed last" in choice["rule"]


def test_two_undated_filings_that_disagree_refuse_the_period(serve, mcfg):
    serve([filing("2026-03-31", url="a", income={"revenues": item(9.0e10)}),
           filing("2026-03-31", url="b", income={"revenues": item(9.3e10)}),
           filing("2025-12-31", income={"revenues": item(8.8e10)})])
    inc = get_statements("AAPL", config=mcfg)[0]["income"]
    assert list(inc.columns.strftime("%Y-%m-%d")) == ["2025-12-31"]
    [choice] = inc.attrs["filings"]
    assert choice["chosen"] is None and choice["dropped"] == ["a", "b"] and "refused" in choice["rule"]


def test_annual_row_among_quarters_is_dropped_and_named(serve, mcfg):
    serve([filing("2025-12-31", timeframe="annual", fiscal_period="FY", url="10-K", income={"revenues": item(3.6e11)}),
           filing("2025-12-31", url="10-Q", income={"revenues": item(9.2e10)}),
           filing("2025-09-30", income={"revenues": item(9.0e10)})])
    got = get_statements("AAPL", config=mcfg)[0]
    inc = got["income"]
    assert list(inc.columns.strftime("%Y-%m-%d")) == ["2025-12-31", "2025-09-30"]
    assert inc.loc["Total Revenue", "2025-12-31"] == 9.2e10 and inc.attrs["filings"] == []
    [dropped] = inc.attrs["dropped"]
    assert dropped["filing"] == "10-K" and dropped["period"] == "2025-12-31" and "annual" in dropped["why"]
    assert got["balance_sheet"].attrs["dropped"] == inc.attrs["dropped"]


@pytest.mark.parametrize("field,bad", [("end_date", "2025-13-45"), ("end_date", None), ("filing_date", "soon"),
                                       ("financials", [1, 2])])
def test_bad_source_data_is_the_sources_error_not_a_plugin_bug(serve, mcfg, caplog, field, bad):
    r = filing("2026-03-31", filed="2026-04-30", income={"revenues": item(9.0e10)})
    r[field] = bad
    serve([r])
    provider = plugins.registry()["massive_rest"].provider.configured(mcfg)
    with pytest.raises(DataIntegrityError) as e:
        plugins.guard(provider, "fetch_statements()", provider.fetch_statements, "AAPL")
    assert not isinstance(e.value, PluginError) and e.value.provider == "massive_rest" and field in str(e.value)
    with caplog.at_level(logging.WARNING):
        got, source = get_statements("AAPL", config=mcfg)
    assert source == "" and got["income"].empty
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "massive_rest" in said and field in said and "bug" not in said


# -- a plugin's frames pass the same gate ------------------------------------------------

class FrameSource(PriceProvider):
    serves_statements = True
    statement_frequencies = frozenset({"quarterly", "yearly"})

    def __init__(self, name, frames):
        self.name, self.frames = name, frames

    def fetch_statements(self, ticker, frequency="quarterly"):
        return {k: v.copy() for k, v in self.frames.items()}


def frames_with(income: pd.DataFrame) -> dict:
    return {"income": income, "balance_sheet": pd.DataFrame(), "cash_flow": pd.DataFrame()}


def income(values, cols=("2026-03-31", "2025-12-31"), **attrs):
    f = pd.DataFrame(values, index=["Total Revenue", "Net Income"][:len(values)],
                     columns=pd.DatetimeIndex(cols) if all(isinstance(c, str) and c[:2] == "20" for c in cols)
                     else list(cols))
    f.attrs.update(attrs)
    return f


def use(register_plugin, frames, name="framesrc"):
    register_plugin(plugin_of(FrameSource(name, frames)), name=f"{name}-plugin")
    return Config.load({"FINRPT_STATEMENTS_PROVIDERS": name, "FINRPT_PRICE_PROVIDERS": "yfinance"}, environ={})


def test_plugin_frame_in_eur_with_a_rate_is_converted_and_the_rate_named(register_plugin):
    cfg = use(register_plugin, frames_with(income([[100.0, 90.0], [10.0, 9.0]], currency="EUR",
                                                  fx_to_usd={"EUR": 1.25})))
    inc = get_statements("X", config=cfg)[0]["income"]
    assert inc.loc["Total Revenue", "2026-03-31"] == 125.0 and inc.loc["Net Income", "2025-12-31"] == 11.25
    assert inc.attrs["fx_to_usd"] == {"EUR": 1.25} and inc.attrs["currency"] == "USD"


def test_plugin_frame_in_another_currency_without_rate_is_refused_whole(register_plugin, caplog):
    cfg = use(register_plugin, frames_with(income([[100.0, 90.0]], currency="TWD")))
    with caplog.at_level(logging.WARNING):
        got, source = get_statements("X", config=cfg)
    assert source == "" and got["income"].empty
    assert any("nothing usable is left" in r.getMessage() and "TWD" in r.getMessage() for r in caplog.records)


def test_plugin_frame_object_cells_inf_and_dup_columns(register_plugin):
    f = pd.DataFrame([[True, "5", math.inf, 7.0], [1.0, 2.0, 3.0, 4.0]], index=["Total Revenue", "Net Income"],
                     columns=pd.DatetimeIndex(["2026-03-31", "2025-12-31", "2025-09-30", "2025-09-30"]),
                     dtype=object)
    f.attrs["periods"] = [{}, {}, {"filing_date": "2025-10-30", "id": "old"},
                          {"filing_date": "2025-11-30", "id": "new"}]
    cfg = use(register_plugin, frames_with(f))
    inc = get_statements("X", config=cfg)[0]["income"]
    assert list(inc.columns.strftime("%Y-%m-%d")) == ["2026-03-31", "2025-12-31", "2025-09-30"]
    assert inc["2025-09-30"].tolist() == [7.0, 4.0] and inc["2026-03-31"].isna().tolist() == [True, False]
    assert inc.dtypes.eq("float64").all() and pd.isna(inc.loc["Total Revenue", "2025-12-31"])
    assert set(refused(inc)) == {("Total Revenue", "2026-03-31"), ("Total Revenue", "2025-12-31")}
    assert inc.attrs["filings"][0]["chosen"] == "new" and inc.attrs["filings"][0]["dropped"] == ["old"]
    assert inc.attrs["currency_note"].startswith("framesrc names no currency")


def test_plugin_frame_with_a_bad_column_date_is_a_data_error(register_plugin, caplog):
    cfg = use(register_plugin, frames_with(income([[1.0, 2.0]], cols=("2026-03-31", "last quarter"))))
    with caplog.at_level(logging.WARNING):
        _, source = get_statements("X", config=cfg)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert source == "" and "not a date" in said and "column label" in said and "bug" not in said


def test_plugin_frame_with_a_yearly_column_among_quarters(register_plugin):
    f = income([[100.0, 400.0]], cols=("2026-03-31", "2025-12-31"))
    f.attrs["periods"] = [{"timeframe": "quarterly"}, {"timeframe": "annual", "id": "FY2025"}]
    inc = get_statements("X", config=use(register_plugin, frames_with(f)))[0]["income"]
    assert list(inc.columns.strftime("%Y-%m-%d")) == ["2026-03-31"] and inc.iloc[0, 0] == 100.0
    assert inc.attrs["dropped"][0]["filing"] == "FY2025"


def test_an_answer_of_only_the_other_timeframe_is_refused_whole(register_plugin, caplog):
    f = income([[400.0]], cols=("2025-12-31",))
    f.attrs["periods"] = [{"timeframe": "annual"}]
    with caplog.at_level(logging.WARNING):
        got, source = get_statements("X", config=use(register_plugin, frames_with(f)))
    assert source == "" and got["income"].empty
    assert any("timeframe 'annual', not quarterly" in r.getMessage() for r in caplog.records)
