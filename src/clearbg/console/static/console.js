// The console's only script: copy buttons and the playground. No framework, no build step.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  const text = source.value !== undefined ? source.value : source.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard permission (plain http): select the text so Ctrl+C copies it
    if (source.select) source.select();
    else window.getSelection().selectAllChildren(source);
    document.execCommand("copy");
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});

function setupPlayground(form) {
  const status = document.getElementById("pg-status");
  const result = document.getElementById("pg-result");
  const before = document.getElementById("pg-before");
  const after = document.getElementById("pg-after");
  const afterWrap = document.getElementById("pg-after-wrap");
  const slider = document.getElementById("pg-slider");
  const download = document.getElementById("pg-download");
  const run = document.getElementById("pg-run");
  const urls = [];
  slider.addEventListener("input", () => {
    afterWrap.style.clipPath = `inset(0 0 0 ${slider.value}%)`;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const url = form.elements.url.value.trim();
    if (!file && !url) { status.textContent = "Choose a photo or paste its URL."; return; }
    const body = new FormData();
    body.append("image", file || url);
    for (const name of ["size", "format", "bg_color", "key", "csrf_token"]) {
      const value = form.elements[name].value.trim();
      if (value) body.append(name, value);
    }
    const headers = { "Accept": "application/problem+json, image/*" };
    run.disabled = true;
    status.textContent = "Working…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.endpoint, { method: "POST", headers, body });
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      if (!response.ok) {
        let detail = response.statusText;
        let code = "";
        try { const problem = await response.json(); code = problem.code; detail = `${problem.detail} (${code})`; } catch {}
        status.textContent = `Error ${response.status}: ${detail}`;
        if (code === "insufficient_credits") {
          status.textContent += " This key has no credits left: top it up on the Overview tab, or pick another key.";
        }
        return;
      }
      const blob = await response.blob();
      while (urls.length) URL.revokeObjectURL(urls.pop());
      const cut = URL.createObjectURL(blob);
      urls.push(cut);
      before.src = file ? (urls.push(URL.createObjectURL(file)), urls[1]) : url;
      after.src = cut;
      const ext = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp" }[blob.type] || "png";
      download.href = cut;
      download.download = `cutout.${ext}`;
      result.hidden = false;
      const charged = response.headers.get("X-Credits-Charged");
      status.textContent = `Done in ${seconds} s: ${blob.type}, ${(blob.size / 1024).toFixed(0)} KB` +
        (charged !== null ? `, ${charged} credit${charged === "1" ? "" : "s"} charged` : "") + ".";
    } catch (err) {
      status.textContent = `The request failed: ${err}`;
    } finally {
      run.disabled = false;
    }
  });
}

function hintCredits(form) {
  // say before the call when the chosen key has nothing left to pay with
  const warning = document.getElementById("pg-empty");
  const show = () => {
    const option = form.elements.key.selectedOptions[0];
    warning.hidden = !(option && option.dataset.empty === "1");
  };
  form.elements.key.addEventListener("change", show);
  show();
}

const playground = document.getElementById("playground");
if (playground) hintCredits(playground);
if (playground) setupPlayground(playground);
