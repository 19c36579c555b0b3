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
    for (const name of ["size", "format", "bg_color"]) {
      const value = form.elements[name].value.trim();
      if (value) body.append(name, value);
    }
    const headers = { "X-App-Key": form.dataset.appKey };
    const key = form.elements.api_key.value.trim();
    if (key) headers["X-Api-Key"] = key;
    run.disabled = true;
    status.textContent = "Working…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.endpoint, { method: "POST", headers, body });
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      if (!response.ok) {
        let detail = response.statusText;
        try { const problem = await response.json(); detail = `${problem.detail} (${problem.code})`; } catch {}
        status.textContent = `Error ${response.status}: ${detail}`;
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

const playground = document.getElementById("playground");
if (playground) setupPlayground(playground);
