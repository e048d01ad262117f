"use strict";
// A trial's clips played by buttons and keys, one at a time. Submit is enabled once every rated clip has played to
// its end (the browser's "ended" event); the server checks again from what it served, the static export cannot.

function setUpTrial(form) {
  const audios = Array.from(form.querySelectorAll("audio"));
  const rated = new Set(Array.from(form.querySelectorAll(".status")).map(status => status.dataset.clip));
  const ended = new Set();
  const submit = form.querySelector("button.submit");
  const hint = form.querySelector(".hint");
  const buttonOf = audio => form.querySelector(`button.play[data-clip="${audio.dataset.clip}"]`);

  function stopAll(except) {
    for (const audio of audios) {
      if (audio !== except && !audio.paused) {
        audio.pause();
        audio.currentTime = 0;
      }
      if (audio !== except) buttonOf(audio).setAttribute("aria-pressed", "false");
    }
  }
  function updateSubmit() {
    const missing = Array.from(rated).filter(clip => !ended.has(clip)).length;
    submit.disabled = missing > 0;
    hint.textContent = missing > 0 ? `Play every clip to its end to submit (${missing} to go).` : "";
  }

  for (const audio of audios) {
    const button = buttonOf(audio);
    button.addEventListener("click", () => {
      if (!audio.paused) {
        stopAll(null);
        return;
      }
      stopAll(audio);
      audio.currentTime = 0;
      button.setAttribute("aria-pressed", "true");
      audio.play().catch(() => button.setAttribute("aria-pressed", "false"));
    });
    audio.addEventListener("ended", () => {
      button.setAttribute("aria-pressed", "false");
      if (!rated.has(audio.dataset.clip)) return;
      ended.add(audio.dataset.clip);
      const status = form.querySelector(`.status[data-clip="${audio.dataset.clip}"]`);
      status.textContent = "played";
      status.classList.add("played");
      updateSubmit();
    });
  }
  const bands = Array.from(form.querySelectorAll(".scale .bands span"), span => span.textContent);  // bottom up
  for (const slider of form.querySelectorAll("input[type=range]")) {
    const output = form.querySelector(`output[for="${slider.id}"]`);
    const show = () => {
      const fraction = (slider.value - slider.min) / (slider.max - slider.min);
      const band = bands[Math.min(bands.length - 1, Math.floor(fraction * bands.length))];
      output.textContent = `${slider.value} ${band}`;
      slider.setAttribute("aria-valuetext", `${slider.value}, ${band}`);
    };
    slider.addEventListener("input", show);
    show();
  }
  form.stopAll = () => stopAll(null);
  updateSubmit();
}

function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
  const form = document.querySelector("form.trial:not([hidden])");
  if (!form) return;
  const key = event.key.toLowerCase();
  if (key === "escape") {
    form.stopAll();
    return;
  }
  const button = form.querySelector(`button.play[data-key="${CSS.escape(key)}"]`);
  const radio = form.dataset.kind === "mos" && form.querySelector(`input[type=radio][value="${CSS.escape(key)}"]`);
  if (button) {
    button.click();
  } else if (radio) {
    radio.checked = true;
    radio.focus();
  } else {
    return;
  }
  event.preventDefault();
}

document.querySelectorAll("form.trial").forEach(setUpTrial);
document.addEventListener("keydown", onKey);
