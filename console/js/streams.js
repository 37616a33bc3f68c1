// Streams: every JetStream stream with its size, sequences, consumers, a
// live msgs/s sparkline (from the growth of last_seq between polls, once a
// second) and its reconciliation status.

import { html, useRef, usePoll, num, bytes, ago, rate, Badge, ProblemBox, Sparkline } from "./lib.js";
import { api } from "./api.js";

const POINTS = 60;

/** Per stream: the last poll's (time, last_seq) and the rates seen. */
function useRates(streams, polledAt) {
  const seen = useRef(new Map());
  const counted = useRef(0);
  // Once per poll, not once per render.
  if (!streams || polledAt === counted.current) return seen.current;
  counted.current = polledAt;
  const now = polledAt;
  for (const s of streams) {
    const prev = seen.current.get(s.name);
    const entry = prev || { rates: [] };
    if (prev && now > prev.t) {
      const r = (Math.max(0, s.state.last_seq - prev.seq) * 1000) / (now - prev.t);
      entry.rates = entry.rates.concat(r).slice(-POINTS);
    }
    entry.t = now;
    entry.seq = s.state.last_seq;
    seen.current.set(s.name, entry);
  }
  return seen.current;
}

export function reconcileStatus(stream) {
  if (!stream.declared) return html`<span class="muted">not declared</span>`;
  return html`<${Badge} status=${stream.reconcile?.status || "pending"} />`;
}

export function Streams() {
  const { data, error, at } = usePoll(() => api("/admin/streams"), 1000);
  const rates = useRates(data, at);
  const streams = (data || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  return html`<section>
    <h1>Streams</h1>
    <${ProblemBox} error=${error} />
    ${data && streams.length === 0 && html`<p class="muted">No streams. Declare them under <code>streams:</code> in the config, or create one with <code>POST /admin/streams</code>.</p>`}
    ${streams.length > 0 && html`<table class="grid streams">
      <thead><tr>
        <th>Stream</th><th>Subjects</th><th class="num">Messages</th><th class="num">Bytes</th>
        <th class="num">Consumers</th><th class="num">First seq</th><th class="num">Last seq</th><th>Last message</th>
        <th class="num">Msgs/s</th><th>Last minute</th><th>Config</th>
      </tr></thead>
      <tbody>${streams.map((s) => {
        const r = rates.get(s.name)?.rates || [];
        return html`<tr key=${s.name} data-stream=${s.name}>
          <td><a href=${"#/streams/" + encodeURIComponent(s.name)}>${s.name}</a></td>
          <td class="subjects">${s.config.subjects.map((x) => html`<code>${x}</code> `)}</td>
          <td class="num">${num(s.state.messages)}</td>
          <td class="num">${bytes(s.state.bytes)}</td>
          <td class="num">${num(s.state.consumer_count)}</td>
          <td class="num">${num(s.state.first_seq)}</td>
          <td class="num">${num(s.state.last_seq)}</td>
          <td title=${s.state.last_time}>${ago(s.state.last_time)}</td>
          <td class="num rate">${r.length ? rate(r[r.length - 1]) : "…"}</td>
          <td><${Sparkline} values=${r} /></td>
          <td>${reconcileStatus(s)}</td>
        </tr>`;
      })}</tbody>
    </table>`}
  </section>`;
}
