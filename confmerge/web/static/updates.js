// The Administration page's software update: start, resume, abort, and the roll-out refreshed every second.
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const result = document.getElementById("update-result");
  const status = document.getElementById("update-status");
  if (!status) return;

  async function call(path, body) {
    const response = await fetch(path, {method: "POST", body: JSON.stringify(body || {}),
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
    const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
    result.textContent = response.ok ? (data.message || "done") : data.error;
    result.className = "result " + (response.ok ? "ok" : "bad");
    refresh();
  }

  async function refresh() {
    const response = await fetch("/api/v1/updates?html=1");
    if (response.ok) status.innerHTML = (await response.json()).html;
  }

  document.getElementById("update-start").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    call("/api/v1/updates", {package: form.package.value.trim(), parallel: parseInt(form.parallel.value, 10) || 1,
                             dry_run: form.dry_run.checked});
  });
  document.getElementById("update-resume").addEventListener("click", () => call("/api/v1/updates/resume"));
  document.getElementById("update-abort").addEventListener("click", () => call("/api/v1/updates/abort"));
  setInterval(refresh, 1000);
})();
