// Shared pieces: the template tag, hooks, the hash router, formatting and
// polling. Preact, its hooks and htm are vendored UMD scripts (globals).

export const { h, render } = window.preact;
export const { useState, useEffect, useRef, useMemo, useCallback } = window.preactHooks;
export const html = window.htm.bind(h);

// ---- Routing: every view has its own URL, `#/view/arg?query`.

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || "overview", arg: parts[1] || "", query: new URLSearchParams(query) };
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const changed = () => setRoute(parseHash());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

/** Rewrites the query of the current view's URL without a navigation. */
export function replaceQuery(view, params) {
  const query = new URLSearchParams(params).toString();
  history.replaceState(null, "", `#/${view}${query ? "?" + query : ""}`);
}

// ---- Polling: at most one request in flight, paused while the tab is hidden.

export function usePoll(load, intervalMs, deps = []) {
  const [state, setState] = useState({ data: null, error: null, at: 0 });
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const tick = async () => {
      if (stopped) return;
      if (!document.hidden) {
        try {
          const data = await load();
          if (!stopped) setState({ data, error: null, at: Date.now() });
        } catch (error) {
          if (!stopped) setState((s) => ({ ...s, error }));
        }
      }
      if (!stopped) timer = setTimeout(tick, intervalMs);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
  return state;
}

// ---- Formatting.

const nf = new Intl.NumberFormat("en-US");
export const num = (n) => (n == null ? "–" : nf.format(n));

export function rate(n) {
  if (n == null) return "–";
  if (n >= 1000) return `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)}k/s`;
  return `${n >= 10 ? Math.round(n) : n.toFixed(1)}/s`;
}

export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function duration(secs) {
  if (secs == null) return "–";
  const d = Math.floor(secs / 86400), hh = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60), s = Math.floor(secs % 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** "3 s ago" for an RFC 3339 time; JetStream's zero time is "never". */
export function ago(time) {
  if (!time || time.startsWith("0001-")) return "never";
  const secs = Math.max(0, (Date.now() - Date.parse(time)) / 1000);
  return secs < 1 ? "just now" : `${duration(secs)} ago`;
}

export const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour12: false });

// ---- Small shared components.

/** Text with `code` spans, as the hints are written. */
export function Prose({ text }) {
  return html`${String(text).split("`").map((part, i) => (i % 2 ? html`<code>${part}</code>` : part))}`;
}

/** A problem document (or a network failure) as an operator reads it. */
export function ProblemBox({ error }) {
  if (!error) return null;
  const p = error.problem;
  if (!p) return html`<div class="problem" role="alert"><b>Request failed</b> ${error.message}</div>`;
  return html`<div class="problem" role="alert">
    <b>${p.status} ${p.title}</b> <code>${p.code}</code>
    <div>${p.detail}</div>
    ${error.hint && html`<div class="hint"><${Prose} text=${error.hint} /></div>`}
  </div>`;
}

export function Badge({ status }) {
  return html`<span class=${"badge badge-" + String(status).replace(/_/g, "-")}>${status}</span>`;
}

/** An inline SVG line of the last values (no axes): a stream's msgs/s. */
export function Sparkline({ values, width = 120, height = 24 }) {
  if (!values || values.length < 2) return html`<svg class="spark" width=${width} height=${height}></svg>`;
  const max = Math.max(1, ...values);
  const step = width / (values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(" ");
  return html`<svg class="spark" width=${width} height=${height} viewBox="0 0 ${width} ${height}">
    <polyline points=${points} />
  </svg>`;
}
