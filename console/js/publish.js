// Publish: one message through POST /publish/{subject}, with headers and a
// Nats-Msg-Id; shows the receipt (stream, seq, duplicate) or the problem.

import { html, useState, ProblemBox } from "./lib.js";
import { api } from "./api.js";

/** A funding rate as the collector sends it, stamped now. */
function example() {
  const now = Date.now();
  return {
    subject: "funding_rate.binance.perpetual.BTC-USDT",
    msgId: `funding_rate:binance:BTC-USDT:${now}`,
    body: JSON.stringify({
      exchange: "binance", market_type: "perpetual", symbol: "BTC-USDT", data_type: "funding_rate",
      ts_ms: now, collected_ts_ms: now + 37, publisher: "unified-collector", instrument_id: "BTCUSDT",
      current_funding_rate: "0.00010000", estimated_funding_rate: "0.00009871",
      next_funding_ts_ms: now + 4 * 3600 * 1000, funding_interval: "8h",
      mark_price: "91240.12", index_price: "91228.40", premium_index: "0.00012843",
    }, null, 2),
  };
}

function Receipt({ outcome }) {
  if (!outcome) return null;
  if (outcome.error) return html`<${ProblemBox} error=${outcome.error} />`;
  const r = outcome.receipt;
  return html`<div class="receipt" role="status">
    <b>${outcome.status} ${outcome.status === 200 ? "Stored" : "Published"}</b>
    ${r.stream
      ? html` in stream <a href=${"#/streams/" + encodeURIComponent(r.stream)}>${r.stream}</a> at seq <b class="seq">${r.seq}</b>${r.duplicate ? html` <span class="warn">(duplicate: the stream already had this Nats-Msg-Id)</span>` : ""}`
      : html` on core NATS (no stream captures <code>${r.subject}</code>)`}
    <pre>${JSON.stringify(r, null, 2)}</pre>
  </div>`;
}

export function Publish() {
  const [form, setForm] = useState(() => ({ ...example(), mode: "json", headers: [{ name: "", value: "" }] }));
  const [outcome, setOutcome] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (e) => setForm({ ...form, [key]: e.target.value });
  const setHeader = (i, key) => (e) => {
    const headers = form.headers.map((h, j) => (i === j ? { ...h, [key]: e.target.value } : h));
    if (i === headers.length - 1 && e.target.value) headers.push({ name: "", value: "" });
    setForm({ ...form, headers });
  };

  const submit = async (e) => {
    e.preventDefault();
    const headers = { "Content-Type": form.mode === "json" ? "application/json" : "text/plain; charset=utf-8" };
    if (form.mode === "json") {
      try {
        JSON.parse(form.body);
      } catch (err) {
        setOutcome({ error: { message: `The body is not valid JSON: ${err.message}` } });
        return;
      }
    }
    if (form.msgId.trim()) headers["Nats-Msg-Id"] = form.msgId.trim();
    for (const h of form.headers) if (h.name.trim()) headers[`NatsH-${h.name.trim()}`] = h.value;
    setBusy(true);
    try {
      const { status, body } = await api(`/publish/${encodeURIComponent(form.subject.trim())}`, {
        method: "POST", body: form.body, headers, withStatus: true,
      });
      setOutcome({ status, receipt: body });
    } catch (error) {
      setOutcome({ error });
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="publish">
    <h1>Publish</h1>
    <form onSubmit=${submit} class="stack">
      <label>Subject <input name="subject" class="wide" value=${form.subject} onInput=${set("subject")} required /></label>
      <div class="row">
        <label class="check"><input type="radio" name="mode" value="json" checked=${form.mode === "json"} onChange=${set("mode")} /> JSON</label>
        <label class="check"><input type="radio" name="mode" value="text" checked=${form.mode === "text"} onChange=${set("mode")} /> Text</label>
        <button type="button" class="link" onClick=${() => setForm({ ...form, ...example() })}>Fill in an example</button>
      </div>
      <label>Body <textarea name="body" rows="12" spellcheck="false" value=${form.body} onInput=${set("body")}></textarea></label>
      <label>Nats-Msg-Id (deduplication) <input name="msg_id" class="wide" value=${form.msgId} onInput=${set("msgId")} /></label>
      <fieldset><legend>NATS headers</legend>
        ${form.headers.map((h, i) => html`<div class="row">
          <input placeholder="Name" aria-label="Header name" value=${h.name} onInput=${setHeader(i, "name")} />
          <input placeholder="Value" aria-label="Header value" class="wide" value=${h.value} onInput=${setHeader(i, "value")} />
        </div>`)}
      </fieldset>
      <div class="actions"><button type="submit" class="primary" disabled=${busy}>Publish</button></div>
    </form>
    <${Receipt} outcome=${outcome} />
  </section>`;
}
