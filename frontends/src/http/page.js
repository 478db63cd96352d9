// hashd's page: many uploads at once with progress, results with copy and
// compare, a live list of recent jobs; on a job page, the job followed
// through its event stream. Plain JS, embedded in the binary; the page
// works without it (the plain form posts to /uploadfile-html/).
"use strict";
(() => {
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
  const size = (n) => {
    let i = 0;
    while (n >= 1024 && i < UNITS.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(n < 10 ? 2 : 1) : String(n)) + " " + UNITS[i];
  };
  const mbps = (bps) => (bps / 1e6).toFixed(1) + " MB/s";
  const eta = (s) => {
    if (!isFinite(s)) return "…";
    s = Math.ceil(s);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  };
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    e.append(...kids);
    return e;
  };
  const FINAL = (s) => s === "SUCCESS" || s === "FAILURE";

  // A copy button for `text`; says whether it worked.
  const copyButton = (text, what) => {
    const b = el("button", { type: "button", class: "copy", text: "Copy", "aria-label": "Copy " + what });
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch {
        b.textContent = "Copy failed: select the hash";
      }
      setTimeout(() => (b.textContent = "Copy"), 2000);
    });
    return b;
  };

  // A job's digests as [algorithm, hex] pairs, in the job's order.
  const digests = (job) => {
    const all = Object.entries(job.hashes || {});
    return all.length ? all : job.hash ? [[job.algorithm, job.hash]] : [];
  };

  // What a pasted expected hash says against a job's digests: MATCH when it
  // equals any of them (the algorithm named when there are several, as
  // digests of one length can come from several algorithms), else MISMATCH.
  const verdictOf = (pasted, pairs) => {
    const want = pasted.trim().toLowerCase();
    if (want === "") return "";
    const hit = pairs.find(([, hex]) => hex === want);
    if (!hit) return "MISMATCH";
    return pairs.length > 1 ? "MATCH (" + hit[0] + ")" : "MATCH";
  };

  // The per-file result: status, every digest with its copy button, size,
  // permalink, compare.
  const renderJob = (box, job) => {
    box.replaceChildren();
    box.append(el("p", {}, el("span", { class: "status " + job.status, text: job.status }),
      job.size != null ? " · " + size(job.size) : "", " · ",
      el("a", { href: "/gethash-form/?file_id=" + encodeURIComponent(job.id), text: "job page" })));
    const pairs = digests(job);
    for (const [algo, hex] of pairs) {
      box.append(el("p", { class: "hashline digest" }, el("span", { class: "algo", text: algo }), " ",
        el("code", { class: "hash", "data-algo": algo, text: hex }), " ",
        copyButton(hex, algo + " hash of " + (job.name || job.id))));
    }
    if (pairs.length) {
      const id = "expect-" + job.id;
      const verdict = el("output", { for: id, class: "verdict", "aria-live": "polite" });
      const input = el("input", { id, type: "text", class: "expect", autocomplete: "off", spellcheck: "false", placeholder: "paste a hash to compare" });
      input.addEventListener("input", () => {
        verdict.textContent = verdictOf(input.value, pairs);
        verdict.className = "verdict " + verdict.textContent.split(" ")[0];
      });
      box.append(el("p", {}, el("label", { for: id, text: "Expected hash " }), input, " ", verdict));
    }
    if (job.error) box.append(el("p", { class: "error", text: job.error }));
  };

  // Follows a PENDING job through GET /jobs/ID/events until it is final.
  const follow = (id, onState, onProgress) => {
    const es = new EventSource("/jobs/" + encodeURIComponent(id) + "/events");
    es.addEventListener("state", (e) => {
      const job = JSON.parse(e.data);
      onState(job);
      if (FINAL(job.status)) es.close();
    });
    es.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
    return es;
  };

  // The upload page.
  const form = document.getElementById("upload");
  if (form) {
    const input = document.getElementById("file");
    const algos = () => [...document.querySelectorAll("#algos input[name=algo]:checked")].map((c) => c.value);
    const list = document.getElementById("files");
    const drop = document.getElementById("drop");
    const max = Number(form.dataset.maxUpload);
    const recent = document.getElementById("recent");
    input.multiple = true;
    for (const e of document.querySelectorAll(".js")) e.hidden = false;

    const refreshRecent = async () => {
      try {
        const r = await fetch("/jobs?limit=10");
        if (!r.ok) return;
        const page = await r.json();
        recent.replaceChildren(...page.jobs.map((j) => el("li", {},
          el("span", { class: "status " + j.status, text: j.status }), " ",
          el("a", { href: "/gethash-form/?file_id=" + encodeURIComponent(j.id), text: j.name || j.id }), " ",
          el("code", { text: j.hash ? j.hash.slice(0, 16) + "…" : "" }))));
      } catch {
        // The list is a convenience: the next refresh tries again.
      }
    };

    const start = (file) => {
      const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + file.name });
      const info = el("span", { class: "info", role: "status", text: "starting" });
      const cancel = el("button", { type: "button", text: "Cancel", "aria-label": "Cancel " + file.name });
      const result = el("div", { class: "result" });
      const row = el("li", { class: "file" },
        el("div", {}, el("strong", { class: "fname", text: file.name }), " ", el("span", { text: size(file.size) })),
        el("div", { class: "bar" }, bar, " ", info, " ", cancel), result);
      list.prepend(row);
      const failed = (status, reason) => {
        cancel.remove();
        row.classList.add("failed");
        info.textContent = (status ? "error " + status + ": " : "error: ") + reason;
      };
      if (file.size > max) {
        failed(413, "upload exceeds the limit of " + max + " bytes (" + size(max) + ")");
        return;
      }
      const xhr = new XMLHttpRequest();
      const samples = [];
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const now = performance.now();
        samples.push([now, e.loaded]);
        while (samples.length > 2 && now - samples[0][0] > 2000) samples.shift();
        const [t, b] = samples[0];
        const bps = now > t ? (e.loaded - b) / ((now - t) / 1000) : 0;
        const pct = (e.loaded / e.total) * 100;
        bar.value = pct;
        info.textContent = pct.toFixed(0) + "% · " + mbps(bps) + " · ETA " + eta(bps > 0 ? (e.total - e.loaded) / bps : Infinity);
      });
      xhr.upload.addEventListener("load", () => {
        bar.value = 100;
        info.textContent = "uploaded, hashing";
      });
      xhr.addEventListener("load", () => {
        cancel.remove();
        let v = {};
        try {
          v = JSON.parse(xhr.responseText);
        } catch {
          // Not hashd's JSON (a proxy's page): the status says enough.
        }
        if (xhr.status !== 200 || !v.success) {
          failed(xhr.status, v.error || xhr.statusText || "no answer");
          return;
        }
        const job = { ...v, name: v.name || file.name };
        info.textContent = job.status;
        renderJob(result, job);
        if (!FINAL(job.status)) {
          follow(job.id, (j) => {
            info.textContent = j.status;
            renderJob(result, j);
            if (FINAL(j.status)) refreshRecent();
          }, (p) => {
            info.textContent = "hashing: " + size(p.bytes) + (p.total ? " of " + size(p.total) : "") + " · " + mbps(p.bytes_per_sec);
          });
        } else {
          refreshRecent();
        }
      });
      xhr.addEventListener("error", () => failed(0, "the connection failed"));
      xhr.addEventListener("abort", () => {
        cancel.remove();
        row.classList.add("cancelled");
        info.textContent = "cancelled";
      });
      cancel.addEventListener("click", () => xhr.abort());
      const body = new FormData();
      body.append("file", file, file.name);
      // The ticked algorithms as ?algo=md5,sha256; none ticked is md5.
      const chosen = algos();
      xhr.open("POST", "/uploadfile/" + (chosen.length ? "?algo=" + encodeURIComponent(chosen.join(",")) : ""));
      xhr.send(body);
    };

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const files = [...input.files];
      if (files.length === 0) {
        input.focus();
        return;
      }
      files.forEach(start);
      // The form is free again for more files while these are in flight.
      input.value = "";
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      [...e.dataTransfer.files].forEach(start);
    });
    refreshRecent();
    setInterval(() => document.hidden || refreshRecent(), 5000);
  }

  // A job page: copy button, and a PENDING job followed live.
  const job = document.getElementById("job");
  if (job) {
    for (const hash of document.querySelectorAll("code.hash")) {
      hash.after(" ", copyButton(hash.textContent, (hash.dataset.algo || "") + " hash"));
    }
    if (job.dataset.status === "PENDING") {
      const live = document.getElementById("live");
      live.hidden = false;
      follow(job.dataset.id, (j) => {
        // The final page is the server's: load it.
        if (FINAL(j.status)) location.reload();
      }, (p) => {
        live.textContent = "Hashing: " + size(p.bytes) + (p.total ? " of " + size(p.total) : "") + " (" + mbps(p.bytes_per_sec) + "); this page updates by itself.";
      });
    }
  }
})();
