"""The whole conformance check of a third-party provider: a few lines."""

import pytest
from finrpt_providers.testing.conformance import ProviderConformance
from finrpt_providers_example import SyntheticProvider

from finrpt_providers import Config


class TestSyntheticProvider(ProviderConformance):
    @pytest.fixture
    def provider(self):
        return SyntheticProvider().configured(Config.load({}, environ={}))
