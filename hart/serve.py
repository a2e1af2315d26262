"""``hart serve``: a local web app and JSON endpoint for the generators (FastAPI + uvicorn).

- ``GET /``: a page with a prompt box, model choice (every model served, plus its one-step-head
  variant when it has one), sampling settings, seed and image count; it shows the images and the
  time they took.
- ``GET /api/models``: the choices, with image size and sampling defaults.
- ``POST /api/generate``: JSON ``{"prompt": ..., "model": ..., "n": 4, "seed": 0, "cfg_scale": ...,
  "top_k": ..., "top_p": ..., "temperature": ..., "diffusion_steps": ...}`` (all but ``prompt``
  optional) -> ``{"images": [data URLs of PNGs], "seconds": ..., "seed": ..., "width", "height",
  "model", "settings"}``. Bad input is a 400 with ``{"error": message}``; a body over
  ``MAX_BODY_BYTES`` a 413; more than ``max_queue`` requests waiting a 503.

One generation runs at a time (the models share the machine's cores); the others wait in a bounded
queue. Models load on first use and stay loaded.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

MAX_BODY_BYTES = 8192
MAX_PROMPT_CHARS = 1000
SETTING_KEYS = ("cfg_scale", "top_k", "top_p", "temperature", "diffusion_steps")
REQUEST_KEYS = {"prompt", "model", "n", "seed", *SETTING_KEYS}


class BadRequest(ValueError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Choice:
    """One entry of the model menu: a model, and the residual steps it samples with (None: its default)."""

    id: str
    model: str
    diffusion_steps: int | None
    label: str


class Models:
    """The served models: menu entries, lazy loading, one generation at a time, a bounded queue."""

    def __init__(self, names: list[str], max_queue: int = 4, max_images: int = 16) -> None:
        from hart.pipeline import resolve_model_dir

        if not names:
            raise ValueError("no models to serve: pass --model NAME_OR_DIR (shipped: see hart info)")
        for name in names:
            resolve_model_dir(name)  # a clear error now, not at the first request
        if max_queue < 1 or max_images < 1:
            raise ValueError("max_queue and max_images must be >= 1")
        self.names, self.max_queue, self.max_images = list(names), max_queue, max_images
        self.pipes: dict = {}
        self.run_lock, self.count_lock = threading.Lock(), threading.Lock()
        self.waiting = 0

    def pipe(self, name: str):
        from hart.pipeline import HARTPipeline

        if name not in self.pipes:
            self.pipes[name] = HARTPipeline.from_pretrained(name)
        return self.pipes[name]

    def choices(self) -> list[Choice]:
        out = []
        for name in self.names:
            label = Path(name).name if Path(name).is_dir() else name
            out.append(Choice(name, name, None, label))
            if (resolve(name) / "diffusion_head_1step").is_dir():
                out.append(Choice(f"{name}#one-step", name, 1, f"{label} (one-step residual head, DMD)"))
        return out

    def describe(self) -> list[dict]:
        rows = []
        for c in self.choices():
            pipe = self.pipe(c.model)
            settings = dataclasses.asdict(pipe.settings)
            if c.diffusion_steps is not None:
                settings["diffusion_steps"] = c.diffusion_steps
            rows.append({"id": c.id, "label": c.label, "size": pipe.tokenizer.config.image_size,
                         "defaults": {k: settings[k] for k in SETTING_KEYS}})
        return rows

    def parse(self, body: bytes) -> tuple[Choice, str, int, int, dict]:
        """(choice, prompt, n, seed, settings) of a request body; ``BadRequest`` says what is wrong."""
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(f"the body must be a JSON object: {e}") from None
        if not isinstance(req, dict):
            raise BadRequest("the body must be a JSON object such as {\"prompt\": \"red apple\"}")
        unknown = sorted(set(req) - REQUEST_KEYS)
        if unknown:
            raise BadRequest(f"unknown keys {unknown}; known: {sorted(REQUEST_KEYS)}")
        prompt = req.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt must be a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadRequest(f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
        choices = {c.id: c for c in self.choices()}
        choice_id = req.get("model", self.names[0])
        if choice_id not in choices:
            raise BadRequest(f"unknown model {choice_id!r}; served: {sorted(choices)}")
        n, seed = req.get("n", 1), req.get("seed", 0)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= self.max_images:
            raise BadRequest(f"n must be an integer from 1 to {self.max_images}, got {n!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise BadRequest(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
        settings = {k: req[k] for k in SETTING_KEYS if req.get(k) is not None}
        choice = choices[choice_id]
        if choice.diffusion_steps is not None:
            settings.setdefault("diffusion_steps", choice.diffusion_steps)
        return choice, prompt, n, seed, settings

    def generate(self, body: bytes) -> dict:
        """Answer one generation request (waits its turn; 503 when the queue is full)."""
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", 413)
        choice, prompt, n, seed, settings = self.parse(body)
        with self.count_lock:
            if self.waiting >= self.max_queue:
                raise BadRequest(f"busy: {self.waiting} requests are queued; try again shortly", 503)
            self.waiting += 1
        try:
            with self.run_lock:
                pipe = self.pipe(choice.model)
                start = time.perf_counter()
                try:
                    out = pipe([prompt] * n, seed=seed, batch_size=n, progress=False, **settings)
                except (ValueError, TypeError) as e:
                    raise BadRequest(str(e)) from None
                seconds = time.perf_counter() - start
                used = dataclasses.asdict(dataclasses.replace(pipe.settings, **settings))
        finally:
            with self.count_lock:
                self.waiting -= 1
        size = out.images[0].size
        return {"images": [png_data_url(im) for im in out.images], "seconds": round(seconds, 3), "seed": seed,
                "width": size[0], "height": size[1], "model": choice.id,
                "settings": {k: used[k] for k in SETTING_KEYS}}


def resolve(name: str) -> Path:
    from hart.pipeline import resolve_model_dir

    return resolve_model_dir(name)


def png_data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(models: Models):
    """The FastAPI application over ``models``."""
    app = FastAPI(title="hart", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (Path(__file__).parent / "serve_page.html").read_text(encoding="utf-8")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/models")
    async def models_list() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(models.describe))

    @app.post("/api/generate")
    async def generate(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            return JSONResponse(await run_in_threadpool(models.generate, body))
        except BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)

    return app


def serve(names: list[str], host: str = "127.0.0.1", port: int = 7860, max_queue: int = 4,
          max_images: int = 16) -> None:
    """Load the first model, then serve until Ctrl-C."""
    import uvicorn

    models = Models(names, max_queue, max_images)
    models.pipe(names[0])
    print(f"hart serve: {', '.join(c.label for c in models.choices())} on http://{host}:{port}/ (Ctrl-C stops)",
          flush=True)
    uvicorn.run(create_app(models), host=host, port=port, log_level="warning")
