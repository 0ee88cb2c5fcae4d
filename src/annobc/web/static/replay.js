// annobc web: step through a recorded episode, showing each click on the frame it was made on.
"use strict";
(function () {
  const main = document.querySelector("main");
  const ds = main.dataset.ds, eid = main.dataset.eid;
  const n = Number(main.dataset.n), scale = Number(main.dataset.scale);
  const img = document.getElementById("screen");
  const marker = document.getElementById("marker");
  const slider = document.getElementById("slider");
  const status = document.getElementById("status");
  const playButton = document.getElementById("play");
  const base = "/api/replay/" + encodeURIComponent(ds) + "/" + encodeURIComponent(eid);
  let steps = [], k = 0, timer = null, token = 0;

  function frameUrl(i) { return base + "/frame/" + i; }

  async function go(i) {
    k = Math.max(0, Math.min(n, i));
    slider.value = String(k);
    const mine = ++token;
    img.src = frameUrl(k);
    try { await img.decode(); } catch (e) { /* shown anyway */ }
    if (mine !== token) return;  // a later request has taken over
    main.dataset.frame = String(k);
    if (k + 1 <= n) { const pre = new Image(); pre.src = frameUrl(k + 1); }
    if (k < n && steps[k]) {
      const s = steps[k];
      marker.hidden = false;
      marker.style.left = (s.x * scale + scale / 2) + "px";
      marker.style.top = (s.y * scale + scale / 2) + "px";
      const t = s.timestamp_ms == null ? "" : ` at ${s.timestamp_ms.toFixed(0)} ms`;
      status.textContent = `Frame ${k}/${n}: click ${k + 1} at (${s.x}, ${s.y}) on ` +
        `${s.element || "nothing"} [${s.category}]${t}`;
    } else {
      marker.hidden = true;
      status.textContent = `Frame ${k}/${n}: the final screen.`;
    }
  }

  function stop() { if (timer) { clearInterval(timer); timer = null; playButton.textContent = "Play"; } }

  document.getElementById("first").addEventListener("click", () => { stop(); go(0); });
  document.getElementById("prev").addEventListener("click", () => { stop(); go(k - 1); });
  document.getElementById("next").addEventListener("click", () => { stop(); go(k + 1); });
  document.getElementById("last").addEventListener("click", () => { stop(); go(n); });
  slider.addEventListener("input", () => { stop(); go(Number(slider.value)); });
  playButton.addEventListener("click", () => {
    if (timer) { stop(); return; }
    playButton.textContent = "Pause";
    timer = setInterval(() => { if (k >= n) stop(); else go(k + 1); }, 250);
  });

  fetch(base).then((r) => r.json()).then((d) => { steps = d.steps || []; go(0); })
    .catch((e) => { status.textContent = "Error: " + e.message; });
})();
