"""The command line's inputs checked before any fetch (issue 24, item 6): --output (and --plot)
that cannot take the file, too many tickers (FINRPT_MAX_TICKERS), huge inputs echoed shortened,
a tickers file that is not text. Every refusal: exit 2, one error line, nothing fetched."""

from __future__ import annotations

import os
import tempfile

import pytest

from finrpt_providers import chain, cli, compare, live
from finrpt_providers import market as market_mod
from finrpt_providers.testing import demo
from tests.test_cli import run  # the CLI in-process: (exit code, stdout, stderr)

START, END = "2025-11-13", "2025-11-18"
HUGE = "A" * 100_000


def fetch(*extra):
    return ("fetch", *extra, "--start", START, "--end", END, "--provider", "yfinance")


@pytest.fixture
def yahoo_env(monkeypatch, fake_yahoo, market):
    monkeypatch.setenv("FINRPT_YFINANCE_BASE_URL", fake_yahoo.url)
    monkeypatch.setenv("FINRPT_PROVIDERS_TODAY", market.today().isoformat())
    return fake_yahoo


@pytest.fixture
def no_fetch(monkeypatch):
    """Every way the CLI fetches fails the test if reached (for commands without a fake server here)."""
    asked = []

    def refuse(name):
        def f(*a, **k):
            asked.append(name)
            raise AssertionError(f"{name} was called: the input should have been refused before")
        return f

    for mod, name in ((chain, "get_prices"), (market_mod, "get_market"), (compare, "compare"),
                      (live, "stream"), (demo, "run_demo")):
        monkeypatch.setattr(mod, name, refuse(name))
    return asked


def refused(code, out, err, *words):
    """Exit 2, one error line (no traceback, no 'please report it'), holding every word."""
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "please report" not in err and "unexpected" not in err
    for w in words:
        assert w in lines[0], lines[0]
    assert len(lines[0]) < 600, "a refusal is one short line"
    return lines[0]


# --- 1. --output checked before any fetch ---------------------------------------------------------

def test_output_into_a_missing_directory(yahoo_env, tmp_path):
    target = tmp_path / "nope" / "bars.csv"
    line = refused(*run(*fetch("NVDA", "--format", "csv", "--output", str(target))),
                   str(target), "does not exist", "mkdir -p")
    assert str(tmp_path / "nope") in line
    assert yahoo_env.requests == [] and not (tmp_path / "nope").exists()


def test_output_onto_a_directory(yahoo_env, tmp_path):
    refused(*run(*fetch("NVDA", "--format", "json", "--output", str(tmp_path))),
            str(tmp_path), "is a directory", f"{tmp_path}/bars.json")
    assert yahoo_env.requests == []


def test_output_under_a_file(yahoo_env, tmp_path):
    (tmp_path / "f").write_text("x")
    refused(*run(*fetch("NVDA", "--output", str(tmp_path / "f" / "bars.csv"))), "is not a directory")
    assert yahoo_env.requests == []


def test_output_in_a_directory_that_takes_no_new_file(yahoo_env, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:  # root writes anywhere: make the directory refuse new files as a read-only mount would
            real = tempfile.mkstemp

            def mkstemp(*a, dir=None, **k):
                if dir is not None and os.path.samefile(dir, locked):
                    raise PermissionError(13, "Permission denied")
                return real(*a, dir=dir, **k)

            monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        refused(*run(*fetch("NVDA", "--format", "csv", "--output", str(locked / "bars.csv"))),
                str(locked / "bars.csv"), "does not take new files", "Permission denied", "permissions")
        assert yahoo_env.requests == [] and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_with_a_nul_character(yahoo_env):
    refused(*run(*fetch("NVDA", "--output", "bad\0name.csv")), "not a valid path", "NUL")
    assert yahoo_env.requests == []


@pytest.mark.parametrize("argv", [
    ("market", "2025-11-14", "--format", "csv", "--output", "{missing}"),
    ("market", "2025-11-14", "--format", "parquet", "--output", "{dir}"),
    ("compare", "NVDA", "--start", START, "--plot", "{missing}"),
    ("demo", "--plot", "{missing}"),
])
def test_every_command_that_writes_a_file_checks_it_first(no_fetch, tmp_path, argv):
    argv = [a.format(missing=tmp_path / "nope" / "out.png", dir=tmp_path) for a in argv]
    code, out, err = run(*argv)
    refused(code, out, err, "does not exist" if "nope" in " ".join(argv) else "is a directory")
    assert no_fetch == []


def test_a_good_output_is_written_atomically_and_leaves_nothing_else(yahoo_env, tmp_path):
    target = tmp_path / "out" / "bars.csv"
    target.parent.mkdir()
    code, out, err = run(*fetch("NVDA", "--format", "csv", "--output", str(target)))
    assert code == 0, err
    assert out == "" and target.read_text().startswith("timestamp,")
    assert [p.name for p in target.parent.iterdir()] == ["bars.csv"]  # no probe or temp file left


# --- 2. FINRPT_MAX_TICKERS ----------------------------------------------------------------------

def test_a_million_line_tickers_file_is_refused_before_any_fetch(yahoo_env, tmp_path):
    f = tmp_path / "all.txt"
    f.write_text("\n".join(f"T{i}" for i in range(1_000_000)) + "\n")
    line = refused(*run(*fetch("--tickers-file", str(f))),
                   "1000000 distinct tickers", "limit of 5000", "FINRPT_MAX_TICKERS", "market", "get_market", str(f))
    assert "default" in line
    assert yahoo_env.requests == []


def test_the_cap_counts_distinct_tickers_as_the_chain_does(yahoo_env, tmp_path, monkeypatch):
    """Blank lines and comments are skipped, duplicates (also brk-b = BRK.B, nvda = NVDA) count once."""
    monkeypatch.setenv("FINRPT_MAX_TICKERS", "2")
    f = tmp_path / "basket.txt"
    f.write_text("# my basket\n\nNVDA\nnvda  # again\nBRK.B\n   \nbrk-b\nNVDA\n")
    code, _, err = run(*fetch("--tickers-file", str(f), "--format", "csv"))
    assert code == 0, err
    assert "of 2 ticker(s)" in err
    # one more distinct ticker, on the command line: over
    line = refused(*run(*fetch("AAPL", "--tickers-file", str(f))),
                   "3 distinct tickers", "limit of 2", "FINRPT_MAX_TICKERS = 2", "environment", "command line")
    assert str(f) in line


def test_the_cap_holds_on_the_command_line_too(yahoo_env, monkeypatch):
    monkeypatch.setenv("FINRPT_MAX_TICKERS", "3")
    refused(*run(*fetch("A", "B", "C", "D")), "4 distinct tickers on the command line", "limit of 3",
            "FINRPT_MAX_TICKERS")
    assert yahoo_env.requests == []


def test_stream_takes_at_most_the_cap_but_star_is_one(no_fetch, monkeypatch):
    monkeypatch.setenv("FINRPT_MAX_TICKERS", "2")
    refused(*run("stream", "A", "B", "C"), "3 distinct tickers", "limit of 2", "FINRPT_MAX_TICKERS", "'*'")
    assert no_fetch == []


@pytest.mark.parametrize("bad", ["0", "-5", "many"])
def test_a_bad_cap_is_a_configuration_error(monkeypatch, bad):
    monkeypatch.setenv("FINRPT_MAX_TICKERS", bad)
    refused(*run("fetch", "NVDA", "--start", START), "FINRPT_MAX_TICKERS", "[cli] max_tickers")


def test_the_setting_is_declared_and_shown(monkeypatch):
    from finrpt_providers.config import Config, all_settings

    s = all_settings()["FINRPT_MAX_TICKERS"]
    assert (s.section, s.key, s.type, s.default, s.ge) == ("cli", "max_tickers", "int", 5000, 1)
    assert Config.load(environ={}).value("FINRPT_MAX_TICKERS") == 5000
    code, out, _ = run("config")
    assert code == 0 and "FINRPT_MAX_TICKERS" in out


# --- 3. long inputs echoed shortened ----------------------------------------------------------------

SHORT = "'" + "A" * 40 + "'... (100000 characters)"


@pytest.mark.parametrize("argv,words", [
    (("fetch", HUGE, "--start", START), [SHORT, "is not a US ticker"]),
    (("fetch", "NVDA", HUGE, "--start", START), [SHORT]),
    (("fetch", "NVDA", "--start", START, "--format", HUGE), [SHORT, "invalid choice"]),
    (("fetch", "--tickers-file", "/" + HUGE, "--start", START), ["/" + "A" * 39 + "... (100001 characters)",
                                                                  "cannot read"]),
    (("fetch", "NVDA", "--start", START, "--output", f"/nope/{HUGE}.csv"),
     ["/nope/" + "A" * 34 + "... (100010 characters)"]),
    (("fetch", "NVDA", "--start", START, "--output", f"{HUGE}.csv"), ["A" * 40 + "... (100004 characters)"]),
    (("compare", HUGE, "--start", START), [SHORT, "is not a US ticker"]),
    (("stream", "NVDA", HUGE), [SHORT]),
    (("stream", "NVDA", "--until", HUGE), ["--until " + SHORT, "HH:MM"]),
])
def test_a_huge_input_is_echoed_shortened(no_fetch, argv, words):
    line = refused(*run(*argv), *words)
    assert "A" * 41 not in line
    assert no_fetch == []


def test_a_huge_date_is_echoed_shortened(yahoo_env):
    """Checked inside get_prices, before any I/O; the CLI shortens what deeper layers echo."""
    line = refused(*run("fetch", "NVDA", "--start", HUGE, "--provider", "yfinance"), "start " + SHORT, "not a date")
    assert "A" * 41 not in line and yahoo_env.requests == []


def test_a_huge_ticker_in_the_file_is_echoed_shortened(yahoo_env, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(f"NVDA\n{HUGE}\n")
    line = refused(*run(*fetch("--tickers-file", str(f))), SHORT, "is not a US ticker")
    assert "A" * 41 not in line and yahoo_env.requests == []


def test_short_inputs_are_echoed_whole():
    assert cli._short("AAPL") == "AAPL" and cli._short("AAPL", quote=True) == "'AAPL'"
    assert cli._short("x" * 80) == "x" * 80
    assert cli._short("x" * 81) == "x" * 40 + "... (81 characters)"
    assert cli._short("a\x1b[2Jb") == "a\\x1b[2Jb"  # no terminal control sequence echoed raw


# --- 4. a tickers file that is not text -------------------------------------------------------------

@pytest.mark.parametrize("content,why", [
    (bytes(range(256)) * 8, "binary data"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "binary data"),
    ("AAPL\nMSFT\n".encode("utf-16"), "binary data"),  # NULs between the letters
    (b"AAPL\n\xe9l\xe9ment\n", "not UTF-8"),  # latin-1
])
def test_a_tickers_file_that_is_not_text(yahoo_env, tmp_path, content, why):
    f = tmp_path / "tickers.bin"
    f.write_bytes(content)
    line = refused(*run(*fetch("--tickers-file", str(f))),
                   str(f), "is not a text file of tickers", "one ticker a line", why)
    assert "fix the path" not in line
    assert yahoo_env.requests == []


def test_a_missing_tickers_file_still_says_fix_the_path(yahoo_env, tmp_path):
    refused(*run(*fetch("--tickers-file", str(tmp_path / "none.txt"))), "cannot read", "fix the path")
    assert yahoo_env.requests == []


def test_a_utf8_file_with_a_bom_is_text(yahoo_env, tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes("\ufeffNVDA\r\n".encode())
    code, _, err = run(*fetch("--tickers-file", str(f)))
    assert code == 0, err
    assert "bars from yfinance" in err
