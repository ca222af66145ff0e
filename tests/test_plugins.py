"""Plugin discovery: built-ins as plugins, registration errors, and real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import finrpt_providers as fp
from finrpt_providers import PriceProvider, ProviderError, hookimpl, plugins
from finrpt_providers.testing import plugin_of

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


class Dummy(PriceProvider):
    def __init__(self, name):
        self.name = name


def test_builtins_are_ordinary_plugins():
    reg = plugins.registry()
    assert reg["yfinance"].plugin == "finrpt_providers.providers.yfinance"
    assert "finrpt_providers.providers.yfinance" in plugins.DEFAULT_PLUGINS
    assert plugins.pm.get_plugin("finrpt_providers.providers.yfinance") is not None


def test_registered_provider_is_listed_with_its_plugin(register_plugin):
    register_plugin(plugin_of(Dummy("dummy")), name="dummy-plugin")
    listed = {p["name"]: p for p in fp.list_providers({})}
    assert listed["dummy"]["plugin"] == "dummy-plugin" and listed["dummy"]["ready"] is True
    assert listed["yfinance"]["plugin"] == "finrpt_providers.providers.yfinance"


def test_two_providers_with_one_name_is_a_clear_error(register_plugin):
    register_plugin(plugin_of(Dummy("yfinance")), name="impostor-plugin")
    with pytest.raises(ProviderError) as info:
        plugins.registry()
    msg = str(info.value)
    assert "'yfinance'" in msg and "finrpt_providers.providers.yfinance" in msg and "impostor-plugin" in msg
    assert "FINRPT_PROVIDERS_LOAD_PLUGINS" in msg


def test_plugin_whose_register_fails_is_skipped_with_a_warning(register_plugin):
    class Broken:
        @staticmethod
        @hookimpl
        def register_price_providers(register):
            raise RuntimeError("kaput")

    register_plugin(Broken, name="broken-plugin")
    register_plugin(plugin_of(Dummy("fine")), name="fine-plugin")
    with pytest.warns(plugins.PluginWarning, match="broken-plugin.*RuntimeError: kaput"):
        reg = plugins.registry()
    assert "fine" in reg and "yfinance" in reg


@pytest.mark.parametrize("thing,words", [(object(), "PriceProvider instance"), (Dummy(""), "needs a name"),
                                         (Dummy("bad name!"), "needs a name")])
def test_registering_a_non_provider_is_skipped_with_a_warning(register_plugin, thing, words):
    register_plugin(plugin_of(thing), name="odd-plugin")
    with pytest.warns(plugins.PluginWarning, match=words):
        reg = plugins.registry()
    assert "yfinance" in reg


# -- entry points, with real installed distributions ---------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example and the broken plugin packages, installed by pip into their own folder."""
    target = tmp_path_factory.mktemp("site")
    for pkg in ("finrpt-providers-example", "finrpt-providers-broken"):
        out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(EXAMPLES / pkg)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert list(target.glob("finrpt_providers_example-*.dist-info"))
    return target


def run_cli(site, *args, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_"))}
    full_env.update({"PYTHONPATH": str(site), **env})
    return subprocess.run([sys.executable, "-m", "finrpt_providers.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_entry_point_plugin_is_discovered_and_broken_ones_skipped(site):
    out = run_cli(site, "providers")
    assert out.returncode == 0, out.stderr
    assert "example_synthetic" in out.stdout and " example " in out.stdout  # plugin = entry point name
    assert "yfinance" in out.stdout
    assert "skipped plugin entry point 'broken_import'" in out.stderr and "broken on purpose (import)" in out.stderr
    assert "skipped plugin 'broken_register'" in out.stderr and "broken on purpose (register)" in out.stderr
    assert "Traceback" not in out.stderr


def test_third_party_provider_answers_through_the_chain(site):
    out = run_cli(site, "fetch", "NVDA", "--start", "2025-11-13", "--end", "2025-11-18", "--adjustment", "raw",
                  "--provider", "example_synthetic", "--format", "json",
                  FINRPT_PROVIDERS_LOAD_PLUGINS="example")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["provider"] == "example_synthetic"
    closes = [b["close"] for b in data["bars"]]
    assert closes[0] > 3 * closes[-1]  # the 4-for-1 split, as traded


def test_a_third_party_provider_gets_adjustments_settings_and_commands_like_the_built_ins(site):
    """Native raw only: the core derives splits with the plugin's own corporate actions."""
    env = dict(FINRPT_PROVIDERS_LOAD_PLUGINS="example", FINRPT_PRICE_PROVIDERS="example_synthetic",
               FINRPT_ACTIONS_PROVIDERS="example_synthetic", FINRPT_PROVIDERS_TODAY="2026-07-01")
    out = run_cli(site, "fetch", "NVDA", "--start", "2025-11-13", "--end", "2025-11-18", "--adjustment", "splits",
                  "--interval", "1wk", "--format", "json", **env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["provider"] == "example_synthetic" and [b["timestamp"][:10] for b in data["bars"]] == \
        ["2025-11-10", "2025-11-17"]
    assert "adjusted with corporate actions from example_synthetic" in out.stderr
    cfg = run_cli(site, "config", **env, EXAMPLE_SYNTHETIC_LATENCY="0.01")
    assert "EXAMPLE_SYNTHETIC_LATENCY" in cfg.stdout and "[example_synthetic] latency" in cfg.stdout
    bad = run_cli(site, "providers", **env, EXAMPLE_SYNTHETIC_LATENCY="-1")
    assert bad.returncode == 2 and "EXAMPLE_SYNTHETIC_LATENCY ([example_synthetic] latency) = '-1' is not valid" \
        in bad.stderr
    cmd = run_cli(site, "example-tickers", **env)
    assert cmd.returncode == 0 and cmd.stdout.split() == ["AAPL", "SPY", "NVDA", "RSPL", "BRK.B", "NEWC"]


@pytest.mark.parametrize("allow,shown,warned", [
    ("example", ["example_synthetic"], []),  # an entry-point name
    ("finrpt-providers-broken", [], ["broken_import", "broken_register"]),  # a distribution name
    ("", [], []),  # empty: no third-party plugin at all
])
def test_load_plugins_variable_limits_what_loads(site, allow, shown, warned):
    out = run_cli(site, "providers", FINRPT_PROVIDERS_LOAD_PLUGINS=allow)
    assert out.returncode == 0
    assert "yfinance" in out.stdout  # built-ins always load
    assert ("example_synthetic" in out.stdout) == ("example_synthetic" in shown)
    for name in ("broken_import", "broken_register"):
        assert (name in out.stderr) == (name in warned)
