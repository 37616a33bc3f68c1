// Tail: watch a subject pattern live over the gateway's own WebSocket.
// A link with `?subject=` starts at once: #/tail?subject=orderbook.binance.%3E

import { html, useEffect, useRef, useState, replaceQuery, num, clock, Prose } from "./lib.js";
import { Feed, payloadText } from "./tail-feed.js";

/** Renders per second, at most: the feed may take thousands of frames. */
const RENDER_MS = 100;
const ROW_CHOICES = [100, 500, 2000];
/** Rows in the page while live (a screenful and more); pause to see all kept. */
const LIVE_ROWS = 100;

function formFrom(query) {
  return {
    subject: query.get("subject") || "",
    policy: query.get("policy") === "drop" ? "drop" : "conflate",
    deliver: query.get("deliver") || "new",
    startSeq: query.get("start_seq") || "1",
    maxRows: Number(query.get("rows")) || 500,
  };
}

function Row({ row, pretty }) {
  const text = payloadText(row, pretty);
  return html`<tr>
    <td class="time">${clock(row.at)}</td>
    <td class="subject" title=${row.subject}><code>${row.subject}</code></td>
    <td class="num">${row.seq ?? ""}</td>
    <td class=${pretty ? "payload pretty" : "payload"}>${pretty ? html`<pre>${text}</pre>` : text}</td>
  </tr>`;
}

export function Tail({ query }) {
  const [form, setForm] = useState(() => formFrom(query));
  const [filter, setFilter] = useState("");
  const [pretty, setPretty] = useState(false);
  const [, setTick] = useState(0);
  const feed = useRef(null);
  const renders = useRef(0);

  const stop = () => {
    feed.current?.stop();
    feed.current = null;
    setTick((t) => t + 1);
  };
  const start = (f = form) => {
    feed.current?.stop();
    const subjects = f.subject.split(/[\s,]+/).filter(Boolean);
    if (!subjects.length) return;
    const params = { subject: subjects.join(","), policy: f.policy };
    if (f.deliver !== "new") params.deliver = f.deliver;
    if (f.deliver === "start_seq") params.start_seq = f.startSeq;
    replaceQuery("tail", params);
    feed.current = new Feed({ ...f, subjects, filter });
    feed.current.start();
    setTick((t) => t + 1);
  };

  // A deep link starts tailing at once; leaving the view closes the socket.
  useEffect(() => {
    if (form.subject) start();
    return () => feed.current?.stop();
  }, []);

  // Render on a clock, never per frame.
  useEffect(() => {
    const timer = setInterval(() => {
      if (feed.current?.dirty) {
        feed.current.dirty = false;
        setTick((t) => t + 1);
      }
    }, RENDER_MS);
    return () => clearInterval(timer);
  }, []);

  const f = feed.current;
  renders.current++;
  const set = (key) => (e) => setForm({ ...form, [key]: e.target.value });
  const kept = f ? f.rows.length : 0;
  const rows = f ? f.rows.slice(f.paused ? 0 : -LIVE_ROWS).reverse() : [];
  return html`<section class="tail">
    <h1>Tail</h1>
    <form class="row tail-form" onSubmit=${(e) => { e.preventDefault(); start(); }}>
      <label>Subject <input name="subject" class="wide" placeholder="orderbook.binance.>" value=${form.subject} onInput=${set("subject")} /></label>
      <label>Slow-consumer policy <select name="policy" value=${form.policy} onChange=${set("policy")}>
        <option value="conflate">conflate (latest per subject)</option><option value="drop">drop (count them)</option></select></label>
      <label>Deliver <select name="deliver" value=${form.deliver} onChange=${set("deliver")}>
        <option value="new">new (live)</option><option value="last_per_subject">last per subject, then live</option>
        <option value="all">all stored, then live</option><option value="start_seq">from sequence</option></select></label>
      ${form.deliver === "start_seq" && html`<label>Seq <input name="start_seq" type="number" min="1" value=${form.startSeq} onInput=${set("startSeq")} /></label>`}
      <label>Rows kept <select name="rows" value=${form.maxRows} onChange=${(e) => setForm({ ...form, maxRows: Number(e.target.value) })}>
        ${ROW_CHOICES.map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
      <button type="submit" class="primary">${f ? "Restart" : "Start"}</button>
      ${f && html`<button type="button" onClick=${stop}>Stop</button>`}
    </form>
    <div class="row tail-bar">
      <button type="button" name="pause" disabled=${!f} onClick=${() => { f.paused = !f.paused; f.dirty = true; }}>${f?.paused ? "Resume" : "Pause"}</button>
      <button type="button" name="clear" disabled=${!f} onClick=${() => f.clear()}>Clear</button>
      <label>Filter <input name="filter" placeholder="text in subject or payload" value=${filter}
        onInput=${(e) => { setFilter(e.target.value); f?.setFilter(e.target.value); }} /></label>
      <label class="check"><input type="checkbox" name="pretty" checked=${pretty} onChange=${(e) => setPretty(e.target.checked)} /> Pretty JSON</label>
      <span class="stats" data-renders=${renders.current}>
        ${f ? html`<b class="state state-${f.paused ? "paused" : f.state}">${f.paused ? "paused" : f.state}</b>
          <span class="rate">${num(f.rate)}</span> msgs/s · <span class="total">${num(f.total)}</span> received
          · <span class="kept">${num(kept)}</span> kept${f.dropped ? html` · <span class="warn">${num(f.dropped)} dropped by the gateway</span>` : ""}`
        : html`<span class="muted">not tailing</span>`}
      </span>
    </div>
    ${f && !f.paused && kept > rows.length && html`<div class="note">Showing the newest ${num(rows.length)} of ${num(kept)} rows kept; pause to see them all.</div>`}
    ${f?.notes.map((n) => html`<div class=${"note note-" + n.kind}>${clock(n.t)} ${n.text}</div>`)}
    ${f?.error?.hint && html`<div class="hint"><${Prose} text=${f.error.hint} /></div>`}
    <table class="grid tail-rows">
      <thead><tr><th>Received</th><th>Subject</th><th class="num">Seq</th><th>Payload</th></tr></thead>
      <tbody>${rows.map((row) => html`<${Row} key=${row.id} row=${row} pretty=${pretty} />`)}</tbody>
    </table>
    ${!f && html`<p class="muted">Enter a subject pattern (<code>*</code> matches one token, <code>></code> the rest) and press Start. Stream subjects can start from stored messages.</p>`}
  </section>`;
}
