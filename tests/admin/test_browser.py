"""An operator in a real browser: log in, read the dashboard, terminate an instance with confirmation.

Drives Debian's chromium (never a browser downloaded by `playwright install`) against pytest-django's
live server, which serves from another thread; the sandbox and the service's clock are process-wide,
so it sees the same simulated cloud as the test. Saves a screenshot to artifacts/dashboard.png.
"""

import os
from pathlib import Path

import pytest

from instances.models import Instance

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse the
    # test's own (synchronous, single-threaded) database queries.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_an_operator_sees_the_fleet_and_terminates_an_instance_after_confirming(
    live_server, browser_page, octoperf, settle, django_user_model
):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a long passphrase")
    doomed, kept = octoperf.create(), octoperf.create(region="nbg1", type="MEDIUM")
    octoperf.allocate()
    settle(60)
    page = browser_page

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a long passphrase")
    page.click("input[type=submit]")

    assert "Simulated Hetzner Cloud" in page.inner_text("#sandbox-banner")
    assert page.inner_text("#instances-by-status").lower().split() == ["instances", "by", "state", "running", "2"]
    assert "EUR/h" in page.inner_text("#spend")
    assert "free\t1" in page.inner_text("#static-ips")

    page.click("#instances-by-status caption a")
    page.check(f'input[name="_selected_action"][value="{doomed}"]')
    page.select_option('select[name="action"]', "terminate")
    page.click('button[name="index"]')
    assert "Their Hetzner servers are deleted" in page.inner_text("#content")
    assert doomed in page.inner_text(".confirm-objects")
    page.click("input[type=submit][value^='Yes']")

    assert "Terminating 1 instance." in page.inner_text(".messagelist")
    assert Instance.objects.get(pk=doomed).status == "deleting"
    assert Instance.objects.get(pk=kept).status == "running"

    page.goto(f"{live_server.url}/admin/")
    assert page.inner_text("#instances-by-status").lower().split() == ["instances", "by", "state", "running", "1", "deleting", "1"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
