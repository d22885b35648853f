#!/usr/bin/python3
"""Drives the console in Debian's headless Chromium through WebDriver (Debian's
python3-selenium and chromium-driver), as an admin would click through it. Called by
tests/console_browser.rs, which starts the daemon, builds the seeds' worked example and checks
what this script read off the pages against `teamsgw license report --json`.

usage: console.py BASE_URL TOKEN SCREENSHOT_DIR
Prints one JSON object with what the pages showed; exits non-zero on any failed step.
"""
import json
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

base, token, shots = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
profile = tempfile.mkdtemp(prefix="teamsgw-chromium-")
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             "--window-size=1280,900", f"--user-data-dir={profile}"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)
seen = {}


def text(element_id):
    return driver.find_element(By.ID, element_id).text.strip()


def figures():
    return {
        "acquired": text("acquired"),
        "currently_licensed": text("currently-licensed"),
        "monitored_users": text("monitored-users"),
        "available": text("available"),
        "calculation_time": text("calculation-time"),
        "factors": {f: text(f"cell-{f}") for f in ("direct_routing", "lcm", "ui", "service_numbers")},
    }


def screenshot(name, width=1280):
    """A full-page screenshot: the window grown to the page's height first."""
    driver.set_window_size(width, 900)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    driver.set_window_size(width, int(size["height"]) + 120)
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))
    return size


def check(condition, what):
    """`condition` (a function) holds within 10 s: a click's page load may still be running."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            print(f"FAILED: {what}\nurl: {driver.current_url}\n{driver.page_source}", file=sys.stderr)
            driver.quit()
            sys.exit(1)
        time.sleep(0.05)


try:
    driver.get(base + "/ui/")
    check(lambda: driver.current_url.endswith("/ui/sign-in"), "no session goes to sign-in")
    screenshot("sign-in")
    driver.find_element(By.NAME, "token").send_keys("wrong-token")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    check(lambda: "not the admin token" in driver.page_source, "a wrong token is refused with a message")
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    check(lambda: driver.current_url.endswith("/ui/"), "signed in, on the overview")
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-enterprise='Contoso']")
    seen["overview_licensed"] = row.find_element(By.CSS_SELECTOR, "td.licensed").text
    screenshot("enterprises")

    row.find_element(By.LINK_TEXT, "Contoso").click()
    check(lambda: driver.find_elements(By.ID, "license-facts"), "the license page")
    seen["before"] = figures()
    screenshot("license")
    # A phone's width: the page fits, wide tables scroll in their own box.
    seen["phone_width"] = screenshot("license-phone", width=390)["width"]
    driver.set_window_size(1280, 900)

    Select(driver.find_element(By.NAME, "lcm")).select_by_value("off")
    driver.find_element(By.CSS_SELECTOR, "#apply-factors button").click()
    check(lambda: "License factors applied" in driver.page_source, "Apply license factors confirms")
    seen["after_apply"] = figures()

    driver.find_element(By.CSS_SELECTOR, "#refresh button").click()
    check(lambda: "Licenses refreshed" in driver.page_source, "Refresh licenses confirms")
    seen["after_refresh"] = figures()

    today = seen["after_refresh"]["calculation_time"][:10]
    start = driver.find_element(By.NAME, "from")
    end = driver.find_element(By.NAME, "to")
    # Date inputs take the date in the browser's locale order; set them as the form sends them.
    driver.execute_script("arguments[0].value = arguments[2]; arguments[1].value = arguments[2];",
                          start, end, today)
    driver.find_element(By.CSS_SELECTOR, "#audit-range button").click()
    check(lambda: f"from={today}" in driver.current_url, "Get History opens the range")
    seen["audit_days"] = [r.get_attribute("data-day")
                          for r in driver.find_elements(By.CSS_SELECTOR, "#audit tr[data-day]")]
    seen["audit_chart"] = len(driver.find_elements(By.CSS_SELECTOR, "#audit-chart polyline"))
    screenshot("license-audit")

    driver.find_element(By.LINK_TEXT, "Operations").click()
    check(lambda: driver.find_elements(By.ID, "registrations"), "the operations page")
    screenshot("operations")

    # The Operator Connect enterprise (seed 002): its service on the overview, its page in
    # seed 002's wording with its OC numbers.
    driver.get(base + "/ui/")
    check(lambda: driver.find_elements(By.ID, "enterprises"), "the overview again")
    seen["services"] = {
        r.get_attribute("data-enterprise"): r.find_element(By.CSS_SELECTOR, "td.service").text
        for r in driver.find_elements(By.CSS_SELECTOR, "tr[data-enterprise]")
    }
    driver.find_element(By.LINK_TEXT, "Fabrikam").click()
    check(lambda: driver.find_elements(By.ID, "license-facts"), "the OC license page")
    seen["oc"] = {
        "currently_licensed": text("currently-licensed"),
        "monitored_users": text("monitored-users"),
        "factors": {f: text(f"cell-{f}") for f in ("operator_connect", "lcm", "ui", "service_numbers")},
        "labels": [r.find_elements(By.TAG_NAME, "td")[1].text
                   for r in driver.find_elements(By.CSS_SELECTOR, "#factors tbody tr")],
        "numbers": [r.get_attribute("data-number")
                    for r in driver.find_elements(By.CSS_SELECTOR, "#oc-numbers tr[data-number]")],
        "billed": {r.get_attribute("data-upn"): r.find_element(By.CSS_SELECTOR, "td.billed").text
                   for r in driver.find_elements(By.CSS_SELECTOR, "#explain-users tr[data-upn]")},
    }
    screenshot("license-operator-connect")

    def oc_cell():
        return text("cell-operator_connect")

    # Its inventory's operations: add a number for cat, release ben's, dry-run an import.
    form = driver.find_element(By.ID, "oc-add")
    form.find_element(By.NAME, "number").send_keys("+14255550102")
    form.find_element(By.NAME, "user").send_keys("cat@fabrikam.example")
    form.find_element(By.CSS_SELECTOR, "button").click()
    check(lambda: "Operator Connect number added" in driver.page_source, "Add number confirms")
    seen["oc_after_add"] = oc_cell()
    row = driver.find_element(By.CSS_SELECTOR, "#oc-numbers tr[data-number='+14255550101']")
    [b for b in row.find_elements(By.CSS_SELECTOR, "button") if b.text == "Release"][0].click()
    check(lambda: "Operator Connect number released" in driver.page_source, "Release confirms")
    seen["oc_final"] = {
        "operator_connect": oc_cell(),
        "numbers": [r.get_attribute("data-number")
                    for r in driver.find_elements(By.CSS_SELECTOR, "#oc-numbers tr[data-number]")],
    }
    driver.find_element(By.NAME, "rows").send_keys(
        "TelephoneNumber,NumberType,PstnAssignmentStatus\n"
        "+14255550300,OperatorConnect,Unassigned\n"
        "+14255550301,DirectRouting,Unassigned\n")
    driver.find_element(By.CSS_SELECTOR, "#oc-import button").click()
    check(lambda: driver.find_elements(By.ID, "oc-refused"), "the import's page")
    seen["oc_import"] = {
        "summary": driver.find_element(By.CSS_SELECTOR, ".notice").text,
        "refused_lines": [r.find_elements(By.TAG_NAME, "td")[0].text
                          for r in driver.find_elements(By.CSS_SELECTOR, "#oc-refused tbody tr")],
    }

    driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
    check(lambda: driver.current_url.endswith("/ui/sign-in"), "signed out, on sign-in")
    driver.get(base + "/ui/enterprises/Contoso/license")
    seen["after_sign_out"] = driver.current_url
finally:
    driver.quit()

print(json.dumps(seen))
