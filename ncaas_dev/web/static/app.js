// Live pages: the job's state and logs over Server-Sent Events, the pending submission, copy.
(() => {
  "use strict";
  const text = (el, value) => { if (el) el.textContent = value == null ? "" : String(value); };

  const job = document.getElementById("job");
  if (job) {
    const events = new EventSource(job.dataset.events);
    events.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      const badge = document.getElementById("job-state");
      text(badge, s.state);
      badge.className = `state ${s.state}`;
      const reason = document.getElementById("reason");
      text(reason, s.reason);
      reason.hidden = !s.reason;
      const body = document.querySelector("#datasets tbody");
      for (const [name, ds] of Object.entries(s.datasets || {})) {
        let tr = [...body.rows].find((r) => r.dataset.dataset === name);
        if (!tr) {
          location.reload();  // the status appeared: show its datasets and logs
          return;
        }
        const span = tr.cells[1].firstElementChild;
        text(span, ds.state);
        span.className = `state ${ds.state}`;
        text(tr.cells[2], ds.exit_code);
        text(tr.cells[3], ds.reason);
        const bar = tr.cells[4] && tr.cells[4].querySelector("progress");
        if (bar) {  // the analysis's own progress (tqdm or NN%), when it shows one
          const known = typeof ds.progress === "number";
          bar.hidden = !known;
          if (known) bar.value = ds.progress;
          text(tr.cells[4].querySelector(".pct"), known ? `${Math.floor(ds.progress * 100)}%` : "");
        }
      }
      if (s.certificate) text(document.getElementById("certificate"), s.certificate);
      if (s.terminal) { events.close(); htmx.trigger(document.body, "job-ended"); }
    });
    events.addEventListener("end", () => events.close());
    for (const pre of document.querySelectorAll("pre[data-log]")) {
      const log = new EventSource(pre.dataset.log);
      const done = pre.querySelector(".done") || pre;
      const current = pre.querySelector(".current");
      log.addEventListener("log", (e) => {
        done.append(document.createTextNode(`${e.data}\n`));
        text(current, "");
      });
      // The line being drawn (a progress bar): shown in place, replaced by each redraw.
      log.addEventListener("partial", (e) => text(current, e.data));
      log.addEventListener("end", () => log.close());
    }
  }

  const pending = document.getElementById("pending");
  if (pending) {
    const poll = async () => {
      const r = await fetch(pending.dataset.stateUrl, { credentials: "same-origin" });
      const s = await r.json();
      if (r.status === 401 && s.signin) { location.href = s.signin; return; }
      if (s.url) { location.href = s.url; return; }
      text(document.getElementById("waited"), Math.round(s.waited));
      document.getElementById("lost").hidden = !s.lost;
      document.getElementById("waiting").hidden = s.lost;
      setTimeout(poll, s.lost ? 5000 : 500);
    };
    setTimeout(poll, 300);
  }

  // No inline handlers (the CSP forbids them): a filter that submits its form on change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const code = document.getElementById(button.dataset.copy).textContent;
      try { await navigator.clipboard.writeText(code); button.textContent = "Copied"; }
      catch (e) { window.getSelection().selectAllChildren(document.getElementById(button.dataset.copy)); }
    });
  }
})();
