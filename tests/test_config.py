import pickle

import pytest

from finrpt_providers import InvalidQuery
from finrpt_providers.config import Config

SECRET = "sk-SENTINEL-9f3a"


def write(path, text):
    path.write_text(text)
    return path


def test_defaults(tmp_path):
    cfg = Config.load(environ={}, cwd=tmp_path)
    assert cfg.providers == ["massive_flatfiles", "massive_rest", "yfinance"]
    assert cfg.get("MASSIVE_REST_BASE_URL") == "https://api.massive.com"
    assert cfg.get("MASSIVE_S3_ENDPOINT") == "https://files.massive.com"
    assert cfg.get("MASSIVE_S3_BUCKET") == "flatfiles"
    assert cfg.get("MASSIVE_API_KEY") is None


def test_precedence_arguments_toml_env_dotenv(tmp_path):
    write(tmp_path / ".env", "MASSIVE_API_KEY=from-dotenv\nMASSIVE_S3_BUCKET=dotenv-bucket\n"
          "MASSIVE_S3_ENDPOINT=http://dotenv\nFINRPT_PRICE_PROVIDERS=yfinance\n")
    write(tmp_path / "finrpt_providers.toml", '[massive_rest]\napi_key = "from-toml"\n'
          '[chain]\nproviders = ["massive_rest", "yfinance"]\n')
    env = {"MASSIVE_API_KEY": "from-env", "MASSIVE_S3_BUCKET": "env-bucket"}
    cfg = Config.load(environ=env, cwd=tmp_path)
    assert cfg.get("MASSIVE_API_KEY") == "from-toml" and cfg.source("MASSIVE_API_KEY").startswith("toml")
    assert cfg.get("MASSIVE_S3_BUCKET") == "env-bucket"  # .env never overrides the environment
    assert cfg.get("MASSIVE_S3_ENDPOINT") == "http://dotenv"
    assert cfg.providers == ["massive_rest", "yfinance"]  # TOML list
    cfg = Config.load({"massive_rest": {"api_key": "from-args"}}, environ=env, cwd=tmp_path)
    assert cfg.get("MASSIVE_API_KEY") == "from-args" and cfg.source("MASSIVE_API_KEY") == "arguments"
    cfg = Config.load({"FINRPT_PRICE_PROVIDERS": ["yfinance"]}, environ=env, cwd=tmp_path)
    assert cfg.providers == ["yfinance"]


def test_toml_path_from_environment_and_errors(tmp_path):
    toml = write(tmp_path / "custom.toml", '[massive_flatfiles]\nbucket = "b2"\n[myprov]\napi_key = "x"\n')
    cfg = Config.load(environ={"FINRPT_PROVIDERS_CONFIG": str(toml)}, cwd=tmp_path)
    assert cfg.get("MASSIVE_S3_BUCKET") == "b2"
    assert cfg.get("MYPROV_API_KEY") == "x" and cfg.section("myprov") == {"api_key": "x"}
    with pytest.raises(InvalidQuery, match="does not exist"):
        Config.load(environ={"FINRPT_PROVIDERS_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)
    bad = write(tmp_path / "bad.toml", "[chain\n")
    with pytest.raises(InvalidQuery, match="not valid TOML"):
        Config.load(toml_path=bad, environ={}, cwd=tmp_path)


def test_secrets_are_redacted_everywhere(tmp_path):
    write(tmp_path / "finrpt_providers.toml", f'[massive_flatfiles]\nsecret_key = "{SECRET}"\n'
          f'[myprov]\napi_token = "{SECRET}"\n')
    cfg = Config.load({"MASSIVE_API_KEY": SECRET}, environ={"MASSIVE_S3_ACCESS_KEY": SECRET}, cwd=tmp_path)
    assert cfg.get("MASSIVE_API_KEY") == SECRET and cfg.get("MYPROV_API_TOKEN") == SECRET
    for text in (repr(cfg), str(cfg), repr(cfg.describe()), f"{cfg}"):
        assert SECRET not in text
    assert "****" in repr(cfg)
    assert dict((n, v) for n, v, _ in cfg.describe())["MASSIVE_API_KEY"] == "****"
    with pytest.raises(TypeError, match="secrets"):
        pickle.dumps(cfg)


def test_today_and_numbers(tmp_path):
    cfg = Config.load({"FINRPT_PROVIDERS_TODAY": "2026-07-01", "FINRPT_YFINANCE_TIMEOUT": "3.5"}, environ={},
                      cwd=tmp_path)
    assert str(cfg.today()) == "2026-07-01"
    assert cfg.get_float("FINRPT_YFINANCE_TIMEOUT", 1.0) == 3.5
    with pytest.raises(InvalidQuery, match=r"FINRPT_YFINANCE_TIMEOUT \(\[yfinance\] timeout\) = 'soon' is not valid"):
        cfg.merged({"FINRPT_YFINANCE_TIMEOUT": "soon"})
    with pytest.raises(InvalidQuery, match="use a date YYYY-MM-DD"):
        cfg.merged({"FINRPT_PROVIDERS_TODAY": "July"}).today()


@pytest.mark.parametrize("name, value", [
    ("FINRPT_PROVIDERS_CACHE_DIR", "s3://AKIAEXAMPLE:url-sentinel-5e1@bucket/prefix"),
    ("FINRPT_PROVIDERS_CACHE_DIR", "s3://bucket/prefix?access_key=AKIAEXAMPLE&secret_key=url-sentinel-5e1"),
    ("FINRPT_STORE_S3_ENDPOINT", "https://user:url-sentinel-5e1@minio.internal:9000"),
    ("MASSIVE_REST_BASE_URL", "https://api.example.com/?apiKey=url-sentinel-5e1"),
])
def test_a_url_setting_with_credentials_in_it_is_refused_without_echoing_them(name, value):
    from finrpt_providers import ConfigurationError
    from finrpt_providers.config import Config

    with pytest.raises(ConfigurationError) as err:
        Config.load({name: value}, environ={}).value(name)
    assert name in str(err.value) and "credentials" in str(err.value)
    assert "url-sentinel-5e1" not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)
