// clusterd: the cluster's pages: live boxes (server-sent events), the throughput chart, the cluster's actions.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const rate = (bits) => {
    if (bits === null || bits === undefined) return "no data";
    const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let i = 0;
    while (bits >= 1000 && i < units.length - 1) { bits /= 1000; i += 1; }
    return `${bits.toFixed(bits < 10 && i ? 2 : 0)} ${units[i]}`;
  };
  const syncClass = {"in sync": "ok", "changes pending": "warn", "awaiting initial sync": "wait", "syncing": "busy",
                     "sync failed": "bad", "disconnected": "down"};
  async function api(method, path, body) {
    const response = await fetch(path, {method, headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                                        body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await response.json().catch(() => ({error: `status ${response.status}`}));
    if (!response.ok) throw Object.assign(new Error(data.error || `status ${response.status}`), {data});
    return data;
  }

  // -- home: one box per server, live
  const boxes = document.getElementById("boxes");
  if (boxes) {
    const own = document.getElementById("cluster-head").dataset.this;
    const history = {};   // id -> [downlink...] for the sparkline (the last two minutes)
    const sparkline = (values) => {
      const line = svg("svg", {class: "spark", viewBox: "0 0 300 40", preserveAspectRatio: "none"});
      const top = Math.max(1, ...values.filter((v) => v !== null));
      let d = "";
      values.forEach((v, i) => {
        if (v === null) { d += " "; return; }
        const x = (i / Math.max(1, values.length - 1)) * 300, y = 38 - (v / top) * 36;
        d += (d.endsWith(" ") || !d ? "M" : "L") + `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      line.append(svg("path", {d: d.trim().replace(/ +/g, " ") || "M0,38", fill: "none", stroke: "#1f5fbf", "stroke-width": "1.5"}));
      return line;
    };
    fetch("/api/v1/throughput?server=all&seconds=120").then((r) => r.json()).then((data) => {
      for (const s of data.servers) history[s.id] = s.samples.map((x) => x[1]).concat(history[s.id] || []);
    }).catch(() => {});
    const render = (data) => {
      const c = data.cluster;
      const state = document.getElementById("cluster-state"), status = document.getElementById("cluster-status");
      state.textContent = c.state; state.className = `state ${c.state === "ready" ? "ok" : "bad"}`;
      status.textContent = c.status; status.className = `state ${c.status === "complete" ? "ok" : "warn"}`;
      const banner = document.getElementById("pending-banner");
      if (c.pending) {
        banner.hidden = false;
        banner.replaceChildren(`The load of generation ${c.pending.number} is provisional: returned in ${Math.round(c.pending.left)} s unless confirmed. `,
                               el("a", {href: "/backups", text: "Confirm or roll back now"}));
      } else banner.hidden = true;
      boxes.replaceChildren(...c.servers.map((s) => {
        const box = data.boxes[String(s.id)] || {};
        const values = (history[s.id] = (history[s.id] || []).concat([box.throughput ? box.throughput[0] : null]).slice(-120));
        const link = box.web && s.up ? box.web : null;
        const card = el(link ? "a" : "div", {class: `box ${s.up ? "up" : "down"} ${s.role}`, "data-id": String(s.id),
                                            ...(link ? {href: link} : {})},
          el("div", {class: "box-head"},
             el("b", {text: `BQN ${s.id}`}), el("span", {class: "host", text: box.hostname || ""}),
             s.id === c.primary ? el("span", {class: "badge primary", text: "primary"}) : "",
             String(s.id) === own ? el("span", {class: "badge here", text: "★ you are here"}) : ""),
          el("div", {class: "box-line", text: `${s.address} · ${s.role} · ${s.up ? "up" : "down"}`}),
          el("div", {class: "box-line"}, el("span", {class: `sync ${syncClass[s.sync] || ""}`, text: s.sync}),
             s.error ? el("span", {class: "reason", text: ` ${s.error}`}) : ""),
          el("div", {class: "rates"},
             el("span", {class: "dl", text: `↓ ${rate(box.throughput ? box.throughput[0] : null)}`}),
             el("span", {class: "ul", text: `↑ ${rate(box.throughput ? box.throughput[1] : null)}`})),
          sparkline(values),
          el("div", {class: "box-line muted", text: box.version ? `clusterd ${box.version}` : ""}));
        return card;
      }));
    };
    const connect = () => {
      const live = document.getElementById("live");
      const source = new EventSource("/api/v1/events");
      source.onmessage = (event) => { live.textContent = "live"; live.className = "live on"; render(JSON.parse(event.data)); };
      source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live"; };
    };
    connect();
  }

  // -- Status -> Throughput: the chart
  const chart = document.getElementById("chart");
  if (chart) {
    const own = document.getElementById("throughput").dataset.this;
    const colours = ["#1f5fbf", "#b3261e", "#1e7b34", "#9a6700", "#6b3fa0", "#1f6f8b", "#c2185b", "#455a64"];
    const draw = (data) => {
      const top = Math.max(1, ...data.servers.flatMap((s) => s.samples.flatMap((x) => [x[1] || 0, x[2] || 0])));
      const n = Math.max(1, data.servers[0]?.samples.length - 1 || 1);
      chart.replaceChildren();
      for (let i = 1; i < 4; i++) chart.append(svg("line", {x1: 0, x2: 1000, y1: i * 80, y2: i * 80, stroke: "#e7eaee"}));
      const legend = document.getElementById("legend");
      legend.replaceChildren(el("tr", {}, el("th", {text: "BQN"}), el("th", {text: "now ↓"}), el("th", {text: "now ↑"}),
                                          el("th", {text: "interfaces"})));
      data.servers.forEach((s, k) => {
        const colour = colours[s.id % colours.length];
        for (const [column, dash] of [[1, ""], [2, "6 4"]]) {
          let d = "", gap = true;
          s.samples.forEach((x, i) => {
            if (x[column] === null) { gap = true; return; }
            d += `${gap ? "M" : "L"}${(i / n * 1000).toFixed(1)},${(318 - x[column] / top * 310).toFixed(1)}`;
            gap = false;
          });
          chart.append(svg("path", {d: d || "M0,318", fill: "none", stroke: colour, "stroke-width": "2",
                                    "stroke-dasharray": dash, class: `series s${s.id}`}));
        }
        legend.append(el("tr", {class: `legend-row${String(s.id) === own ? " here" : ""}`, "data-id": String(s.id)},
          el("td", {}, el("span", {class: "swatch", style: `background:${colour}`}),
             `BQN ${s.id}${String(s.id) === own ? " ★" : ""}${s.up ? "" : " (down)"}`),
          el("td", {text: rate(s.current ? s.current[0] : null)}), el("td", {text: rate(s.current ? s.current[1] : null)}),
          el("td", {text: s.problem || s.interfaces.join(", ")})));
      });
      const scale = svg("text", {x: 4, y: 14, class: "scale"});
      scale.textContent = `${rate(top)} · ${data.step === 1 ? "per second" : data.step === 60 ? "per minute"
                                              : `averages of ${data.step} s`}`;
      const start = svg("text", {x: 4, y: 312, class: "scale"}), end = svg("text", {x: 996, y: 312, class: "scale", "text-anchor": "end"});
      start.textContent = data.seconds >= 86400 ? "24 h ago" : `${Math.round(data.seconds / 60)} min ago`;
      end.textContent = "now";
      chart.append(scale, start, end);
    };
    let asking = false;  // one request at a time: a slow answer is not asked for again on top of itself
    const refresh = () => {
      if (asking) return;
      asking = true;
      const server = document.getElementById("server").value, seconds = document.getElementById("range").value;
      fetch(`/api/v1/throughput?server=${server}&seconds=${seconds}&points=1440`).then((r) => r.json()).then(draw).catch(() => {})
        .finally(() => { asking = false; });
    };
    document.getElementById("server").addEventListener("change", refresh);
    document.getElementById("range").addEventListener("change", refresh);
    refresh();
    setInterval(refresh, 2000);
  }

  // -- Administration -> Cluster
  const result = document.getElementById("result");
  if (result && document.getElementById("servers")) {
    const say = (text, bad = false, extra = null) => {
      result.replaceChildren(el("p", {class: bad ? "error" : "done", text}), ...(extra ? [extra] : []));
    };
    const fail = (error) => say(error.message, true, error.data?.output ? el("pre", {class: "output", text: error.data.output}) : null);
    const later = (ms = 1500) => setTimeout(() => location.reload(), ms);
    document.getElementById("sync-now").addEventListener("click", () =>
      api("POST", "/api/v1/sync").then((d) => say(`generation ${d.generation} is on its way to every server`)).catch(fail));
    document.getElementById("check").addEventListener("click", () => {
      say("checking every peer…");
      api("POST", "/api/v1/cluster/check", {}).then((d) => {
        const list = el("div", {class: "checks"});
        for (const p of d.peers) {
          list.append(el("h3", {}, `server ${p.id} (${p.address}): `,
                         el("span", {class: `verdict ${p.ok ? "ok" : "bad"}`, text: p.verdict})),
                      el("ul", {}, ...p.lines.map((line) => el("li", {text: line}))));
        }
        say(d.ok ? "every peer checks out" : "problems found", !d.ok, list);
      }).catch(fail);
    });
    for (const button of document.querySelectorAll("button.remove")) {
      button.addEventListener("click", () => {
        const id = button.dataset.id;
        const row = button.closest("tr");
        row.querySelector(".confirm-remove")?.remove();
        const yes = el("button", {class: "small danger", id: `remove-${id}`, text: `Yes, remove server ${id}`});
        yes.addEventListener("click", () => api("DELETE", `/api/v1/peers/${id}`).then(() => {
          say(`server ${id} removed; its key is no longer trusted`); later();
        }).catch(fail));
        button.after(el("span", {class: "confirm-remove"}, " ", yes));
      });
    }
    const addForm = document.getElementById("add-peer"), confirmBox = document.getElementById("add-confirm");
    addForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const f = new FormData(addForm);
      const body = {id: f.get("id"), address: f.get("address"), ssh_port: f.get("ssh_port") || "22"};
      result.replaceChildren();
      confirmBox.hidden = false;
      confirmBox.replaceChildren(el("p", {text: "reading the peer's key…"}));
      api("POST", "/api/v1/peers", body).then((d) => {
        const yes = el("button", {class: "primary", id: "trust", text: `Trust and add server ${d.id}`});
        const no = el("button", {id: "cancel-add", text: "Cancel"});
        confirmBox.replaceChildren(
          el("p", {}, `Server ${d.id} at ${d.control} has key `, el("code", {id: "peer-fingerprint", text: d.fingerprint}),
             ". Check it against the fingerprint clusterd init printed there."),
          ...d.warnings.map((w) => el("p", {class: "warn-note", text: w})), yes, " ", no);
        no.addEventListener("click", () => { confirmBox.hidden = true; });
        yes.addEventListener("click", () => api("POST", "/api/v1/peers", {...body, fingerprint: d.fingerprint}).then(async (r) => {
          confirmBox.replaceChildren(el("p", {class: "done", text: `server ${r.id} added`}),
                                     el("p", {class: "muted", text: `Now make it trust this server: ${r.next}`}));
          const own = f.get("self_address");
          if (own && own !== addForm.querySelector("[name=self_address]").defaultValue) {
            await api("PUT", "/api/v1/self", {address: own}).catch(fail);
          }
          later(2500);
        }).catch((error) => { confirmBox.hidden = true; fail(error); }));
      }).catch((error) => { confirmBox.hidden = true; fail(error); });
    });
    const idForm = document.getElementById("set-id");
    idForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const id = new FormData(idForm).get("id");
      api("PUT", "/api/v1/self", {id}).then((d) => {
        say(d.changed ? `this server is now BQN ${id}; the service reloads` : d.output); if (d.changed) later(4000);
      }).catch(fail);
    });
  }

  // -- Backups: the provisional load's countdown, load (check and compare first), restore, compare two generations
  const pending = document.getElementById("pending");
  if (pending) {
    const deadline = Number(pending.dataset.deadline);
    const countdown = document.getElementById("countdown");
    const tick = () => {
      const left = Math.max(0, Math.round(deadline - Date.now() / 1000));
      countdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      if (left === 0) setTimeout(() => location.reload(), 3000); else setTimeout(tick, 1000);
    };
    tick();
    const done = (d) => { pending.replaceChildren(el("p", {class: "done", text: d.message})); setTimeout(() => location.reload(), 1500); };
    const failed = (error) => pending.append(el("p", {class: "error", text: error.message}));
    document.getElementById("confirm-load").addEventListener("click", () => api("POST", "/api/v1/confirm").then(done).catch(failed));
    document.getElementById("rollback-now").addEventListener("click", () =>
      api("POST", "/api/v1/rollbacks", {to: pending.dataset.before}).then(done).catch(failed));
  }
  const loadForm = document.getElementById("load-form");
  if (loadForm) {
    const preview = document.getElementById("load-preview"), out = document.getElementById("backups-result");
    const send = async (dryRun) => {
      const body = new FormData(loadForm);
      body.append("dry_run", dryRun ? "1" : "0");
      const response = await fetch("/api/v1/loads", {method: "POST", headers: {"X-CSRF-Token": csrf}, body});
      const data = await response.json();
      if (!response.ok) throw Object.assign(new Error(data.error), {data});
      return data;
    };
    const problem = (error) => {
      preview.hidden = false;
      const lines = (error.data?.diagnostics || []).map((d) => el("li", {text: `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`}));
      preview.replaceChildren(el("p", {class: "error", text: error.message}), el("ul", {class: "diagnostics"}, ...lines));
    };
    loadForm.addEventListener("submit", (event) => {
      event.preventDefault();
      preview.hidden = false;
      preview.replaceChildren(el("p", {text: "checking and comparing with the cluster's configuration…"}));
      send(true).then((d) => {
        const changes = d.diff.changes?.length ?? 0;
        if (!changes) { preview.replaceChildren(el("p", {class: "done", text: "no difference from the cluster's configuration: nothing to load"})); return; }
        const go = el("button", {class: "primary", id: "load-confirm", text: "Load it on every server"});
        preview.replaceChildren(el("p", {text: `What loading it changes in the cluster's configuration (${changes}):`}),
                                el("pre", {class: "output", id: "load-diff", text: d.text}), go);
        go.addEventListener("click", () => send(false).then((r) => {
          preview.replaceChildren(el("p", {class: "done", text: r.generation ? `loaded as generation ${r.generation.number}` : "nothing changed"}));
          setTimeout(() => location.reload(), 1500);
        }).catch(problem));
      }).catch(problem);
    });
    for (const button of document.querySelectorAll("button.restore")) {
      button.addEventListener("click", () => api("POST", "/api/v1/rollbacks", {to: button.dataset.ref}).then((d) => {
        out.replaceChildren(el("p", {class: "done", text: d.message})); setTimeout(() => location.reload(), 1500);
      }).catch((error) => out.replaceChildren(el("p", {class: "error", text: error.message}))));
    }
    document.getElementById("compare-generations").addEventListener("click", () => {
      const old = document.querySelector("#history input[name=old]:checked")?.value;
      const now = document.querySelector("#history input[name=new]:checked")?.value;
      if (old && now) location.href = `/backups/diff?old=${encodeURIComponent(old)}&new=${encodeURIComponent(now)}`;
    });
  }
})();
