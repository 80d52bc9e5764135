// confmerge: keys for the compare and merge pages, and the merge page's choices through the API.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const typing = (e) => e.target.matches?.("input[type=text], input[type=password], select, textarea")
    || e.ctrlKey || e.metaKey || e.altKey;
  const visible = (el) => el.offsetParent !== null;

  function stepper(selector) {
    let current = -1;
    return function (delta) {
      const items = [...document.querySelectorAll(selector)].filter(visible);
      if (!items.length) return null;
      const at = items.indexOf(document.activeElement);
      current = Math.max(0, Math.min(items.length - 1, (at >= 0 ? at : current) + delta));
      items.forEach((el) => el.classList.remove("current"));
      const el = items[current];
      el.classList.add("current");
      el.focus({ preventScroll: true });
      el.scrollIntoView({ block: "center" });
      return el;
    };
  }

  // -- compare
  const changes = document.getElementById("changes");
  if (changes) {
    const step = stepper("article.chg");
    const setView = (view) => {
      changes.className = view;
      document.querySelectorAll("[data-view]").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
    };
    document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
    document.querySelectorAll("[data-filter]").forEach((box) => box.addEventListener("change", () => {
      document.querySelectorAll(`.sec[data-class="${box.dataset.filter}"]`).forEach((s) => { s.hidden = !box.checked; });
    }));
    document.addEventListener("keydown", (e) => {
      if (typing(e)) return;
      if (e.key === "j" || e.key === "n") { step(1); e.preventDefault(); }
      else if (e.key === "k" || e.key === "p") { step(-1); e.preventDefault(); }
      else if (e.key === "u") { setView(changes.className === "split" ? "unified" : "split"); }
    });
  }

  // -- merge
  const merge = document.getElementById("merge");
  if (merge) {
    const id = merge.dataset.merge;
    const api = `/api/v1/merges/${id}`;
    const step = stepper("li.conflict");
    const show = (problem) => { alert(problem.error || "refused"); };
    async function call(method, path, body, focus) {
      const response = await fetch(api + path, {
        method, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!response.ok) { show(await response.json()); return; }
      const url = new URL(location.href);
      url.hash = focus ? `k${focus}` : "";
      location.replace(url.toString());
      if (url.pathname === location.pathname) location.reload();
    }
    const conflicts = () => [...document.querySelectorAll("li.conflict")];
    function choose(li, button) {
      const n = Number(li.dataset.n);
      const next = conflicts().find((c) => Number(c.dataset.n) > n && c.classList.contains("unresolved"));
      call("PATCH", `/conflicts/${n}`, { take: button.dataset.take }, next ? next.dataset.n : n);
    }
    merge.addEventListener("click", (e) => {
      const option = e.target.closest("button.opt[data-take]");
      if (option) { choose(option.closest("li.conflict"), option); return; }
      const primary = e.target.closest("button[data-primary]");
      if (primary) call("PATCH", "", { primary: primary.dataset.primary });
    });
    const nextUnresolved = () => {
      const open = conflicts().filter((c) => c.classList.contains("unresolved"));
      const at = conflicts().indexOf(document.activeElement);
      const target = open.find((c) => conflicts().indexOf(c) > at) || open[0];
      if (target) { target.focus(); target.scrollIntoView({ block: "center" }); }
    };
    document.getElementById("next-unresolved")?.addEventListener("click", nextUnresolved);
    document.getElementById("take-rest")?.addEventListener("click", () => call("POST", "/take-primary"));
    document.getElementById("confirm")?.addEventListener("click", () => call("POST", "/confirm"));
    document.addEventListener("keydown", (e) => {
      if (typing(e)) return;
      const li = document.activeElement?.closest?.("li.conflict");
      if (e.key === "j") { step(1); e.preventDefault(); }
      else if (e.key === "k") { step(-1); e.preventDefault(); }
      else if (e.key === "n") { nextUnresolved(); e.preventDefault(); }
      else if (li && /^[1-9]$/.test(e.key)) {
        const button = li.querySelector(`button.opt[data-key="${e.key}"]`);
        if (button && !button.disabled) { choose(li, button); e.preventDefault(); }
      }
    });
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target) { target.focus(); target.scrollIntoView({ block: "center" }); }
  }
})();
