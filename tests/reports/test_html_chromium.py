"""The HTML report in a real headless Chromium: loads without console errors, every image loads,
every audio element can play and has the clip's length, and a screenshot is kept as an artefact.

Chromium and ChromeDriver come from the system (Debian packages ``chromium`` and
``chromium-driver``; ``.ci/run`` installs them). Selenium is pointed at the system chromedriver
through a Service, so Selenium Manager never tries to download a driver. Without them the test is
skipped locally and FAILS on CI (env ``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
AUDIO_TOLERANCE_S = 0.01  # one 10 ms frame
WAIT_S = 15.0


def _first_existing(paths: tuple[str, ...], name: str) -> str | None:
    for p in paths:
        if os.path.exists(p):
            return p
    return shutil.which(name)


def _require_browser() -> tuple[str, str]:
    browser = _first_existing(CHROMIUM_CANDIDATES, "chromium")
    driver = _first_existing(DRIVER_CANDIDATES, "chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        selenium_ok = False
    else:
        selenium_ok = True
    missing = [what for what, ok in (("chromium", browser), ("chromedriver", driver), ("selenium", selenium_ok)) if not ok]
    if missing:
        message = (f"{', '.join(missing)} not installed: install the Debian packages chromium and chromium-driver "
                   "and the Python package selenium (.ci/run does this)")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return browser, driver  # type: ignore[return-value]


@pytest.fixture()
def chromium(tmp_path: Path):
    browser, driver_path = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-quic", "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _artefact_dirs(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path]
    if os.environ.get("CI"):
        dirs.append(Path(__file__).resolve().parents[2] / ".pytest_artifacts")
    return dirs


AUDIO_STATE_JS = """
return Array.from(document.querySelectorAll('audio')).map(a => ({
  src: a.getAttribute('src'), ready: a.readyState, duration: a.duration,
  expected: parseFloat(a.dataset.duration), error: a.error ? a.error.code : null}));
"""
IMAGE_STATE_JS = """
return Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete,
  width: i.naturalWidth}));
"""
PLAY_JS = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
Promise.all(audios.map(a => { a.muted = true; return a.play().then(() => { a.pause(); return 'ok'; },
                                                          e => 'play failed: ' + e.name + ' ' + e.message); }))
  .then(done);
"""


def test_report_in_headless_chromium(chromium, built_report, tmp_path: Path) -> None:
    run, index = built_report
    chromium.set_script_timeout(WAIT_S)
    chromium.get(index.resolve().as_uri())

    deadline = time.monotonic() + WAIT_S
    while True:  # wait until every audio element has its metadata (or failed)
        audio = chromium.execute_script(AUDIO_STATE_JS)
        if all(a["ready"] >= 1 or a["error"] for a in audio) or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    images = chromium.execute_script(IMAGE_STATE_JS)
    assert len(images) >= 6, "the report should show the rendered figures"
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"

    assert len(audio) >= 9, "three excerpts per regime at least"
    for a in audio:
        assert a["error"] is None, f"{a['src']}: media error code {a['error']}"
        assert a["ready"] >= 1, f"{a['src']}: readyState {a['ready']} (no metadata)"
        assert abs(a["duration"] - a["expected"]) <= AUDIO_TOLERANCE_S, (
            f"{a['src']}: browser duration {a['duration']} s, clip length {a['expected']} s")
    played = chromium.execute_async_script(PLAY_JS)
    assert all(p == "ok" for p in played), played

    errors = [e for e in chromium.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, f"console errors: {errors}"

    height = int(chromium.execute_script("return document.documentElement.scrollHeight"))
    chromium.set_window_size(1400, min(max(height, 1000), 16000))  # the whole page in one screenshot
    for folder in _artefact_dirs(tmp_path):
        folder.mkdir(parents=True, exist_ok=True)
        assert chromium.save_screenshot(str(folder / "report-screenshot.png"))
    assert (tmp_path / "report-screenshot.png").stat().st_size > 10_000


def test_browser_reports_a_missing_image(chromium, built_report, tmp_path: Path) -> None:
    """The checks above can fail: a copy of the report with one figure deleted shows a broken image."""
    _, index = built_report
    report = tmp_path / "report"
    shutil.copytree(index.parent, report)
    (report / "figures" / "rtf_bars.png").unlink()
    chromium.get((report / "index.html").resolve().as_uri())
    time.sleep(0.5)
    images = chromium.execute_script(IMAGE_STATE_JS)
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert broken == ["figures/rtf_bars.png"]
    errors = [e for e in chromium.get_log("browser") if e.get("level") == "SEVERE"]
    assert any("rtf_bars.png" in e.get("message", "") for e in errors)


def test_missing_browser_skips_locally_and_fails_on_ci(monkeypatch) -> None:
    import tests.reports.test_html_chromium as me

    monkeypatch.setattr(me, "CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.setattr(me.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        me._require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        me._require_browser()
