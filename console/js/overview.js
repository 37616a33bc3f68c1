// Overview: health, the NATS server, connections, and the publish and
// delivery rates of the last five minutes (GET /stats, once a second).

import { html, useEffect, useRef, useState, usePoll, num, rate, duration, Badge, ProblemBox } from "./lib.js";
import { api } from "./api.js";
import { TimeChart } from "./chart.js";

const KEEP = 300;

/** /stats polled with `since`, its samples accumulated (five minutes). */
function useStats() {
  const since = useRef(0);
  const samples = useRef([]);
  const [version, setVersion] = useState(0);
  const state = usePoll(async () => {
    const stats = await api(`/stats?since=${since.current}`);
    if (stats.samples.length) {
      samples.current = samples.current.concat(stats.samples).slice(-KEEP);
      since.current = stats.samples[stats.samples.length - 1].t;
      setVersion((v) => v + 1);
    }
    return stats;
  }, 1000);
  return { ...state, samples: samples.current, version };
}

function columns(samples, ...keys) {
  return [samples.map((s) => s.t / 1000), ...keys.map((k) => samples.map((s) => s[k]))];
}

function Card({ label, value, sub }) {
  return html`<div class="card"><div class="label">${label}</div><div class="value">${value}</div>${sub && html`<div class="sub">${sub}</div>`}</div>`;
}

export function Overview() {
  const health = usePoll(() => api("/healthz", { raw: true }).then((r) => r.json()), 5000);
  const stats = useStats();
  const h = health.data;
  const st = stats.data;
  const last = stats.samples[stats.samples.length - 1];
  const published = () => columns(stats.samples, "published", "publish_errors");
  const delivered = () => columns(stats.samples, "delivered", "shed");
  const [pubData, setPub] = useState(published());
  const [delData, setDel] = useState(delivered());
  useEffect(() => {
    setPub(published());
    setDel(delivered());
  }, [stats.version]);

  const server = h?.nats?.server;
  return html`<section class="overview">
    <h1>Overview</h1>
    <${ProblemBox} error=${stats.error || health.error} />
    <div class="cards">
      <${Card} label="Health" value=${h ? html`<${Badge} status=${h.status} />` : "…"}
        sub=${h && (h.nats.last_error || (h.nats.jetstream.reachable ? "JetStream reachable" : "JetStream not reachable"))} />
      <${Card} label="NATS server" value=${server ? server.name : h ? "not connected" : "…"}
        sub=${server && `${server.address} · v${server.version}`} />
      <${Card} label="Gateway" value=${h ? "v" + h.version : "…"} sub=${st && `up ${duration(st.uptime_secs)} · ${num(h?.nats.reconnects)} reconnects`} />
      <${Card} label="Sockets" value=${st ? num(st.gauges.websockets) : "…"} sub=${st && `${num(st.gauges.sse_streams)} SSE streams`} />
      <${Card} label="Subscriptions" value=${st ? num(st.gauges.live_subscriptions + st.gauges.replay_subscriptions) : "…"}
        sub=${st && `${num(st.gauges.live_subscriptions)} live · ${num(st.gauges.replay_subscriptions)} replay`} />
      <${Card} label="Publish rate" value=${last ? rate(last.published) : "…"} sub=${st && `${num(st.totals.published)} since start`} />
      <${Card} label="Delivery rate" value=${last ? rate(last.delivered) : "…"} sub=${st && `${num(st.totals.delivered)} frames since start`} />
      <${Card} label="Shed" value=${st ? num(st.totals.dropped + st.totals.conflated) : "…"}
        sub=${st && `${num(st.totals.dropped)} dropped · ${num(st.totals.conflated)} conflated · ${num(st.totals.slow_consumer_closes)} closed`} />
    </div>
    <div class="charts">
      <${TimeChart} title="Published (msgs/s)" series=${["published", "errors"]} data=${pubData} />
      <${TimeChart} title="Delivered to subscribers (frames/s)" series=${["delivered", "shed"]} data=${delData} />
    </div>
    ${h && Object.keys(h.streams).length > 0 && html`<h2>Declared streams</h2>
      <table class="grid compact">
        <thead><tr><th>Stream</th><th>Reconciliation</th><th>Detail</th></tr></thead>
        <tbody>${Object.entries(h.streams).map(([name, r]) => html`<tr>
          <td><a href=${"#/streams/" + encodeURIComponent(name)}>${name}</a></td>
          <td><${Badge} status=${r.status} /></td>
          <td class="muted">${r.error || (r.drift || []).map((d) => d.field).join(", ") || (r.applied || []).join(", ")}</td>
        </tr>`)}</tbody>
      </table>`}
  </section>`;
}
