// The Tail view's socket and buffer, apart from rendering: it takes
// thousands of frames a second, keeps a bounded number of rows (and bytes),
// and only marks itself dirty; the view renders at most ten times a second.

import { socketUrl } from "./api.js";

/** Rows keep the frame's text, parsed again only when shown. */
const MAX_BYTES = 16 * 1024 * 1024;

export const CLOSE_REASONS = {
  1000: "closed",
  1001: "the gateway is shutting down",
  1006: "the connection was lost",
  1008: "closed by the gateway (slow consumer, ping timeout or policy)",
  1009: "a frame was too large",
  1011: "the gateway failed",
};

export class Feed {
  constructor({ subjects, policy, deliver, startSeq, maxRows, filter }) {
    Object.assign(this, { subjects, policy, deliver, startSeq, maxRows });
    this.setFilter(filter);
    this.rows = [];
    this.bytes = 0;
    this.nextId = 1;
    this.total = 0;
    this.shown = 0;
    this.dropped = 0;
    this.windowCount = 0;
    this.rate = 0;
    this.paused = false;
    this.notes = [];
    this.state = "connecting";
    this.dirty = true;
    this.rateTimer = setInterval(() => {
      this.rate = this.windowCount;
      this.windowCount = 0;
      this.dirty = true;
    }, 1000);
  }

  async start() {
    let url;
    try {
      url = await socketUrl({ policy: this.policy });
    } catch (err) {
      this.fail(err.problem ? `${err.problem.code}: ${err.problem.detail}` : err.message, err);
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.state = "open";
      this.subjects.forEach((subject, i) => {
        const op = { op: "subscribe", subject, id: String(i + 1) };
        if (this.deliver && this.deliver !== "new") op.deliver = this.deliver;
        if (this.deliver === "start_seq") op.start_seq = Number(this.startSeq) || 1;
        ws.send(JSON.stringify(op));
      });
      this.dirty = true;
    };
    ws.onmessage = (event) => this.frame(event.data);
    ws.onclose = (event) => {
      if (this.stopped) return;
      const why = CLOSE_REASONS[event.code] || `code ${event.code}`;
      this.state = "closed";
      this.note(`Socket closed: ${why}${event.reason ? ` (${event.reason})` : ""}.`, "error");
    };
  }

  fail(text, error) {
    this.state = "failed";
    this.error = error;
    this.note(text, "error");
  }

  stop() {
    this.stopped = true;
    clearInterval(this.rateTimer);
    if (this.ws && this.ws.readyState <= 1) this.ws.close(1000);
  }

  note(text, kind = "info") {
    this.notes = this.notes.concat({ text, kind, t: Date.now() }).slice(-5);
    this.dirty = true;
  }

  setFilter(filter) {
    this.filter = (filter || "").toLowerCase();
    if (this.rows && this.filter) {
      this.rows = this.rows.filter((r) => r.raw.toLowerCase().includes(this.filter));
      this.bytes = this.rows.reduce((n, r) => n + r.raw.length, 0);
    }
    this.dirty = true;
  }

  clear() {
    this.rows = [];
    this.bytes = 0;
    this.dirty = true;
  }

  frame(raw) {
    let f;
    try {
      f = JSON.parse(raw);
    } catch {
      return;
    }
    switch (f.type) {
      case "message":
        this.total++;
        this.windowCount++;
        if (this.paused || (this.filter && !raw.toLowerCase().includes(this.filter))) return;
        this.shown++;
        this.rows.push({ id: this.nextId++, at: Date.now(), subject: f.subject, seq: f.seq, raw });
        this.bytes += raw.length;
        while (this.rows.length > this.maxRows || (this.bytes > MAX_BYTES && this.rows.length > 1)) {
          this.bytes -= this.rows.shift().raw.length;
        }
        this.dirty = true;
        return;
      case "subscribed":
        return this.note(`Subscribed to ${f.subject}.`);
      case "caught_up":
        return this.note(`Replay of ${f.subject} caught up at seq ${f.seq}; live messages follow.`);
      case "gap":
        return this.note(`Messages ${f.from}–${f.to} had aged out of the stream.`, "warn");
      case "dropped":
        this.dropped += f.count;
        this.dirty = true;
        return;
      case "error":
        return this.note(`${f.code}: ${f.message}`, "error");
      default:
        return;
    }
  }
}

/** The payload of a row's frame, compact or pretty, cut to `limit`. */
export function payloadText(row, pretty, limit = 4000) {
  const key = pretty ? "pretty" : "compact";
  if (row[key] === undefined) {
    const f = JSON.parse(row.raw);
    const text = f.encoding ? String(f.data) : JSON.stringify(f.data, null, pretty ? 2 : 0);
    row[key] = text.length > limit ? `${text.slice(0, limit)}… (${text.length} chars)` : text;
    row.headers = f.headers;
  }
  return row[key];
}
