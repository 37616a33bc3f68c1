// One stream: its config and state, consumers, messages by sequence, the
// last message on a subject, and purge (behind a typed confirmation).

import { html, useEffect, useState, usePoll, num, bytes, ago, Badge, ProblemBox } from "./lib.js";
import { api } from "./api.js";
import { reconcileStatus } from "./streams.js";

const enc = encodeURIComponent;

function Config({ config }) {
  const rows = Object.entries(config).filter(([, v]) => v !== null && v !== undefined);
  return html`<table class="kv">${rows.map(([k, v]) => html`<tr><th>${k}</th><td><code>${Array.isArray(v) ? v.join(", ") : String(v)}</code></td></tr>`)}</table>`;
}

function Drift({ report }) {
  if (!report) return null;
  return html`<div class="drift">
    Reconciliation: <${Badge} status=${report.status} />
    ${report.error && html` <span class="muted">${report.error}</span>`}
    ${report.drift?.length > 0 && html`<table class="grid compact"><thead><tr><th>Key</th><th>Declared</th><th>Live</th><th>Why</th></tr></thead>
      <tbody>${report.drift.map((d) => html`<tr><td>${d.field}</td><td><code>${JSON.stringify(d.desired)}</code></td><td><code>${JSON.stringify(d.current)}</code></td><td class="muted">${d.error || ""}</td></tr>`)}</tbody></table>`}
  </div>`;
}

function Consumers({ name }) {
  const { data, error } = usePoll(() => api(`/admin/streams/${enc(name)}/consumers`), 5000, [name]);
  if (error) return html`<${ProblemBox} error=${error} />`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  if (!data.length) return html`<p class="muted">No consumers.</p>`;
  return html`<table class="grid compact">
    <thead><tr><th>Consumer</th><th>Filter</th><th>Deliver</th><th class="num">Delivered seq</th><th class="num">Ack floor</th><th class="num">Pending</th><th class="num">Ack pending</th><th class="num">Redelivered</th><th>Config</th></tr></thead>
    <tbody>${data.map((c) => html`<tr key=${c.name}>
      <td>${c.name}</td><td><code>${c.config.filter_subject || "(all)"}</code></td><td>${c.config.deliver_policy || ""}</td>
      <td class="num">${num(c.state.delivered_seq)}</td><td class="num">${num(c.state.ack_floor_seq)}</td>
      <td class="num">${num(c.state.num_pending)}</td><td class="num">${num(c.state.num_ack_pending)}</td>
      <td class="num">${num(c.state.num_redelivered)}</td><td>${reconcileStatus(c)}</td>
    </tr>`)}</tbody>
  </table>`;
}

function Message({ msg }) {
  if (!msg) return null;
  const text = msg.encoding ? String(msg.data) : JSON.stringify(msg.data, null, 2);
  return html`<div class="message">
    <div class="meta"><b>#${num(msg.seq)}</b> <code>${msg.subject}</code> <span class="muted">${msg.time}</span>
      ${msg.encoding && html` <span class="muted">(${msg.encoding})</span>`}</div>
    ${Object.keys(msg.headers || {}).length > 0 && html`<div class="headers">${Object.entries(msg.headers).map(([k, v]) => html`<div><code>${k}: ${v.join(", ")}</code></div>`)}</div>`}
    <pre>${text}</pre>
  </div>`;
}

function Browser({ stream }) {
  const [seq, setSeq] = useState(String(stream.state.last_seq || ""));
  const [subject, setSubject] = useState("");
  const [result, setResult] = useState({ msg: null, error: null });
  const load = async (path) => {
    try {
      const msg = await api(path);
      setSeq(String(msg.seq));
      setResult({ msg, error: null });
    } catch (error) {
      setResult({ msg: null, error });
    }
  };
  const bySeq = (n) => {
    const s = Math.max(1, n);
    setSeq(String(s));
    load(`/admin/streams/${enc(stream.name)}/messages/${s}`);
  };
  // Show the newest message at once (once per stream page).
  useEffect(() => {
    if (stream.state.last_seq) bySeq(stream.state.last_seq);
  }, [stream.name]);
  const current = Number(result.msg?.seq || seq || stream.state.last_seq);
  return html`<div class="browser">
    <form class="row" onSubmit=${(e) => { e.preventDefault(); bySeq(Number(seq)); }}>
      <label>Sequence <input name="seq" type="number" min="1" value=${seq} onInput=${(e) => setSeq(e.target.value)} /></label>
      <button type="submit">Show</button>
      <button type="button" onClick=${() => bySeq(current - 1)}>‹ Previous</button>
      <button type="button" onClick=${() => bySeq(current + 1)}>Next ›</button>
      <button type="button" onClick=${() => bySeq(stream.state.last_seq)}>Last</button>
    </form>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); load(`/admin/streams/${enc(stream.name)}/messages/last/${enc(subject)}`); }}>
      <label>Last message on subject <input name="subject" class="wide" placeholder=${stream.config.subjects[0]} value=${subject} onInput=${(e) => setSubject(e.target.value)} /></label>
      <button type="submit" disabled=${!subject}>Show last</button>
    </form>
    <${ProblemBox} error=${result.error} />
    <${Message} msg=${result.msg} />
  </div>`;
}

function Purge({ stream, onDone }) {
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState("");
  const [subject, setSubject] = useState("");
  const [outcome, setOutcome] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const body = subject ? JSON.stringify({ subject }) : "{}";
    try {
      const r = await api(`/admin/streams/${enc(stream.name)}/purge`, {
        method: "POST", body, headers: { "Content-Type": "application/json" },
      });
      setOutcome({ text: `Purged ${num(r.purged)} messages.` });
      setOpen(false);
      setTyped("");
      onDone();
    } catch (error) {
      setOutcome({ error });
    }
  };
  return html`<div class="purge">
    ${!open && html`<button class="danger" onClick=${() => { setOpen(true); setOutcome(null); }}>Purge…</button>`}
    ${outcome?.text && html` <span class="ok">${outcome.text}</span>`}
    <${ProblemBox} error=${outcome?.error} />
    ${open && html`<form class="confirm" onSubmit=${submit}>
      <p><b>Purge removes messages from ${stream.name} for good.</b> ${subject ? `Only messages on ${subject}.` : `All ${num(stream.state.messages)} messages.`}</p>
      <label>Only this subject (optional) <input name="purge-subject" value=${subject} onInput=${(e) => setSubject(e.target.value)} /></label>
      <label>Type the stream name to confirm <input name="confirm" value=${typed} onInput=${(e) => setTyped(e.target.value)} autocomplete="off" /></label>
      <div class="actions">
        <button type="submit" class="danger" disabled=${typed !== stream.name}>Purge ${stream.name}</button>
        <button type="button" onClick=${() => setOpen(false)}>Cancel</button>
      </div>
    </form>`}
  </div>`;
}

export function Stream({ name }) {
  const [bump, setBump] = useState(0);
  const { data: s, error } = usePoll(() => api(`/admin/streams/${enc(name)}`), 2000, [name, bump]);
  return html`<section class="stream">
    <p class="crumbs"><a href="#/streams">Streams</a> / ${name}</p>
    <h1>${name}</h1>
    <${ProblemBox} error=${error} />
    ${s && html`
      <div class="cards">
        <div class="card"><div class="label">Messages</div><div class="value">${num(s.state.messages)}</div><div class="sub">${bytes(s.state.bytes)}</div></div>
        <div class="card"><div class="label">Sequences</div><div class="value">${num(s.state.first_seq)} – ${num(s.state.last_seq)}</div><div class="sub">${num(s.state.subjects)} subjects</div></div>
        <div class="card"><div class="label">Last message</div><div class="value">${ago(s.state.last_time)}</div><div class="sub">first ${ago(s.state.first_time)}</div></div>
        <div class="card"><div class="label">Declared</div><div class="value">${s.declared ? "yes" : "no"}</div><div class="sub">created ${ago(s.created)}</div></div>
      </div>
      <p><a class="button" href=${"#/tail?" + new URLSearchParams({ subject: s.config.subjects.join(","), deliver: "last_per_subject" })}>Tail this stream ›</a></p>
      <${Drift} report=${s.reconcile} />
      <div class="two">
        <div><h2>Configuration</h2><${Config} config=${s.config} /></div>
        <div><h2>Messages</h2><${Browser} stream=${s} /></div>
      </div>
      <h2>Consumers</h2>
      <${Consumers} name=${name} />
      <h2>Purge</h2>
      <${Purge} stream=${s} onDone=${() => setBump((b) => b + 1)} />
    `}
  </section>`;
}
