"""An operator in a real browser: log in, read the dashboard, terminate an instance with confirmation,
and every page of the console readable at 1280, 1440 and 1920 px.

Drives Debian's chromium (never a browser downloaded by `playwright install`) against pytest-django's
live server, which serves from another thread; the sandbox and the service's clock are process-wide,
so it sees the same simulated cloud as the test. Screenshots go to the directory SCREENSHOTS_DIR names
(pytest's temporary directory of the test without it), listed in each test's docstring.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest

from instances.models import Instance

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = [1280, 1440, 1920]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
]

# Boxes of the dashboard's panels, and of every cell that sticks out of its panel (cells hidden in a
# closed <details>, a chart's figures, are not drawn).
PANELS_JS = """() => [...document.querySelectorAll('#dashboard .module')].map(panel => {
  const box = panel.getBoundingClientRect();
  const outside = [...panel.querySelectorAll('th, td, caption')].filter(cell => cell.checkVisibility()).filter(cell => {
    const c = cell.getBoundingClientRect();
    return c.left < box.left - 1 || c.right > box.right + 1 || c.top < box.top - 1 || c.bottom > box.bottom + 1;
  }).map(cell => cell.innerText.slice(0, 40));
  return {id: panel.id, left: box.left, right: box.right, top: box.top, bottom: box.bottom, outside};
})"""

# How far the page is wider than the window, and the header cells of a list that end off-screen or
# hidden past the edge of the list's box (Django lets the list scroll sideways inside it).
OVERFLOW_JS = """() => {
  const results = document.querySelector('.results');
  const edge = results ? Math.min(results.getBoundingClientRect().right, document.documentElement.clientWidth)
                       : document.documentElement.clientWidth;
  return {
    extra: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    offscreen: [...document.querySelectorAll('#result_list thead th')]
      .filter(th => th.getBoundingClientRect().right > edge + 1).map(th => th.innerText.trim()),
  };
}"""


def overlapping(panels: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for i, a in enumerate(panels):
        for b in panels[i + 1 :]:
            if (
                a["left"] < b["right"] - 1
                and b["left"] < a["right"] - 1
                and a["top"] < b["bottom"] - 1
                and b["top"] < a["bottom"] - 1
            ):
                pairs.append((a["id"], b["id"]))
    return pairs


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Return the directory screenshots go to: SCREENSHOTS_DIR, or the test's temporary directory."""
    directory = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


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


@pytest.fixture
def logged_in(live_server, browser_page, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a long passphrase")
    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a long passphrase")
    page.click("input[type=submit]")
    return page


def test_an_operator_sees_the_fleet_and_terminates_an_instance_after_confirming(
    live_server, logged_in, octoperf, settle
):
    doomed, kept = octoperf.create(), octoperf.create(region="nbg1", type="MEDIUM")
    octoperf.allocate()
    settle(60)
    page = logged_in
    page.goto(f"{live_server.url}/admin/")

    assert "Simulated Hetzner Cloud" in page.inner_text("#sandbox-banner")
    assert page.inner_text("#instances-by-status").lower().split() == ["instances", "by", "state", "running", "2"]
    assert "EUR/h" in page.inner_text("#spend")
    assert "free (on no server)\t1" in page.inner_text("#static-ips")

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
    assert page.inner_text("#instances-by-status").lower().split() == [
        "instances",
        "by",
        "state",
        "running",
        "1",
        "deleting",
        "1",
    ]


def test_every_page_fits_at_common_screen_widths(live_server, logged_in, octoperf, settle, sandbox, screenshots):
    """Screenshots, at each width W of 1280, 1440 and 1920 px, in SCREENSHOTS_DIR:

    - dashboard-W.png: the dashboard (panels side by side, none over another);
    - instances-W.png: the instance list (age, EUR per hour, every column on screen);
    - instance-W.png: an instance's page with its Reboot and Terminate buttons;
    - static-ips-W.png: the static IP list (released ones hidden);
    - audit-W.png: the audit log (every column on screen).
    """
    instances = [octoperf.create(region=region) for region in ("fsn1", "nbg1", "hel1", "FSN1")]
    associated = octoperf.create()
    ip_id, released = octoperf.allocate(), octoperf.allocate()
    settle(60)
    octoperf.associate(ip_id, associated)
    octoperf.release(released)
    sandbox.inject_fault("POST", r"/servers$", code="resource_limit_exceeded", status=403)
    octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "XLARGE"})
    octoperf.delete(instances[1])
    settle(120)
    page = logged_in
    pages = {
        "dashboard": "/admin/",
        "instances": "/admin/instances/instance/",
        "instance": f"/admin/instances/instance/{instances[0]}/change/",
        "static-ips": "/admin/staticips/staticip/",
        "audit": "/admin/octoprovider/auditevent/",
    }
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
            overflow = page.evaluate(OVERFLOW_JS)
            if overflow["extra"] > 0 or overflow["offscreen"]:
                problems.append(
                    f"{name} at {width}px: {overflow['extra']}px too wide, off-screen: {overflow['offscreen']}"
                )
            if name == "dashboard":
                panels = page.evaluate(PANELS_JS)
                problems += [f"dashboard at {width}px: {a} overlaps {b}" for a, b in overlapping(panels)]
                problems += [
                    f"dashboard at {width}px: {p['id']} shows {p['outside']} outside its panel"
                    for p in panels
                    if p["outside"]
                ]

    assert problems == [], "\n".join(problems)


# The lists' layout: header cells past the right edge, cells whose content is cut (wider than the cell
# and hidden), and words (our ids, an error's words) broken across two lines (one token, two line boxes).
LIST_LAYOUT_JS = """() => {
  const width = document.documentElement.clientWidth;
  const results = document.querySelector('.results');
  const edge = results ? Math.min(results.getBoundingClientRect().right, width) : width;
  const offscreen = [...document.querySelectorAll('#result_list thead th')]
    .filter(th => th.getBoundingClientRect().right > edge + 1).map(th => th.innerText.trim());
  const cut = [...document.querySelectorAll('#result_list td, #result_list tbody th')]
    .filter(cell => cell.scrollWidth > cell.clientWidth + 1).map(cell => cell.innerText.trim().slice(0, 40));
  const wrapped = [];
  const walker = document.createTreeWalker(document.querySelector('#result_list tbody'), NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(/[^\\s]{2,}/g)) {
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      if (range.getClientRects().length > 1) wrapped.push(match[0]);
    }
  }
  return {extra: document.documentElement.scrollWidth - width, offscreen, cut, wrapped,
          headers: [...document.querySelectorAll('#result_list thead th')].map(th => th.innerText.trim())};
}"""


def test_the_charts_lists_and_audit_at_common_screen_widths(
    live_server, logged_in, octoperf, settle, sandbox, screenshots
):
    """Screenshots, at each width W of 1280, 1440 and 1920 px, in SCREENSHOTS_DIR:

    - dashboard-charts-W.png: the dashboard, whole, with its charts; charts-W.png: the charts alone,
      and charts-dark-W.png in the admin's dark mode;
      alerts-W.png: the open alerts panel, with one open alert (a daily budget at 80 %);
    - runs-W.png: the runs page, a cost bar per run;
    - associations-W.png: the associations list (Created, Ended and Error on screen);
    - all-instances-W.png: every instance, terminated ones included (Error whole, ids on one line);
    - audit-by-actor-W.png: the audit list filtered by an operator's username.
    """
    from octoprovider.core import clock
    from octoprovider.operations.models import Alert, AuditEvent

    ids = [octoperf.create(region=region) for region in ("fsn1", "nbg1", "hel1")]
    first_ip, second_ip = octoperf.allocate(), octoperf.allocate()
    settle(60)
    octoperf.associate(first_ip, ids[0])
    octoperf.associate(second_ip, ids[1])
    settle(120)
    sandbox.inject_fault("POST", r"/servers$", code="resource_limit_exceeded", status=403)
    octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "XLARGE"})
    octoperf.delete(ids[2])
    settle(3600)
    Alert.objects.create(
        key="budget:DAILY_BUDGET_EUR:80",
        family="budget",
        title="DAILY_BUDGET_EUR at 80 % or more",
        detail="4.10 of 5.00 EUR spent today",
        since=clock.now(),
        started_at=clock.now(),
    )
    for action in ("terminate", "reboot", "release"):
        AuditEvent.objects.create(
            at=clock.now(),
            kind=AuditEvent.Kind.CONSOLE,
            actor="ops",
            method="POST",
            route=f"console {action}",
            our_ids=ids[0],
            status=200,
            outcome="ok",
        )
    AuditEvent.objects.create(
        at=clock.now(),
        kind=AuditEvent.Kind.CONSOLE,
        actor="someone-else",
        method="POST",
        route="console reboot",
        our_ids=ids[1],
        status=200,
        outcome="ok",
    )
    # An error in the lists, as a busy pass leaves one: its column must still fit at 1280 px.
    from staticips.models import Association

    Association.objects.filter(pk=Association.objects.order_by("created_at").values("pk")[:1]).update(
        last_error="Hetzner answered locked: another action is running on server 80000012"
    )
    page = logged_in
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})

        page.goto(f"{live_server.url}/admin/")
        page.screenshot(path=str(screenshots / f"dashboard-charts-{width}.png"), full_page=True)
        page.locator("#charts").screenshot(path=str(screenshots / f"charts-{width}.png"))
        page.emulate_media(color_scheme="dark")
        page.locator("#charts").screenshot(path=str(screenshots / f"charts-dark-{width}.png"))
        page.emulate_media(color_scheme="light")
        page.locator("#alerts").screenshot(path=str(screenshots / f"alerts-{width}.png"))
        if "DAILY_BUDGET_EUR at 80 % or more" not in page.locator("#alerts").inner_text():
            problems.append(f"dashboard at {width}px: the open alert is not in the alerts panel")
        for chart in ("chart-spend", "chart-instances", "chart-requests"):
            box = page.locator(f"#{chart} svg.chart").bounding_box()
            if box is None or box["x"] < 0 or box["x"] + box["width"] > width or box["height"] < 100:
                problems.append(f"dashboard at {width}px: {chart} is not whole on screen ({box})")

        page.goto(f"{live_server.url}/admin/runs/")
        page.screenshot(path=str(screenshots / f"runs-{width}.png"), full_page=True)
        bars = page.locator("#runs td.cost-bar svg")
        if bars.count() < 2:
            problems.append(f"runs at {width}px: {bars.count()} cost bars")
        if page.input_value("#since") != f"{clock.now().date() - timedelta(days=7)}":
            problems.append(f"runs at {width}px: the date picker shows {page.input_value('#since')!r}")

        for name, path in {
            "associations": "/admin/staticips/association/",
            "all-instances": "/admin/instances/instance/?status=all",
            "audit-by-actor": "/admin/octoprovider/auditevent/?actor=ops",
        }.items():
            page.goto(f"{live_server.url}{path}")
            page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
            layout = page.evaluate(LIST_LAYOUT_JS)
            for what in ("offscreen", "cut", "wrapped"):
                if layout[what]:
                    problems.append(f"{name} at {width}px: {what} {layout[what]} (columns {layout['headers']})")
            if layout["extra"] > 0:
                problems.append(f"{name} at {width}px: the page is {layout['extra']}px too wide")
        rows = page.locator("#result_list tbody tr").count()
        if rows != 3:
            problems.append(f"the audit filtered by actor lists {rows} rows, not the 3 of ops")

    assert problems == [], "\n".join(problems)
