// annobc web: the task list and a live annotation session.
"use strict";
(function () {
  const main = document.querySelector("main");

  async function api(method, url, body) {
    const opts = { method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    const data = await r.json().catch(() => ({ error: "bad response (" + r.status + ")" }));
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }

  // -- the task list ------------------------------------------------------------------------------
  function indexPage() {
    const err = document.getElementById("error");
    const name = document.getElementById("annotator");
    name.value = localStorage.getItem("annobc.annotator") || "";
    for (const b of document.querySelectorAll("button.start")) {
      b.addEventListener("click", async () => {
        err.textContent = "";
        try {
          localStorage.setItem("annobc.annotator", name.value);
          const s = await api("POST", "/api/sessions", { task: b.dataset.task, annotator: name.value });
          window.location.href = "/session/" + encodeURIComponent(s.session_id);
        } catch (e) {
          err.textContent = e.message;
        }
      });
    }
  }

  // -- a session ----------------------------------------------------------------------------------
  function sessionPage() {
    const sid = main.dataset.sid;
    const W = Number(main.dataset.width), H = Number(main.dataset.height);
    const img = document.getElementById("screen");
    const status = document.getElementById("status");
    const endButton = document.getElementById("end");
    let step = 0, busy = true, finished = false;
    let t0 = 0; // performance.now() when the session's first frame was shown (shifted on reload)

    async function show(state) {
      img.src = state.frame;
      try { await img.decode(); } catch (e) { /* shown anyway */ }
      step = state.step;
      finished = state.finished;
      main.dataset.step = String(step);  // for scripts and tests: the frame shown is this step's
      main.dataset.finished = String(finished);
      img.classList.toggle("finished", finished);
      endButton.disabled = finished;
      if (finished) {
        const how = state.done ? "DONE" : state.end_reason;
        status.textContent = state.episode_id
          ? `Finished (${how}): ${state.step} clicks, score ${state.score.toFixed(3)}. Saved as ${state.episode_id}.`
          : `Finished (${how}) with no clicks: nothing saved.`;
      }
    }

    async function start() {
      try {
        const state = await api("GET", "/api/sessions/" + encodeURIComponent(sid));
        await show(state);
        t0 = performance.now() - (state.last_timestamp_ms || 0);
        if (!finished) status.textContent = `Step ${step}. Click on the screen.`;
      } catch (e) {
        status.textContent = "Error: " + e.message;
      }
      busy = false;
    }

    img.addEventListener("click", async (ev) => {
      if (busy || finished) return;  // one click in flight at a time, made on the frame shown
      const r = img.getBoundingClientRect();
      const x = Math.min(W - 1, Math.max(0, Math.floor((ev.clientX - r.left) * W / r.width)));
      const y = Math.min(H - 1, Math.max(0, Math.floor((ev.clientY - r.top) * H / r.height)));
      const t_ms = Math.round((performance.now() - t0) * 10) / 10;
      busy = true;
      img.classList.add("busy");
      try {
        const state = await api("POST", "/api/sessions/" + encodeURIComponent(sid) + "/click",
                                { x, y, step, t_ms });
        await show(state);
        if (!finished) {
          const what = state.result.element || "nothing";
          status.textContent = `Step ${step}: clicked (${x}, ${y}) on ${what} [${state.result.category}].`;
        }
      } catch (e) {
        status.textContent = "Error: " + e.message;
      }
      img.classList.remove("busy");
      busy = false;
    });

    endButton.addEventListener("click", async () => {
      if (finished || busy) return;
      if (!window.confirm("End this session without pressing DONE?")) return;
      busy = true;
      try {
        await show(await api("POST", "/api/sessions/" + encodeURIComponent(sid) + "/end", {}));
      } catch (e) {
        status.textContent = "Error: " + e.message;
      }
      busy = false;
    });

    start();
  }

  if (main.dataset.page === "index") indexPage();
  if (main.dataset.page === "session") sessionPage();
})();
