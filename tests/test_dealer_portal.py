"""The dealer portal (PROTOCOL.md 10) in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium against a running switch, over HTTPS.

The browser trusts exactly the switch certificate's key (``--ignore-certificate-errors-spki-list``
with its SPKI hash: Chromium keeps its own trust store, not var/pki/ca.crt), so the page is a
secure context and the session cookie's ``Secure`` flag is honoured as in production.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Where to keep a screenshot of the portal (for a report); by default the test's own temporary directory.
SCREENSHOT = os.environ.get("LEMS_PORTAL_SCREENSHOT")

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("the browser test needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                "/usr/bin/chromedriver); .ci/run installs them", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra: pip install '.[test]'")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def spki_hash(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(running, tmp_path):
    from lems.net.pki import Pki

    cert, _ = Pki(running.home / "var" / "pki").server_paths()
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=430,1400",
                f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, element_id):
    """The element once the page that has it is there (a click's navigation may still be under way)."""
    return WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.ID, element_id)))


def fill(driver, **fields):
    for name, value in fields.items():
        box = driver.find_element(By.ID, name)
        box.clear()
        box.send_keys(value)


def test_sign_in_submit_a_check_for_carol_clean_and_see_it_approved(running, browser, tmp_path):
    base = f"https://127.0.0.1:{running.service.dealer_port}"
    browser.get(f"{base}/fics/")
    assert "Sign in" in browser.title
    # A wrong key is refused on the page.
    fill(browser, dealer_id="D0000001", key="not-the-key")
    browser.find_element(By.ID, "signin").click()
    assert "Wrong dealer id or key" in wait(browser, "errors").text, browser.page_source
    fill(browser, dealer_id="D0000001", key="demo-dealer-key-2026")
    browser.find_element(By.ID, "signin").click()
    assert wait(browser, "check-form")
    session = next(c for c in browser.get_cookies() if c["name"] == "fics_session")
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"

    fill(browser, dealer_reference="COUNTER-1", last_name="CLEAN", first_name="CAROL", middle_name="C",
         dob="1990-09-09", id_type="DL", id_number="OR7654321", id_state="OR", make="GLOCK", model="19",
         caliber="9MM", serial="PORTAL0001")
    Select(browser.find_element(By.ID, "sex")).select_by_value("F")
    Select(browser.find_element(By.ID, "type")).select_by_value("handgun")
    browser.find_element(By.ID, "submit-check").click()

    status = wait(browser, "status").text
    txn = browser.find_element(By.ID, "transaction").text
    assert status == "APPROVED", browser.page_source
    assert re.fullmatch(r"F\d{4}-\d{6}", txn)
    approval = browser.find_element(By.ID, "approval").text
    stored = running.call(running.switch.fics.get, txn)
    assert stored.status == "approved" and stored.approval_number == approval
    assert stored.buyer["dob"] == "1990-09-09" and stored.buyer["last_name"] == "CLEAN"

    # The recent checks list shows it with its status.
    browser.get(f"{base}/fics/")
    recent = browser.find_element(By.ID, "recent").text
    assert txn in recent and "APPROVED" in recent
    # A bad form names the field and stores nothing.
    fill(browser, dealer_reference="COUNTER-2", last_name="CLEAN", first_name="CAROL", id_type="DL",
         id_number="OR7654321", id_state="O1", make="GLOCK", model="19", caliber="9MM",
         serial="PORTAL0002", dob="09/09/1990")  # a US-style date is taken too
    Select(browser.find_element(By.ID, "sex")).select_by_value("F")
    Select(browser.find_element(By.ID, "type")).select_by_value("handgun")
    browser.find_element(By.ID, "submit-check").click()
    assert "ID state: must be a two-letter state code" in wait(browser, "errors").text
    assert len(running.call(running.switch.fics.of_dealer, "D0000001")) == 1

    browser.get(f"{base}/fics/")
    browser.set_window_size(430, browser.execute_script("return document.body.scrollHeight") + 120)
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "portal.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
    # Nothing on the page comes from outside the switch.
    for url in browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"):
        assert url.startswith(base), url
    browser.find_element(By.ID, "signout").click()
    assert wait(browser, "signin") and "Sign in" in browser.title
