"""The HTML report in a real browser: Debian's Chromium, headless, driven by playwright.

Pages are opened from file:// URLs, as an instructor opens a report folder: no
console errors, every audio element loads and has a duration, every picture
decodes, the class table sorts, and nothing is wider than a phone's 375 px screen.
What a student may see is checked on the rendered HTML.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grader.report import render_all, student_audience
from grader.report.html import render_submission
from grader.results import SubmissionResult
from tests import result_fixtures

PHONE = {"width": 375, "height": 812}

WAIT_FOR_MEDIA = """async () => {
  const audios = Array.from(document.querySelectorAll("audio"));
  await Promise.all(audios.map(a => a.readyState >= 1 ? null : new Promise(done => {
    a.addEventListener("loadedmetadata", done, {once: true});
    a.addEventListener("error", done, {once: true});
    a.load();
  })));
  const images = Array.from(document.images);
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener("load", done, {once: true});
    i.addEventListener("error", done, {once: true});
  })));
  return {
    audio: audios.map(a => ({src: a.currentSrc.slice(0, 80), duration: a.duration, error: a.error && a.error.code})),
    images: images.map(i => ({src: i.currentSrc.slice(0, 80), width: i.naturalWidth})),
  };
}"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[SubmissionResult]]:
    out = tmp_path_factory.mktemp("report")
    results = result_fixtures.class_of_five(out)
    render_all(out, result_fixtures.rubric())
    return out, results


def open_page(browser, path: Path, viewport: dict | None = None):
    """The page at ``path`` opened from its file:// URL, and the list its console errors are collected in."""
    page = browser.new_page(viewport=viewport or {"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
    page.goto(path.as_uri())
    return page, errors


def test_submission_page_plays_every_clip_and_shows_every_picture(report, browser):
    out, results = report
    page, errors = open_page(browser, out / "pages" / "hoppergrace_1003.html")
    media = page.evaluate(WAIT_FOR_MEDIA)
    # 3 held-out clips x 4 sources, less the student's missing output of the last clip; 2 playable samples.
    assert len(media["audio"]) == 3 * 4 - 1 + 2
    for audio in media["audio"]:
        assert audio["error"] is None, audio
        assert 0 < audio["duration"] < 60, audio
    assert len(media["images"]) == len(media["audio"])
    assert all(image["width"] == 384 for image in media["images"]), media["images"]
    assert errors == []
    text = page.inner_text("body")
    assert "not produced" in text  # the missing output is said, not a broken player
    assert "not a readable audio file" in text  # the garbage sample: the reason instead of a player
    assert result_fixtures.HOSTILE_TEXT in text  # printed as text, never run as markup
    assert page.title().startswith("hoppergrace")  # the name in the LMS file name, not the declared one
    assert "Canvas user id 1003" in text and "late" in page.inner_text("header p.muted")
    assert page.inner_text("#declared").startswith("Declared in submission.toml: Grace Hopper (id gh3)")
    assert page.locator("#unmatched").count() == 0
    page.close()


def test_class_page_loads_and_links_every_submission(report, browser):
    out, results = report
    page, errors = open_page(browser, out / "index.html")
    assert page.evaluate(WAIT_FOR_MEDIA) == {"audio": [], "images": []}
    hrefs = page.eval_on_selector_all("#submissions tbody a", "links => links.map(a => a.href)")
    assert sorted(Path(href.removeprefix("file://")).name for href in hrefs) == sorted(
        f"{r.submission_id}.html" for r in results)
    assert all(Path(href.removeprefix("file://")).is_file() for href in hrefs)
    assert page.locator("svg rect").count() == 10  # the histogram's bins
    assert errors == []
    page.close()


def test_the_class_page_flags_unmatched_submissions_and_shows_attempts(report, browser, tmp_path):
    out, results = report
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    again = results[0].model_copy(update={"submission_id": f"{results[0].submission_id}~2", "attempt": 2})
    again.write(copy / "results")
    render_all(copy, result_fixtures.rubric())
    page, errors = open_page(browser, copy / "index.html")
    rows = {row.split("\t")[0]: row for row in page.eval_on_selector_all(
        "#submissions tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText).join('\\t'))")}
    assert "unmatched" in rows["unlucky-hw3"] and not any("unmatched" in rows[sid] for sid in rows
                                                          if sid != "unlucky-hw3")
    assert "Unmatched submissions: 1" in page.inner_text("#unmatched")
    assert "attempt 2" in rows["lovelaceada_1001~2"] and "attempt" not in rows["lovelaceada_1001"]
    assert rows["lovelaceada_1001~2"].split("\t")[1].startswith("lovelaceada 1001")  # the same student
    assert "declared: Ada Lovelace (id al1)" in rows["lovelaceada_1001"]
    assert "late" in rows["hoppergrace_1003"]
    page.goto((copy / "pages" / "lovelaceada_1001~2.html").as_uri())
    assert "attempt 2" in page.inner_text("header")
    page.goto((copy / "pages" / "unlucky-hw3.html").as_uri())
    assert "unlucky hw3.zip is not a file name an LMS export gives" in page.inner_text("#unmatched")
    assert errors == []
    page.close()
    student_view = render_submission(results[4], out, rubric=result_fixtures.rubric(),
                                     audience=student_audience(result_fixtures.rubric()))
    assert 'id="unmatched"' not in student_view  # the instructor's matter


def column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#submissions tbody tr td:nth-child({index + 1})",
                                     "cells => cells.map(c => c.getAttribute('data-sort') ?? c.textContent.trim())")


def test_class_table_sorts_when_a_header_is_clicked(report, browser):
    out, results = report
    page, errors = open_page(browser, out / "index.html")
    headers = page.eval_on_selector_all("#submissions thead th", "cells => cells.map(c => c.textContent.trim())")
    total, student = headers.index("total"), headers.index("student")
    page.click(f"#submissions thead th:nth-child({total + 1})")
    ascending = [float(value) for value in column(page, total)]
    assert ascending == sorted(ascending) and ascending != [r.total for r in results]
    page.click(f"#submissions thead th:nth-child({total + 1})")
    assert [float(value) for value in column(page, total)] == sorted(ascending, reverse=True)
    assert page.get_attribute(f"#submissions thead th:nth-child({total + 1})", "aria-sort") == "descending"
    page.click(f"#submissions thead th:nth-child({student + 1})")
    names = [name.lower() for name in column(page, student)]
    assert names == sorted(names)
    assert errors == []
    page.close()


@pytest.mark.parametrize("name", ["index.html", "pages/lovelaceada_1001.html", "pages/mallory_1004.html"])
def test_layout_holds_at_a_phones_width(report, browser, name):
    out, _ = report
    page, errors = open_page(browser, out / name, viewport=PHONE)
    page.evaluate(WAIT_FOR_MEDIA)
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert widths[0] <= PHONE["width"] and widths[1] <= PHONE["width"], widths
    assert errors == []
    page.close()


def test_an_embedded_page_opens_on_its_own(report, browser, tmp_path):
    out, results = report
    html = render_submission(results[0], out, rubric=result_fixtures.rubric(), embed_media=True)
    assert not re.search(r'src="(?!data:)', html)  # every source inside the page
    alone = tmp_path / "page.html"
    alone.write_text(html)
    page, errors = open_page(browser, alone)
    media = page.evaluate(WAIT_FOR_MEDIA)
    assert len(media["audio"]) == 3 * 4 + 2 and all(0 < a["duration"] < 60 for a in media["audio"])
    assert all(image["width"] == 384 for image in media["images"])
    assert errors == []
    page.close()


def test_what_a_student_sees(report):
    out, results = report
    rubric = result_fixtures.rubric()
    hidden = next(item for item in rubric.items if item.visibility == "hidden")
    published = next(item for item in rubric.items if item.visibility == "after_published")
    wrong = next(q for q in results[2].quiz if not q.correct)
    key = next(q.answer for q in rubric.quiz.questions if q.id == wrong.id)
    cell = f"<td>{key}</td>"  # the answer key column; the key may also be another question's choice

    instructor = render_submission(results[2], out, rubric=rubric)
    assert hidden.title in instructor and published.title in instructor and cell in instructor

    before = render_submission(results[2], out, rubric=rubric, audience=student_audience(rubric))
    assert hidden.title not in before and hidden.id not in before
    assert published.title not in before
    assert "answer key" not in before and cell not in before
    assert "2 more items will be shown later" in before

    after = render_submission(results[2], out, rubric=rubric,
                              audience=student_audience(rubric, due_date_passed=True, published=True))
    assert hidden.title not in after and published.title in after and cell in after


def test_rendering_again_draws_nothing_new(report):
    out, results = report
    pictures = {path: path.stat().st_mtime_ns for path in (out / "spectrograms").glob("*.png")}
    audio = {path.read_bytes() for path in (out / "media").rglob("*.wav")} - {
        (out / "media" / "hoppergrace_1003" / "samples" / "sample_3.wav").read_bytes()}
    assert len(pictures) == len(audio)  # one picture per distinct audio content: shared clips drawn once
    render_all(out, result_fixtures.rubric())
    assert {path: path.stat().st_mtime_ns for path in (out / "spectrograms").glob("*.png")} == pictures


def test_stale_pages_go_and_unreadable_results_are_listed(report, tmp_path):
    out, _ = report
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "results" / "mallory_1004.json").unlink()
    (copy / "results" / "broken.json").write_text("{not json")
    index = render_all(copy, result_fixtures.rubric())
    assert not (copy / "pages" / "mallory_1004.html").exists()
    assert not (copy / "gradescope" / "mallory_1004.json").exists()
    assert "results/broken.json: not a readable result" in index.read_text()


@pytest.fixture(scope="module")
def really_graded(tmp_path_factory, small_heldout, small_baseline) -> tuple[Path, SubmissionResult]:
    """A student-style submission graded by the real pipeline (sandbox, held-out set, baseline), then rendered."""
    from grader.pipeline import GradingSetup, grade_submission
    from tests.helpers import write_submission

    root = tmp_path_factory.mktemp("graded")
    setup = GradingSetup(rubric=result_fixtures.rubric(), heldout=small_heldout, load_baseline=small_baseline,
                         out_dir=root / "out")
    result = grade_submission(write_submission(root / "doe_12345"), setup)
    render_all(setup.out_dir, result_fixtures.rubric())
    return setup.out_dir, result


@pytest.mark.slow
def test_a_really_graded_submission_renders_and_plays(really_graded, browser):
    out, result = really_graded
    assert result.status == "graded" and result.listen and result.runs
    page, errors = open_page(browser, out / "pages" / f"{result.submission_id}.html")
    media = page.evaluate(WAIT_FOR_MEDIA)
    sources = sum(bool(getattr(clip, s)) for clip in result.listen for s in ("truth", "reference", "student",
                                                                            "griffin_lim"))
    assert len(media["audio"]) == sources + sum(bool(s.audio) for s in result.samples)
    assert all(a["error"] is None and 0 < a["duration"] < 60 for a in media["audio"]), media["audio"]
    assert len(media["images"]) == len(media["audio"]) and all(i["width"] > 0 for i in media["images"])
    text = page.inner_text("body")
    for item in result.items:
        assert item.title in text
    assert errors == []
    page.close()


def test_a_page_says_when_no_student_code_ran_for_its_grading(report):
    """A re-scored result (or one whose every run came from the run cache) says that its code did not run now."""
    out, results = report
    graded = results[0]
    assert graded.runs and not any(run.reused for run in graded.runs)
    phrase = "no student code ran now"
    assert phrase not in render_submission(graded, out, rubric=result_fixtures.rubric())
    kept = graded.model_copy(update={"runs": [run.model_copy(update={"reused": True}) for run in graded.runs]})
    assert f"{phrase}, its {len(graded.runs)} runs kept from an earlier grading" in render_submission(
        kept, out, rubric=result_fixtures.rubric())
