// Browser uploads straight to S3: presigned multipart, parts of >= 8 MiB, 4 in flight, each
// retried; the server only signs. A reload resumes: the server lists the parts S3 already has
// for the same key, and only the others are sent once the same file is picked again.
(() => {
  "use strict";
  const section = document.getElementById("upload");
  if (!section) return;
  const bucket = section.dataset.bucket;
  const MAX = Number(section.dataset.max);
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const IN_FLIGHT = 4, TRIES = 5, SIGN_BATCH = 16;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(path, body) {
    const r = await fetch(`/api/a/${encodeURIComponent(bucket)}/uploads${path}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let doc = {};
    try { doc = await r.json(); } catch (e) { /* not JSON */ }
    if (r.status === 401 && doc.signin) { location.href = doc.signin; throw new Error("signed out"); }
    if (!r.ok) throw new Error(doc.error || `HTTP ${r.status}`);
    return doc;
  }

  function row(file, folder, name) {
    const li = document.createElement("li");
    li.className = "upload";
    li.dataset.name = name;
    li.innerHTML = '<span class="name"></span> <progress max="100" value="0"></progress> ' +
      '<span class="pct">0%</span> <span class="status">starting</span> ' +
      '<button type="button" class="cancel">Cancel</button>';
    li.querySelector(".name").textContent = `${folder}/${name}`;
    document.getElementById("uploads").appendChild(li);
    return { li, bar: li.querySelector("progress"), pct: li.querySelector(".pct"),
             status: li.querySelector(".status"), cancel: li.querySelector(".cancel") };
  }

  function putPart(url, blob, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => {
        const etag = xhr.getResponseHeader("ETag");
        if (xhr.status >= 200 && xhr.status < 300 && etag) resolve(etag);
        else reject(new Error(`part answered ${xhr.status}`));
      };
      xhr.onerror = () => reject(new Error("network error"));
      xhr.onabort = () => reject(new DOMException("cancelled", "AbortError"));
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(blob);
    });
  }

  // ``name`` may hold sub-paths ("scan/day1/a.tif"): a folder's files keep their tree, and the
  // folder is then one dataset (its key ends in /).
  async function upload(file, folder, name = file.name) {
    const ui = row(file, folder, name);
    if (file.size > MAX) {  // refused before a single byte is sent
      ui.status.textContent = "refused: over S3's 5 TiB object limit";
      ui.li.classList.add("refused");
      ui.cancel.remove();
      return;
    }
    const ctl = new AbortController();
    let cancelled = false;  // by the user: a reload also aborts requests, and must not abort S3's
    ui.cancel.onclick = () => { cancelled = true; ctl.abort(); };
    let up = null;
    try {
      up = await api("", { folder, name, size: file.size });
      const size = up.part_size;
      const count = Math.max(1, Math.ceil(file.size / size));
      const partBytes = (n) => Math.max(0, Math.min(size, file.size - (n - 1) * size));
      const done = new Map(), loaded = new Map(), urls = new Map();
      for (const p of up.done) {
        if (p.n <= count && p.size === partBytes(p.n)) { done.set(p.n, p.etag); loaded.set(p.n, p.size); }
      }
      const show = () => {
        let sum = 0;
        for (const v of loaded.values()) sum += v;
        const pct = file.size ? Math.min(100, Math.floor((100 * sum) / file.size)) : 100;
        ui.bar.value = pct;
        ui.pct.textContent = `${pct}%`;
      };
      const todo = [];
      for (let n = 1; n <= count; n++) if (!done.has(n)) todo.push(n);
      ui.status.textContent = done.size ? `resuming: ${done.size} of ${count} parts already there` : `${count} part(s)`;
      show();
      const urlFor = async (n) => {
        if (!urls.has(n)) {
          const batch = todo.filter((m) => m >= n && !urls.has(m) && !done.has(m)).slice(0, SIGN_BATCH);
          const signed = await api("/sign", { key: up.key, upload_id: up.upload_id, parts: batch });
          for (const [k, v] of Object.entries(signed.urls)) urls.set(Number(k), v);
        }
        return urls.get(n);
      };
      const sendPart = async (n) => {
        const blob = file.slice((n - 1) * size, (n - 1) * size + partBytes(n));
        for (let attempt = 1; ; attempt++) {
          if (ctl.signal.aborted) throw new DOMException("cancelled", "AbortError");
          try {
            const etag = await putPart(await urlFor(n), blob, (b) => { loaded.set(n, b); show(); }, ctl.signal);
            done.set(n, etag);
            loaded.set(n, blob.size);
            show();
            return;
          } catch (e) {
            if (e.name === "AbortError" || attempt >= TRIES) throw e;
            loaded.set(n, 0);
            show();
            urls.delete(n);  // a fresh signature too, in case it expired
            ui.status.textContent = `retrying part ${n} (${e.message})`;
            await sleep(300 * 2 ** (attempt - 1));
          }
        }
      };
      let next = 0;
      const worker = async () => { while (next < todo.length && !ctl.signal.aborted) await sendPart(todo[next++]); };
      try {
        await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, todo.length) }, worker));
      } catch (e) { ctl.abort(); throw e; }
      const parts = [...done.entries()].map(([n, etag]) => ({ n, etag }));
      await api("/complete", { key: up.key, upload_id: up.upload_id, parts });
      ui.bar.value = 100;
      ui.pct.textContent = "100%";
      ui.status.textContent = "uploaded";
      ui.li.classList.add("done");
      ui.cancel.remove();
      htmx.trigger(document.body, "uploaded");
    } catch (e) {
      if (cancelled) {
        ui.status.textContent = "cancelled";
        ui.li.classList.add("cancelled");
        if (up) { try { await api("/abort", { key: up.key, upload_id: up.upload_id }); } catch (x) { /* gone */ } }
      } else {
        ui.status.textContent = `failed: ${e.message}`;
        ui.li.classList.add("failed");
      }
      ui.cancel.remove();
    }
  }

  // A picked folder's files carry their path under it (webkitRelativePath: "scan/day1/a.tif").
  const start = (files, folder) => {
    for (const f of files) upload(f, folder, f.webkitRelativePath || f.name);
  };
  for (const input of section.querySelectorAll("input[type=file]")) {
    input.addEventListener("change", () => { start([...input.files], input.dataset.folder); input.value = ""; });
  }
  // A dropped folder: walk its entries (read in batches until one comes back empty).
  async function walk(entry, prefix, out) {
    if (entry.isFile) {
      const file = await new Promise((ok, fail) => entry.file(ok, fail));
      out.push([file, prefix + entry.name]);
      return;
    }
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) return;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
    }
  }
  const zone = document.getElementById("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const folder = document.getElementById("drop-folder").value;
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
    if (!entries.length || entries.some((x) => !x)) { start([...e.dataTransfer.files], folder); return; }
    (async () => {
      const found = [];
      for (const entry of entries) await walk(entry, "", found);
      for (const [file, name] of found) upload(file, folder, name);
    })();
  });
})();
