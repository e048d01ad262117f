"use strict";
// The static export: no server. Ratings are kept in this browser's localStorage as each trial is submitted, the
// next unrated trial is shown, and once all are rated a JSON file of them is downloaded for the instructor, who
// reads it with `import_ratings` (grader/listening/export.py). Clips count as played on the browser's word only.

const rater = JSON.parse(document.getElementById("rater").textContent);
const storageKey = `listening-ratings:${rater.token}`;
const forms = Array.from(document.querySelectorAll("form.trial"));
const done = document.getElementById("done");

function saved() {
  try {
    return JSON.parse(localStorage.getItem(storageKey)) || {};
  } catch (error) {
    return {};
  }
}

function showNext() {
  const ratings = saved();
  const next = forms.find(form => !(form.dataset.trial in ratings));
  for (const form of forms) form.hidden = form !== next;
  done.hidden = next !== undefined;
  if (next) next.querySelector("button.play").focus();
}

function download() {
  const ratings = saved();
  const trials = forms.map(form => form.dataset.trial).filter(trial => trial in ratings)
    .map(trial => ({trial, at: ratings[trial].at, scores: ratings[trial].scores}));
  const file = new Blob([JSON.stringify({format: rater.format, rater: rater.token, trials}, null, 1)],
                        {type: "application/json"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(file);
  link.download = rater.file;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

for (const form of forms) {
  form.addEventListener("submit", event => {
    event.preventDefault();
    form.stopAll();
    const scores = {};
    for (const input of form.querySelectorAll("input[type=range], input[type=radio]:checked")) {
      scores[input.name] = Number.parseInt(input.value, 10);
    }
    const ratings = saved();
    ratings[form.dataset.trial] = {at: new Date().toISOString(), scores};
    localStorage.setItem(storageKey, JSON.stringify(ratings));
    showNext();
    if (forms.every(other => other.dataset.trial in ratings)) download();
  });
}
document.getElementById("download").addEventListener("click", download);
showNext();
