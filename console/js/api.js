// The gateway's API as the console calls it: same origin, the token (if
// any) as `Authorization: Bearer`, problem documents turned into errors an
// operator can read. The token lives in sessionStorage (this tab only) and
// never in a URL: sockets get a one-use ticket from POST /auth/ticket.

const KEY = "marketprism.console.token";

export const session = {
  token: sessionStorage.getItem(KEY) || "",
  /** Set when the gateway answered 401: the console asks for a token. */
  needsToken: null,
  listeners: new Set(),
};

function changed() {
  for (const listener of session.listeners) listener();
}

export function setToken(token) {
  session.token = token.trim();
  sessionStorage.setItem(KEY, session.token);
  session.needsToken = null;
  changed();
}

export function forgetToken() {
  session.token = "";
  sessionStorage.removeItem(KEY);
  changed();
}

export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message || (problem ? `${problem.code}: ${problem.detail}` : `HTTP ${status}`));
    this.status = status;
    this.problem = problem;
    this.hint = hint(problem);
  }
}

/** What a 401/403 means for the operator in front of the console. */
function hint(problem) {
  switch (problem?.code) {
    case "unauthorized":
      return session.token
        ? "The gateway does not accept this token. Enter another one (kept for this browser tab only)."
        : "This gateway has `auth` configured: enter a token to continue.";
    case "forbidden":
      return "The token is valid but may not do this: its `publish`/`subscribe` subject lists or its `admin` flag (auth.tokens in the config) do not allow it.";
    case "admin_forbidden":
      return "Admin views answer only clients in `admin.allowed_networks` (open mode). Open the console from such a host, or configure auth with an admin token.";
    case "rate_limited":
    case "quota_exceeded":
      return "The token's rate limit or quota is used up; the console retries on its next poll.";
    default:
      return "";
  }
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * Calls the API. Resolves with the parsed JSON (`{status, body}` with
 * `withStatus`; the Response, whatever its status, with `raw`), rejects
 * with an ApiError carrying the problem document.
 */
export async function api(path, { method = "GET", body, headers = {}, raw = false, withStatus = false } = {}) {
  const h = new Headers(headers);
  if (session.token) h.set("Authorization", `Bearer ${session.token}`);
  let response;
  try {
    response = await fetch(path, { method, body, headers: h, cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new ApiError(0, null, `the gateway did not answer (${err.message})`);
  }
  if (raw) return response;
  if (!response.ok) {
    const problem = await problemOf(response);
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && !session.needsToken) {
      session.needsToken = error;
      changed();
    }
    throw error;
  }
  const json = response.status === 204 ? null : await response.json();
  return withStatus ? { status: response.status, body: json } : json;
}

/** A WebSocket URL for /subscribe with a fresh one-use ticket. */
export async function socketUrl(params) {
  const { ticket } = await api("/auth/ticket", { method: "POST" });
  const query = new URLSearchParams(params);
  query.set("ticket", ticket);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/subscribe?${query}`;
}
