"""Contracts of ``hart serve``: the JSON endpoint, its limits, and the page in a real headless browser."""

import base64
import io
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from hart.serve import MAX_BODY_BYTES, BadRequest, Models, create_app  # noqa: E402

MODEL = "hart-shapes-64"
PROMPT = "a large red circle at the center on a white background"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    models = Models([MODEL], max_queue=2, max_images=4)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(models), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", models
    srv.should_exit = True
    thread.join(timeout=10)


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/api/generate", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_models_lists_every_model_and_its_one_step_variant(server):
    url, _ = server
    with urllib.request.urlopen(url + "/api/models", timeout=60) as r:
        rows = json.loads(r.read())
    ids = [row["id"] for row in rows]
    assert ids == [MODEL, f"{MODEL}#one-step"]
    assert rows[0]["size"] == 64 and rows[0]["defaults"]["diffusion_steps"] == 8
    assert rows[1]["defaults"]["diffusion_steps"] == 1


def test_generate_returns_the_pipelines_images(server):
    url, models = server
    status, out = post(url, json.dumps({"prompt": PROMPT, "n": 2, "seed": 3, "top_k": 50}).encode())
    assert status == 200, out
    assert out["width"] == out["height"] == 64 and len(out["images"]) == 2 and out["settings"]["top_k"] == 50
    direct = models.pipe(MODEL)([PROMPT] * 2, seed=3, top_k=50, progress=False).images
    for got, want in zip(out["images"], direct, strict=True):
        assert decode(got).tobytes() == want.tobytes()
    status, one = post(url, json.dumps({"prompt": PROMPT, "model": f"{MODEL}#one-step", "seed": 3}).encode())
    assert status == 200 and one["settings"]["diffusion_steps"] == 1


@pytest.mark.parametrize("body, message", [
    (b"not json", "JSON object"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"prompt": ""}).encode(), "non-empty"),
    (json.dumps({"prompt": "x" * 1001}).encode(), "at most 1000"),
    (json.dumps({"prompt": "x", "n": 5}).encode(), "from 1 to 4"),
    (json.dumps({"prompt": "x", "seed": -1}).encode(), "seed"),
    (json.dumps({"prompt": "x", "model": "sd-xl"}).encode(), "unknown model"),
    (json.dumps({"prompt": "x", "steps": 4}).encode(), "unknown keys"),
    (json.dumps({"prompt": "x", "top_p": 2.0}).encode(), "top_p"),
])
def test_bad_requests_are_400_with_a_message(server, body, message):
    status, out = post(server[0], body)
    assert status == 400 and message in out["error"]


def test_oversized_body_is_413(server):
    status, out = post(server[0], json.dumps({"prompt": "x" * MAX_BODY_BYTES}).encode())
    assert status == 413 and "bytes" in out["error"]


def test_full_queue_answers_busy():
    models = Models([MODEL], max_queue=1, max_images=1)
    models.pipe(MODEL)
    body = json.dumps({"prompt": PROMPT}).encode()
    models.run_lock.acquire()  # a generation in progress
    waiting = threading.Thread(target=models.generate, args=(body,))
    waiting.start()
    try:
        for _ in range(100):
            if models.waiting == 1:
                break
            time.sleep(0.02)
        with pytest.raises(BadRequest, match="busy") as e:
            models.generate(body)
        assert e.value.status == 503
    finally:
        models.run_lock.release()
        waiting.join(timeout=60)
    assert models.waiting == 0


def test_unknown_model_is_refused_at_start():
    with pytest.raises(FileNotFoundError, match="no model directory"):
        Models(["no-such-model"])


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium and chromium-driver are not installed")
def test_the_page_generates_in_a_headless_browser(server, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(server[0] + "/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_element(By.ID, "run").is_enabled())  # the model list has loaded
        assert [o.text for o in Select(driver.find_element(By.ID, "model")).options] == [
            f"{MODEL} (64 x 64)", f"{MODEL} (one-step residual head, DMD) (64 x 64)"]
        assert driver.find_element(By.ID, "diffusion_steps").get_attribute("value") == "8"
        driver.find_element(By.ID, "prompt").send_keys(PROMPT)
        n = driver.find_element(By.ID, "n")
        n.clear()
        n.send_keys("3")
        driver.find_element(By.ID, "run").click()
        wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#grid img.result")))
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"))
        sizes = driver.execute_script("return [...document.querySelectorAll('#grid img')]"
                                      ".map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[64, 64]] * 3
        assert "3 image(s), 64 x 64" in driver.find_element(By.ID, "status").text
        driver.find_element(By.ID, "prompt").clear()
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: "non-empty" in d.find_element(By.ID, "status").text)
        driver.save_screenshot(str(tmp_path / "serve.png"))
    finally:
        driver.quit()
