"""The GUI in a real browser (Debian's chromium driven by Playwright) against a real ``confmerge serve``.

The screenshots in docs/screenshots/ are made here, so they show what the
server really renders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..conftest import FIXTURES, ROOT, run_confmerge
from .server import Server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
THREE = FIXTURES / "merge" / "three-servers"
THREE_FILES = [str(THREE / f"bqn{i}-v1.conf") for i in range(3)]

if not CHROMIUM.exists():
    pytest.skip("chromium is not installed (/usr/bin/chromium; .ci/run installs it with apt-get)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = playwright_api.expect


@pytest.fixture
def page(browser, server: Server):  # type: ignore[no-untyped-def]
    context = browser.new_context(ignore_https_errors=True, accept_downloads=True, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "login")
    page.fill("#token", server.token)
    page.click("#login")
    expect(page.locator("#compare-form")).to_be_visible()


def shot(page, name: str, full: bool = False) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def test_log_in_and_out(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url)
    expect(page.locator("#token")).to_be_visible()  # the 401 page sends the browser to the login
    assert page.url == server.url + "login"
    shot(page, "login")
    page.fill("#token", "not-the-token")
    page.click("#login")
    expect(page.locator(".error")).to_have_text("That token is not valid.")
    page.fill("#token", server.token)
    page.click("#login")
    expect(page.locator("#compare-form")).to_be_visible()
    shot(page, "home")
    page.click("#logout")
    expect(page.locator("#token")).to_be_visible()
    page.goto(server.url)
    expect(page.locator("#token")).to_be_visible()


def test_compare_the_guides_backups_shows_the_six_cluster_wide_differences(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    log_in(page, server)
    form = page.locator("#compare-form")
    form.locator("input[name=old]").set_input_files(str(FIXTURES / "bqn0-v1.conf"))
    form.locator("input[name=new]").set_input_files(str(FIXTURES / "bqn1-v1.conf"))
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-count=cluster]")).to_have_text("6")
    expect(page.locator("#total")).to_have_text("15")
    cluster = page.locator('.sec[data-class="cluster"] article.chg')
    expect(cluster).to_have_count(6)
    expect(page.locator('.sec[data-class="cluster"] .badge').first).to_have_text("cluster-wide")
    expect(page.locator("mark.ins", has_text="bqn1").first).to_be_visible()  # word-level: hostname bqn0 -> bqn1
    page.keyboard.press("j")
    expect(page.locator("article.chg.current")).to_have_attribute("id", "c1")
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator("article.chg.current")).to_have_attribute("id", "c3")
    page.keyboard.press("k")
    expect(page.locator("article.chg.current")).to_have_attribute("id", "c2")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "compare")
    page.locator("[data-filter=server]").uncheck()
    expect(page.locator('.sec[data-class="server"]').first).to_be_hidden()
    expect(page.locator('.sec[data-class="cluster"]').first).to_be_visible()
    page.keyboard.press("u")
    expect(page.locator(".view-unified").first).to_be_visible()
    expect(page.locator(".view-split").first).to_be_hidden()
    page.locator("details.ctx summary").first.click()
    expect(page.locator("details.ctx table").first).to_be_visible()
    shot(page, "compare-unified")


def test_resolve_a_three_server_merge_with_the_keyboard_and_download_what_confmerge_merge_writes(
        page, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_in(page, server)
    page.locator("#merge-form input[name=backups]").set_input_files(THREE_FILES)
    page.locator("#merge-form button[type=submit]").click()
    progress = page.locator("#progress")
    expect(progress).to_have_text("0 of 4 resolved")
    expect(page.locator("table.inputs tr", has_text="bqn0-v1.conf").locator(".badge.primary")).to_be_visible()
    expect(page.locator("li.conflict .badge.auto")).to_have_count(4)
    expect(page.locator("#unclassified h2")).to_have_text("Not merged: 3 unclassified entries")
    expect(page.locator("#unclassified")).to_contain_text("bqn0-v1.conf:36 snmp")
    shot(page, "merge-draft", full=True)
    page.keyboard.press("j")  # conflict 1: timezone
    page.keyboard.press("3")  # take bqn2-v1.conf's: timezone UTC
    expect(progress).to_have_text("1 of 4 resolved")
    expect(page.locator("#k1 .badge.chosen")).to_have_text("chosen: bqn2-v1.conf")
    expect(page.locator("#k2")).to_be_focused()  # on to the next unresolved
    page.keyboard.press("2")  # plan-100M downlink: bqn1-v1.conf's 90M
    expect(progress).to_have_text("2 of 4 resolved")
    expect(page.locator("#k2 .result")).to_contain_text("downlink 90M")
    page.keyboard.press("1")  # congestion-management: the primary's, chosen explicitly
    expect(progress).to_have_text("3 of 4 resolved")
    page.keyboard.press("n")
    expect(page.locator("#k4")).to_be_focused()
    page.keyboard.press("2")  # the rule order: bqn1-v1.conf's
    expect(progress).to_have_text("4 of 4 resolved")
    expect(page.locator("li.conflict.unresolved")).to_have_count(0)
    shot(page, "merge-resolved", full=True)
    page.click("#confirm")
    expect(page.locator(".badge.ok", has_text="confirmed")).to_be_visible()
    chosen = page.locator("#k1 button.opt.on")
    assert chosen.evaluate("b => getComputedStyle(b).opacity") == "1"  # what was chosen stays legible once final
    page.locator("details.preview summary").first.click()
    expect(page.locator("details.preview").first).to_contain_text("+timezone UTC")
    shot(page, "merge-confirmed", full=True)

    downloaded = tmp_path / "browser"
    downloaded.mkdir()
    for name in ("bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf", "merge-report.json"):
        with page.expect_download() as info:
            page.click(f"a.download:text-is('{name}')")
        info.value.save_as(downloaded / name)
    with page.expect_download() as info:
        page.click("#zip")
    info.value.save_as(tmp_path / "all.zip")
    assert shutil.unpack_archive(tmp_path / "all.zip", tmp_path / "zip", "zip") is None

    # The same choices, written by hand as a file for the CLI (nothing taken from the server).
    choices = {"schema": "confmerge.resolutions/1", "resolutions": [
        {"section": "timezone", "statement": None, "take": "bqn2-v1.conf"},
        {"section": "policy rate plan-100M", "statement": "downlink", "take": "bqn1-v1.conf"},
        {"section": "policy rate plan-100M", "statement": "congestion-management", "take": "bqn0-v1.conf"},
        {"section": "rule sw-updates-at-peak", "statement": "order", "take": "bqn1-v1.conf"}]}
    (tmp_path / "choices.json").write_text(json.dumps(choices))
    cli = run_confmerge("merge", *THREE_FILES, "-o", tmp_path / "cli", "--resolve", tmp_path / "choices.json")
    assert cli.returncode == 0, cli.stderr
    for name in ("bqn0-v2.conf", "bqn1-v2.conf", "bqn2-v2.conf"):
        assert (downloaded / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
        assert (tmp_path / "zip" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert b"timezone UTC" in (downloaded / "bqn0-v2.conf").read_bytes()
    report = json.loads((downloaded / "merge-report.json").read_text())
    assert [c["chosen"] for c in report["conflicts"]] == [
        c["chosen"] for c in json.loads((tmp_path / "cli" / "merge-report.json").read_text())["conflicts"]]


def test_a_bad_upload_shows_its_error(page, server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_in(page, server)
    bad = tmp_path / "bqn9-v1.conf"
    bad.write_text("hostname bqn9\nntp\n  server 129.6.15.28\n server 1.1.1.1\n")
    page.locator("#check-form input[name=file]").set_input_files([str(bad), str(FIXTURES / "bqn0-v1.conf")])
    page.locator("#check-form button[type=submit]").click()
    expect(page.locator(".badge.bad")).to_have_text("1 error")
    expect(page.locator(".badge.ok")).to_have_count(1)
    expect(page.locator(".diag code").first).to_have_text("bqn9-v1.conf:4:2")
    expect(page.locator("pre.source").first).to_contain_text(" server 1.1.1.1")
    expect(page.locator("pre.source .caret").first).to_have_text(" ^")
    shot(page, "check")
    page.goto(server.url)
    page.locator("#merge-form input[name=backups]").set_input_files([str(bad), str(FIXTURES / "bqn0-v1.conf")])
    page.locator("#merge-form button[type=submit]").click()
    expect(page.locator(".error-card h1")).to_have_text("400: 1 error in the backups")
    expect(page.locator(".diag code").first).to_have_text("bqn9-v1.conf:4:2")
    shot(page, "bad-upload")


def test_take_the_primarys_for_the_rest_and_choose_another_primary(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    log_in(page, server)
    page.locator("#merge-form input[name=backups]").set_input_files(THREE_FILES)
    page.locator("#merge-form button[type=submit]").click()
    progress = page.locator("#progress")
    expect(progress).to_have_text("0 of 4 resolved")
    page.click("#take-rest")
    expect(progress).to_have_text("4 of 4 resolved")
    expect(page.locator("li.conflict .badge.chosen").first).to_have_text("chosen: bqn0-v1.conf")
    page.click("button[data-primary='bqn1-v1.conf']")
    expect(progress).to_have_text("0 of 4 resolved")
    expect(page.locator("table.inputs tr", has_text="bqn1-v1.conf").locator(".badge.primary")).to_be_visible()
    expect(page.locator("#k1 .result")).to_contain_text("timezone Europe/Madrid")
