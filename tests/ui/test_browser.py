"""The web UI as a person uses it, in a real browser: log in, see every DAG, open the
train_model trigger form, trigger a run that waits for a person, approve it on the Required
Actions page, see the run succeed. Screenshots go to tests/artifacts/ui/.

Verified how: Debian's chromium driven by Selenium through /usr/bin/chromedriver (no browser
download), against a real Airflow (api-server, scheduler, dag-processor, triggerer on PostgreSQL) on
loopback with this project's DAGs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DAGS = ("autopilot_batch_predict", "customer_segmentation", "deploy_model", "keyspaces_ingest", "monitor_model",
        "rollback_model", "s3_ingest", "train_model")

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
                "`make test` installs them with apt when it runs as root", allow_module_level=True)


@pytest.fixture(scope="module")
def browser(airflow):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def button(driver, text: str, last: bool = False):
    from selenium.webdriver.common.by import By

    matches = [b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == text]
    assert matches, f"no button {text!r} on {driver.current_url}"
    return matches[-1] if last else matches[0]


def body_text(driver) -> str:
    """The page's text; "" while the page swaps its body (a re-render right after a click)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return driver.find_element("tag name", "body").text
    except StaleElementReferenceException:
        return ""


def wait_text(driver, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in body_text(driver):
        assert time.monotonic() < deadline, f"{text!r} never appeared on {driver.current_url}"
        time.sleep(1)


def test_login_shows_every_dag_without_import_errors(airflow, browser):
    from selenium.webdriver.common.by import By

    browser.get(airflow.url)
    browser.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(airflow.password())
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_text(browser, "Dags")
    browser.get(f"{airflow.url}/dags?limit=50")
    for dag_id in DAGS:
        wait_text(browser, dag_id)
    wait_text(browser, f"{len(DAGS)} Dags")
    shot(browser, "01-dag-list")
    assert "Import Error" not in browser.find_element(By.TAG_NAME, "body").text


def test_the_trigger_form_explains_every_param(airflow, browser):
    browser.get(f"{airflow.url}/dags/train_model")
    wait_text(browser, "train_model")
    button(browser, "Trigger").click()
    wait_text(browser, "Run Parameters")
    for description in ("Raw partition to train on", "Tuning trials", "Quality gate",
                        "a person approves on the Required Actions page"):
        wait_text(browser, description, timeout=20)
    shot(browser, "02-trigger-form")


def test_a_run_waits_for_a_person_and_succeeds_once_approved_in_the_ui(airflow, browser):
    from selenium.webdriver.common.by import By

    browser.find_element(By.NAME, "element_n_trials").send_keys("2")
    browser.find_elements(By.CSS_SELECTOR, "input[role=combobox]")[-1].click()
    next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text.strip() == "manual").click()
    shot(browser, "03-trigger-form-filled")
    button(browser, "Trigger", last=True).click()
    wait_text(browser, "Dag run has been successfully triggered")
    run_id = airflow.get("/dags/train_model/dagRuns", params={"order_by": "-run_after"})["dag_runs"][0]["dag_run_id"]
    assert airflow.get(f"/dags/train_model/dagRuns/{run_id}")["conf"]["approval_mode"] == "manual"

    airflow.wait_until_parked("train_model", run_id, "approve_model", timeout=900)
    browser.get(f"{airflow.url}/dags/train_model/runs/{run_id}/tasks/approve_model/required_actions")
    wait_text(browser, "Approve churn model")
    wait_text(browser, "holdout_roc_auc")
    shot(browser, "04-required-action")
    button(browser, "Approve").click()
    airflow.wait_for(lambda: airflow.run("train_model", run_id)["state"] in ("success", "failed"), 300, "run end")
    browser.get(f"{airflow.url}/dags/train_model/runs/{run_id}")
    wait_text(browser, "train_model")
    time.sleep(2)
    shot(browser, "05-run-succeeded")
    assert airflow.run("train_model", run_id)["state"] == "success"
    decision = airflow.get(f"/dags/train_model/dagRuns/{run_id}/taskInstances/approve_model/xcomEntries/decision")
    assert decision["value"] == {**decision["value"], "approved": True, "approver": "admin"}
