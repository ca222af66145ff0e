"""The whole conformance check of a third-party provider: a few lines (plus, because this
provider is also its own corporate-actions source, making sure the core can find it)."""

import pytest
from finrpt_providers.testing.conformance import ProviderConformance
from finrpt_providers_example import SyntheticProvider

import finrpt_providers_example
from finrpt_providers import Config, plugins


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Installed, the entry point registers it; from a checkout, register it here."""
    plugins.load_plugins()
    mine = None
    if "example_synthetic" not in plugins.registry():
        mine = plugins.pm.register(finrpt_providers_example, name="example-under-test")
        plugins.reset()
    yield
    if mine is not None:
        plugins.pm.unregister(name="example-under-test")
        plugins.reset()


class TestSyntheticProvider(ProviderConformance):
    @pytest.fixture
    def provider(self):
        return SyntheticProvider().configured(Config.load(
            {"FINRPT_PRICE_PROVIDERS": "example_synthetic", "FINRPT_ACTIONS_PROVIDERS": "example_synthetic",
             "FINRPT_PROVIDERS_TODAY": "2026-07-01"}, environ={}))
