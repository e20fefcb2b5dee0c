#!/usr/bin/env python3
"""End-to-end test of the web dashboard in headless Chromium.

Starts the demo node (config/demo.yaml) on free ports, opens its dashboard through
chromedriver, kills store/counter from the page (kill button, then the confirm dialog) and
checks what the page and /metrics show afterwards: the row's new pid and restart count, the
timeline's child_terminated mark, the status line, grove_restarts_total. Saves a dark and a
light screenshot, opens a process's detail panel, then stops the node with SIGTERM and
checks that it exits 0.

    tests/browser/dashboard_test.py --grove build/apps/grove --config config/demo.yaml \
        --screenshots build/screenshots

Needs chromium, chromium-driver and python3-selenium (scripts/install-deps); Debian's
selenium is installed for /usr/bin/python3. Exit status 0: passed; 1: failed; 2: could not
run (missing tool). Synchronisation is by WebDriverWait and polling with deadlines, never by
fixed sleeps.
"""

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request

try:
    from selenium import webdriver
    from selenium.common.exceptions import (ElementClickInterceptedException,
                                            ElementNotInteractableException,
                                            StaleElementReferenceException, TimeoutException,
                                            WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:
    print(f"dashboard_test: cannot import selenium ({error}) with {sys.executable}; install "
          "python3-selenium and run this with the Python it belongs to (Debian: /usr/bin/python3)",
          file=sys.stderr)
    sys.exit(2)

NODE_START_S = 20  # the dashboard line on the node's stderr
WAIT_S = 30  # each wait on the page or on /metrics
NODE_STOP_S = 15  # SIGTERM to exit
VIEWPORT = (1280, 800)
DASHBOARD_LINE = re.compile(r"grove: dashboard on (http://[0-9.]+:\d+)/")
CHILD, SUPERVISOR = "counter", "store"
PATH = f"{SUPERVISOR}/{CHILD}"


class Failure(Exception):
    """A check that did not hold: its message says which."""


def log(t0, text):
    print(f"[{time.monotonic() - t0:6.2f}s] {text}", flush=True)


# ---------------------------------------------------------------- the node


class Node:
    """The grove node as a subprocess; a thread drains its stderr so the pipe never fills."""

    def __init__(self, grove, config):
        env = dict(os.environ, GROVE_HTTP_PORT="0", GROVE_CONSOLE_PORT="0")
        self.proc = subprocess.Popen([grove, "run", config], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.tail = collections.deque(maxlen=200)
        self.url = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._eof = False
        self._reader = threading.Thread(target=self._drain, name="grove-stderr", daemon=True)
        self._reader.start()

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.tail.append(line)
                match = DASHBOARD_LINE.search(line)
                if match and self.url is None:
                    self.url = match.group(1)
                    self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for_dashboard(self, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.url is None and not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"no dashboard line on the node's stderr within {timeout} s")
                self._changed.wait(left)
            if self.url is None:
                raise Failure(f"the node closed its stderr before printing the dashboard line "
                              f"(exit status {self.proc.poll()})")
            return self.url

    def stop(self, timeout):
        """SIGTERM, then the exit status within `timeout` seconds (None: killed, did not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = None
        self._reader.join(5)
        return status

    def stderr_tail(self, lines=60):
        with self._lock:
            return list(self.tail)[-lines:]


# ---------------------------------------------------------------- /metrics


LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        match = LABEL.match(text, pos)
        if not match:
            raise ValueError(f"bad label set {{{text}}}")
        labels[match.group(1)] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                        match.group(2))
        pos = match.end()
    return labels


def parse_prometheus(text):
    """Samples of the text exposition format: [(name, {label: value}, float)]."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$", line)
        if not match:
            raise ValueError(f"not a sample line: {line!r}")
        samples.append((match.group(1), parse_labels(match.group(2) or ""), float(match.group(3))))
    return samples


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def restarts_in_metrics(base, raw_lines):
    """grove_restarts_total{child=counter,supervisor=store}, or None while it is absent."""
    text = fetch(f"{base}/metrics")
    raw_lines[:] = [line for line in text.splitlines() if line.startswith("grove_restarts_total")]
    values = [value for name, labels, value in parse_prometheus(text)
              if name == "grove_restarts_total" and labels == {"child": CHILD, "supervisor": SUPERVISOR}]
    if len(values) > 1:
        raise Failure(f"grove_restarts_total for {PATH} appears {len(values)} times in /metrics")
    return values[0] if values else None


# ---------------------------------------------------------------- the browser


def start_browser(chromedriver, chromium):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=%d,%d" % VIEWPORT,
                "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--force-color-profile=srgb", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    # The window is 1280x800 with the browser's frame; make the page itself 1280x800, the size
    # of the screenshots.
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [VIEWPORT[0], VIEWPORT[1]]:
        size = driver.get_window_size()
        driver.set_window_size(size["width"] + VIEWPORT[0] - inner[0], size["height"] + VIEWPORT[1] - inner[1])
    return driver


def wait(driver, what, condition, timeout=WAIT_S):
    """WebDriverWait until `condition(driver)` is truthy; a stale element counts as not yet."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise Failure(f"timed out after {timeout} s waiting for {what}") from None


def find(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def row_css(path):
    return f'#tree-body .tree-row[data-path="{path}"]'


def row_state(driver, path):
    row = find(driver, row_css(path))
    if row is None:
        return None
    return {key: row.get_attribute(f"data-{key}") for key in ("status", "pid", "restarts")}


def click(driver, what, css, timeout=WAIT_S):
    """Clicks the element once it is displayed and enabled; retries while something covers it
    or the page replaces it (rows move when the tables refresh)."""
    def attempt(d):
        element = find(d, css)
        if element is None or not element.is_displayed() or not element.is_enabled():
            return False
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            return False
        return True
    wait(driver, f"{what} ({css}) to be clickable", attempt, timeout)


def browser_log(driver):
    try:
        return driver.get_log("browser")
    except Exception as error:  # not every driver keeps one
        return [{"level": "INFO", "source": "test", "message": f"(no browser log: {error})"}]


def page_errors(entries):
    """The log entries that mean the page misbehaved: uncaught exceptions and console.error."""
    return [e for e in entries if e.get("level") == "SEVERE" and e.get("source") in ("javascript", "console-api")]


def screenshot(driver, directory, theme):
    current = driver.execute_script("return document.documentElement.dataset.theme || ''")
    if current != theme:
        click(driver, "the theme toggle", "#theme-toggle")
        wait(driver, f'html[data-theme="{theme}"]',
             lambda d: d.execute_script("return document.documentElement.dataset.theme") == theme)
    # Two animation frames: the new theme's styles are applied and painted before the capture.
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")
    path = os.path.join(directory, f"dashboard-{theme}.png")
    if not driver.save_screenshot(path):
        raise Failure(f"could not save {path}")
    return path


# ---------------------------------------------------------------- the test


def run(args, t0, node, state):
    base = node.wait_for_dashboard(NODE_START_S)
    log(t0, f"node up, dashboard on {base}/")

    driver = state["driver"] = start_browser(args.chromedriver, args.chromium)
    log(t0, f"browser up ({driver.capabilities.get('browserVersion', '?')})")
    driver.get(f"{base}/")

    # ---- first render
    wait(driver, "body[data-ready=1] (the first tree render)",
         lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    before = wait(driver, f"the row {PATH} running with a pid",
                  lambda d: (s := row_state(d, PATH)) and s["status"] == "running" and s["pid"] and s)
    old_pid, old_restarts = before["pid"], int(before["restarts"])
    log(t0, f"page ready: {PATH} is {old_pid}, restarts {old_restarts}")

    # ---- kill from the page: the row's kill button, then the confirm dialog
    click(driver, f"the kill button of {PATH}", f'{row_css(PATH)} button[data-action="kill"]')
    wait(driver, "the confirm dialog to open",
         lambda d: d.execute_script("return document.getElementById('confirm').open"))
    text = driver.find_element(By.ID, "confirm-text").text
    if PATH not in text or old_pid not in text:
        raise Failure(f"the confirm dialog does not name {PATH} ({old_pid}): {text!r}")
    click(driver, "#confirm-ok", "#confirm-ok")
    wait(driver, "the confirm dialog to close",
         lambda d: not d.execute_script("return document.getElementById('confirm').open"))
    log(t0, "kill confirmed")

    # The tree's restart count of a child is the count in its supervisor's window (10 s for
    # store), so the restart must show within that window of the kill (it does in well under 1 s).
    after = wait(driver, f"{PATH} to run again under a new pid with restarts {old_restarts + 1}",
                 lambda d: (s := row_state(d, PATH)) and s["status"] == "running" and s["pid"]
                 and s["pid"] != old_pid and s["restarts"] == str(old_restarts + 1) and s)
    new_pid = after["pid"]
    log(t0, f"{PATH} restarted: {old_pid} -> {new_pid}, restarts {after['restarts']}")

    mark = (f'#timeline .tl-mark[data-kind="child_terminated"][data-child="{CHILD}"]'
            f'[data-supervisor="{SUPERVISOR}"]')
    wait(driver, f"a timeline mark {mark}", lambda d: find(d, mark) is not None)
    log(t0, "timeline shows the child_terminated mark")

    status_says = lambda d: (t := d.find_element(By.ID, "status").text) and "kill" in t and old_pid in t and t
    status = wait(driver, f"#status to report the kill of {old_pid}", status_says)
    log(t0, f"#status: {status!r}")

    # ---- /metrics, over HTTP
    raw = []
    deadline = time.monotonic() + WAIT_S
    while (value := restarts_in_metrics(base, raw)) is None or value < 1:
        if time.monotonic() > deadline:
            raise Failure(f'grove_restarts_total{{child="{CHILD}",supervisor="{SUPERVISOR}"}} not 1 in '
                          f"/metrics within {WAIT_S} s; its lines: {raw}")
        time.sleep(0.2)  # polling interval of a deadline loop, not a synchronisation
    if value != 1:
        raise Failure(f'grove_restarts_total{{child="{CHILD}",supervisor="{SUPERVISOR}"}} is {value:g}, '
                      "expected 1 after one kill")
    line = f'grove_restarts_total{{child="{CHILD}",supervisor="{SUPERVISOR}"}} 1'
    if line not in raw:
        raise Failure(f"/metrics does not print {line!r} as such (labels in order); its lines: {raw}")
    log(t0, f"/metrics: {line}")

    # ---- screenshots, once the page has data in every panel
    wait(driver, "#conn live", lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "live")
    wait(driver, "process rows in #ps", lambda d: find(d, "#ps tr.ps-row") is not None)
    figure = '#figures [data-figure="processes"] .figure-value'
    wait(driver, "the node figures", lambda d: (e := find(d, figure)) is not None and e.text not in ("", "-"))
    # The restarted row's highlight (CSS .flash, 1.5 s) is over; drills' chaos child may start
    # another now and then, so this waits for a moment without one.
    wait(driver, "no tree row highlighted",
         lambda d: d.execute_script("return document.querySelectorAll('.tree-row.flash').length") == 0)
    os.makedirs(args.screenshots, exist_ok=True)
    for theme in ("dark", "light"):
        path = screenshot(driver, args.screenshots, theme)
        log(t0, f"saved {path}")

    # ---- the detail panel of the new counter process, opened from the process table
    ps_row = f'#ps tr.ps-row[data-pid="{new_pid}"]'
    wait(driver, f"{new_pid} in the process table", lambda d: find(d, ps_row) is not None)
    click(driver, f"the process row {new_pid}", f"{ps_row} td.c-pid")
    wait(driver, "#detail to open", lambda d: d.find_element(By.ID, "detail").is_displayed())
    title = wait(driver, f"#detail to show {new_pid} {CHILD}",
                 lambda d: (t := d.find_element(By.ID, "detail-title").text) == f"{new_pid} {CHILD}" and t)
    wait(driver, "the detail's process fields", lambda d: find(d, "#detail-body dl.kv") is not None)
    if find(driver, f"{ps_row}.selected") is None:
        raise Failure(f"the process row {new_pid} is not marked selected while its detail is open")
    log(t0, f"#detail shows {title!r}")

    errors = page_errors(browser_log(driver))
    if errors:
        raise Failure("the page logged errors:\n" + "\n".join(f"  {e.get('source')}: {e.get('message')}"
                                                               for e in errors))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grove", default=os.path.join(root, "build", "apps", "grove"), help="the grove binary")
    parser.add_argument("--config", default=os.path.join(root, "config", "demo.yaml"), help="the demo config")
    parser.add_argument("--screenshots", default=os.path.join(root, "build", "screenshots"),
                        help="where to save dashboard-dark.png and dashboard-light.png")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    for what, path in (("grove binary", args.grove), ("chromedriver", args.chromedriver),
                       ("chromium", args.chromium)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"dashboard_test: no {what} at {path}", file=sys.stderr)
            return 2
    if not os.path.isfile(args.config):
        print(f"dashboard_test: no config at {args.config}", file=sys.stderr)
        return 2

    # A SIGTERM to the test (a CTest timeout) still runs the finally below: browser quit, node stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("dashboard_test: SIGTERM"))

    t0 = time.monotonic()
    failure = None
    state = {"driver": None}
    node = Node(args.grove, args.config)
    try:
        run(args, t0, node, state)
    except Failure as error:
        failure = str(error)
    except WebDriverException as error:
        failure = f"WebDriver: {error.msg or error}"
    except Exception:
        failure = traceback.format_exc()
    finally:
        driver = state["driver"]
        if driver is not None:
            if failure is not None:
                try:
                    os.makedirs(args.screenshots, exist_ok=True)
                    path = os.path.join(args.screenshots, "dashboard-failure.png")
                    driver.save_screenshot(path)
                    print(f"dashboard_test: screenshot of the failure: {path}", file=sys.stderr)
                except Exception:
                    pass
                print("---- browser console log", file=sys.stderr)
                for entry in browser_log(driver):
                    print(f"  {entry.get('level')} {entry.get('source')}: {entry.get('message')}", file=sys.stderr)
            try:
                driver.quit()
            except Exception as error:
                print(f"dashboard_test: driver.quit: {error}", file=sys.stderr)
        stop_started = time.monotonic()
        status = node.stop(NODE_STOP_S)
        stop_s = time.monotonic() - stop_started
        if failure is None:
            if status is None:
                failure = f"the node did not exit within {NODE_STOP_S} s of SIGTERM (killed)"
            elif status != 0:
                failure = f"the node exited with status {status} after SIGTERM, expected 0"
            else:
                log(t0, f"node stopped by SIGTERM in {stop_s:.2f} s, exit status 0")
        if failure is not None:
            print(f"---- node stderr (last lines; exit status {status})", file=sys.stderr)
            for line in node.stderr_tail():
                print(f"  {line}", file=sys.stderr)

    if failure is not None:
        print(f"dashboard_test: FAILED after {time.monotonic() - t0:.1f} s: {failure}", file=sys.stderr)
        return 1
    print(f"dashboard_test: passed in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
