"""``grade listen serve``: the listening test as a small web app for raters, from ``OUT/listening/``.

Routes (``<token>`` is a rater's secret, ``<url id>`` :meth:`Plan.url_id <grader.listening.model.Plan.url_id>`):

- ``GET /t/<token>/``: the rater's next unsubmitted trial ("Trial 3 of 12"); a thank-you page when all are
  submitted, a closed page after ``Plan.closes``.
- ``GET /t/<token>/a/<url id>.wav``: a stimulus of the rater's trials, ranges (``Range: bytes=...``) honoured; every
  byte sent is recorded, which is how the store knows a clip was played in full (:mod:`grader.listening.store`).
- ``POST /t/<token>/trial/<trial id>``: a trial's scores, every rated clip's at once, each under its url id: a form
  (``application/x-www-form-urlencoded``, ``<url id>=<score>``; answered by a redirect to the rater's page) or JSON
  (``{"scores": {"<url id>": <score>, ...}}``; answered ``{"stored": n, "next": "/t/<token>/"}``). A refusal is a
  page, or ``{"error": "..."}`` for JSON: 409 already submitted, 403 closed, 400 anything else
  (:class:`~grader.listening.store.RatingRefused`).
- ``GET /static/<name>``: the pages' CSS and JS (``grader/listening/static/``); nothing is fetched from elsewhere.

An unknown token, url id or path is a bare 404. Pages name clips "Reference" and A, B, C... in the rater's own order,
never a submission, student or system. Every answer carries ``Content-Security-Policy: default-src 'self'``,
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``; request bodies over :data:`MAX_BODY_BYTES` are
refused unread. The pages themselves (:func:`trial_pages`, :func:`environment`) are shared with the static export.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import jinja2
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from grader.listening.model import SCALES, Kind, Plan, Rater, stimulus_path
from grader.listening.store import (AlreadySubmitted, OutOfRange, RatingRefused, RatingStore, TestClosed,
                                    UnknownTrial, closes_at, database_path)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SERVED_STATIC = {"listen.css": "text/css; charset=utf-8", "listen.js": "text/javascript; charset=utf-8",
                 "icon.svg": "image/svg+xml"}
"""The files of :data:`STATIC` the server sends, with their types (``offline.js`` is the export's alone)."""
MAX_BODY_BYTES = 64_000
"""A trial's scores take some 30 bytes a clip; a larger body is refused unread (413)."""
MAX_FORM_FIELDS = 100
"""Fields a submitted form may hold (one per rated clip)."""
REQUEST_SECONDS = 30.0
"""How long a connection may stay silent before it is dropped, so that slow clients cannot hold every thread."""
AUDIO_BLOCK_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
MUSHRA_BANDS = ("Bad", "Poor", "Fair", "Good", "Excellent")
"""BS.1534's labels of the 0-100 scale, one per fifth, from the bottom."""
MOS_LABELS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
"""P.800's absolute category rating scale, best first as the page lists it."""
REFERENCE_KEY = "r"
"""The key that plays a MUSHRA trial's Reference; its rated clips play on their letters (but R)."""
MOS_KEY = "p"
"""The key that plays a MOS trial's clip; 1 to 5 pick its score."""

_TOKEN = r"(?P<token>[A-Za-z0-9_-]{1,128})"
_PAGE = re.compile(rf"/t/{_TOKEN}/?")
_AUDIO = re.compile(rf"/t/{_TOKEN}/a/(?P<name>[0-9a-f]{{20}})\.wav")
_TRIAL = re.compile(rf"/t/{_TOKEN}/trial/(?P<trial>[A-Za-z0-9_.-]{{1,128}})")
_STATIC = re.compile(r"/static/(?P<name>[a-z0-9.-]{1,64})")
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
_SCORE = re.compile(r"-?\d{1,6}")

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pages (shared with the static export)

@dataclass(frozen=True)
class Clip:
    """A clip as a rater's page shows it: ``title`` ("the Reference", "clip A", "the clip"), ``key`` the keyboard
    key that plays it (None: no key), ``name`` its url id (the form field of its score), ``src`` where its audio is."""

    title: str
    key: str | None
    name: str
    src: str


@dataclass(frozen=True)
class TrialPage:
    """One trial as a rater sees it: its ``number`` (from 1) of ``total``, the open ``reference`` (MUSHRA) and the
    rated ``clips`` in the rater's order, scored from ``low`` to ``high``."""

    trial: str
    kind: Kind
    number: int
    total: int
    reference: Clip | None
    clips: list[Clip]
    low: int
    high: int


def trial_pages(plan: Plan, rater: Rater, src: Callable[[str], str]) -> list[TrialPage]:
    """The pages of ``rater``'s trials in their order; ``src(url id)`` is where a clip's audio is."""
    pages = []
    for number, assignment in enumerate(rater.assignments, start=1):
        trial = plan.trials[assignment.trial]

        def clip(title: str, key: str | None, stimulus: str) -> Clip:
            name = plan.url_id(rater.token, stimulus)
            return Clip(title=title, key=key, name=name, src=src(name))

        if trial.kind == "mushra":
            reference = clip("the Reference", REFERENCE_KEY, trial.reference) if trial.reference else None
            clips = [clip(f"clip {letter}", letter.lower() if len(letter) == 1 and letter.lower() != REFERENCE_KEY
                          else None, key) for letter, key in zip(letters(len(assignment.order)), assignment.order)]
        else:
            reference, clips = None, [clip("the clip", MOS_KEY, assignment.order[0])]
        low, high = SCALES[trial.kind]
        pages.append(TrialPage(trial=trial.id, kind=trial.kind, number=number, total=len(rater.assignments),
                               reference=reference, clips=clips, low=low, high=high))
    return pages


def letters(count: int) -> list[str]:
    """The labels of ``count`` rated clips: A, B, ..., Z, AA, AB, ..."""
    labels = []
    for index in range(count):
        label, index = "", index + 1
        while index:
            index, digit = divmod(index - 1, 26)
            label = chr(ord("A") + digit) + label
        labels.append(label)
    return labels


def rater_stimuli(plan: Plan, rater: Rater) -> set[str]:
    """Every stimulus key ``rater`` may hear: their trials' rated clips and open references."""
    keys = set()
    for assignment in rater.assignments:
        keys.update(assignment.order)
        reference = plan.trials[assignment.trial].reference
        if reference is not None:
            keys.add(reference)
    return keys


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment: autoescaped HTML, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(mushra_bands=MUSHRA_BANDS, mos_labels=MOS_LABELS)
    return env


# --------------------------------------------------------------------------- the server

class ScoresBody(BaseModel):
    """A JSON submission: each rated clip's score under its url id."""

    model_config = ConfigDict(extra="forbid")
    scores: dict[str, StrictInt] = Field(max_length=MAX_FORM_FIELDS)


class ListeningServer(ThreadingHTTPServer):
    """The app over ``out_dir``'s plan and ratings, listening on ``host``:``port`` (0: a free port)."""

    daemon_threads = True

    def __init__(self, out_dir: Path, host: str = "127.0.0.1", port: int = 8000):
        self.out_dir = Path(out_dir)
        self.plan = Plan.read(self.out_dir)
        closes_at(self.plan)  # a time without an offset is refused now, not at the first rating
        self.audio = {rater.token: {self.plan.url_id(rater.token, key): key for key in rater_stimuli(self.plan, rater)}
                      for rater in self.plan.raters}
        """Each rater's stimulus keys by url id."""
        missing = sorted({key for keys in self.audio.values() for key in keys.values()
                          if not stimulus_path(self.out_dir, key).is_file()})
        if missing:
            raise FileNotFoundError(f"{stimulus_path(self.out_dir, missing[0])}: missing ({len(missing)} of the plan's "
                                    f"stimuli in all); make the test again with `grade listen make {self.out_dir}`")
        self.static = {name: ((STATIC / name).read_bytes(), kind) for name, kind in SERVED_STATIC.items()}
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.store = RatingStore(database_path(self.out_dir))
        try:
            super().__init__((host, port), _Handler)
        except OSError:
            self.store.close()
            raise

    @property
    def url(self) -> str:
        """The base URL, ``http://host:port/``; a rater's link is this and ``t/<token>/``."""
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.store.close()


def serve(out_dir: Path, host: str = "127.0.0.1", port: int = 8000, *,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve ``out_dir``'s listening test on ``host``:``port`` (bound there only) until interrupted (Ctrl-C);
    ``ready(base url)`` is called once it listens. ``FileNotFoundError`` when ``out_dir`` has no plan."""
    with ListeningServer(out_dir, host, port) as server:
        if ready is not None:
            ready(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


class _Handler(BaseHTTPRequestHandler):
    server: ListeningServer
    timeout = REQUEST_SECONDS
    server_version = "listening-test"
    sys_version = ""

    # ------------------------------------------------------------------- routes

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if match := _PAGE.fullmatch(path):
            rater = self.server.plan.rater(match["token"])
            return self._rater_page(rater) if rater else self._not_found()
        if match := _AUDIO.fullmatch(path):
            return self._audio(match["token"], match["name"])
        if (match := _STATIC.fullmatch(path)) and match["name"] in self.server.static:
            body, kind = self.server.static[match["name"]]
            return self._send(200, body, kind)
        self._not_found()

    def do_POST(self) -> None:
        match = _TRIAL.fullmatch(urlsplit(self.path).path)
        rater = self.server.plan.rater(match["token"]) if match else None
        if rater is None:
            return self._not_found()
        body = self._body()
        if body is not None:
            self._submit(rater, match["trial"], body)

    # ------------------------------------------------------------------- pages

    def _rater_page(self, rater: Rater) -> None:
        plan, token = self.server.plan, rater.token
        closes = closes_at(plan)
        if closes is not None and datetime.now(timezone.utc) > closes:
            return self._html(200, "closed.html.j2", closes=closes.isoformat(timespec="minutes"))
        submitted = self.server.store.submitted_trials(token)
        pages = trial_pages(plan, rater, lambda name: f"/t/{token}/a/{name}.wav")
        waiting = [page for page in pages if page.trial not in submitted]
        if not waiting:
            return self._html(200, "done.html.j2", total=len(pages))
        self._html(200, "trial.html.j2", page=waiting[0], action=f"/t/{token}/trial/{waiting[0].trial}")

    def _audio(self, token: str, name: str) -> None:
        rater = self.server.plan.rater(token)
        key = self.server.audio[rater.token].get(name) if rater else None
        if key is None:
            return self._not_found()
        with open(stimulus_path(self.server.out_dir, key), "rb") as file:
            size = file.seek(0, 2)
            asked = self.headers.get("Range")
            span = byte_range(asked, size) if asked else None
            if span == ():
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
            start, end = span or (0, size)
            headers = {"Accept-Ranges": "bytes"}
            if span:
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            self._head(206 if span else 200, "audio/wav", end - start, headers)
            file.seek(start)
            sent = 0
            try:
                while sent < end - start and (block := file.read(min(AUDIO_BLOCK_BYTES, end - start - sent))):
                    self.wfile.write(block)
                    sent += len(block)
            except ConnectionError:  # the browser has enough, or went away: what was sent is still recorded
                self.close_connection = True
            finally:
                self.server.store.record_served(rater.token, key, start, start + sent, size)

    def _submit(self, rater: Rater, trial: str, body: bytes) -> None:
        as_json = self.headers.get_content_type() == "application/json"
        try:
            by_name = _json_scores(body) if as_json else _form_scores(body)
            keys = self.server.audio[rater.token]
            unknown = [name for name in by_name if name not in keys]
            if unknown:
                raise UnknownTrial(f"{len(unknown)} score(s) for clips you were not given")
            stored = self.server.store.submit(self.server.plan, rater.token, trial,
                                              {keys[name]: score for name, score in by_name.items()})
        except RatingRefused as refusal:
            status = 409 if isinstance(refusal, AlreadySubmitted) else 403 if isinstance(refusal, TestClosed) else 400
            if as_json:
                return self._json(status, {"error": str(refusal)})
            return self._html(status, "refused.html.j2", message=str(refusal), back=f"/t/{rater.token}/")
        if as_json:
            return self._json(200, {"stored": len(stored), "next": f"/t/{rater.token}/"})
        self._send(303, b"", "text/plain", {"Location": f"/t/{rater.token}/"})

    # ------------------------------------------------------------------- answers

    def _body(self) -> bytes | None:
        """The request's body, at most :data:`MAX_BODY_BYTES`; None once a refusal is sent (no length, too long)."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._send(411, b"Content-Length required\n", "text/plain; charset=utf-8")
            return None
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, f"At most {MAX_BODY_BYTES} bytes\n".encode(), "text/plain; charset=utf-8")
            return None
        return self.rfile.read(int(length))

    def _html(self, status: int, template: str, **context) -> None:
        page = environment().get_template(template).render(static="/static/", **context)
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _json(self, status: int, value: dict) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _not_found(self) -> None:
        self._send(404, b"Not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self._head(status, kind, len(body), headers or {})
        self.wfile.write(body)

    def _head(self, status: int, kind: str, length: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, "Content-Type": kind, "Content-Length": str(length),
                            **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not logged: their paths hold raters' tokens."""

    def log_message(self, format: str, *args) -> None:
        log.info("%s: " + format, self.client_address[0], *args)


def byte_range(header: str, size: int) -> tuple[int, int] | tuple[()] | None:
    """The half-open span ``(start, end)`` of a ``size``-byte file that a ``Range`` header asks for; None for a
    header that is not one valid range of bytes (the whole file is sent, as RFC 9110 allows); ``()`` when the range
    lies past the file's end (416)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last N bytes
        suffix = int(match[2])
        return (max(size - suffix, 0), size) if suffix else ()
    start = int(match[1])
    end = int(match[2]) + 1 if match[2] else size
    if start >= size:
        return ()
    return (start, min(end, size)) if start < end else None


def _json_scores(body: bytes) -> dict[str, int]:
    try:
        return ScoresBody.model_validate_json(body).scores
    except ValidationError as error:
        raise RatingRefused(f"scores are sent as {{\"scores\": {{clip: whole number}}}} "
                            f"({error.errors()[0]['msg']})") from None


def _form_scores(body: bytes) -> dict[str, int]:
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise RatingRefused("the form could not be read; reload the page and submit again") from None
    scores = {}
    for name, values in fields.items():
        if len(values) != 1 or not _SCORE.fullmatch(values[0]):
            raise OutOfRange("every clip takes one score, a whole number")
        scores[name] = int(values[0])
    return scores
