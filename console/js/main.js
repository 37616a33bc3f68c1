// The console's shell: navigation, the token dialog, and the current view.

import { html, render, useEffect, useState, useRoute, Prose } from "./lib.js";
import { session, setToken, forgetToken } from "./api.js";
import { Overview } from "./overview.js";
import { Streams } from "./streams.js";
import { Stream } from "./stream.js";
import { Tail } from "./tail.js";
import { Publish } from "./publish.js";

const VIEWS = [
  ["overview", "Overview"],
  ["streams", "Streams"],
  ["tail", "Tail"],
  ["publish", "Publish"],
];

function useSession() {
  const [, setVersion] = useState(0);
  useEffect(() => {
    const listener = () => setVersion((v) => v + 1);
    session.listeners.add(listener);
    return () => session.listeners.delete(listener);
  }, []);
  return session;
}

function TokenDialog({ reason }) {
  const [token, setValue] = useState("");
  const submit = (e) => {
    e.preventDefault();
    if (token.trim()) setToken(token);
  };
  return html`<div class="modal-backdrop">
    <form class="modal" onSubmit=${submit} aria-labelledby="token-title">
      <h2 id="token-title">Token required</h2>
      <p><${Prose} text=${reason.hint} /></p>
      ${reason.problem && html`<p class="muted">The gateway said: <code>${reason.problem.code}</code> ${reason.problem.detail}</p>`}
      <label>Bearer token
        <input type="password" name="token" autocomplete="off" autofocus
          value=${token} onInput=${(e) => setValue(e.target.value)} />
      </label>
      <p class="muted">Kept in this tab's sessionStorage only, sent as <code>Authorization: Bearer</code>, never put in a URL.</p>
      <div class="actions"><button type="submit" class="primary">Use token</button></div>
    </form>
  </div>`;
}

function App() {
  const route = useRoute();
  const s = useSession();
  let view;
  switch (route.view) {
    case "streams":
      view = route.arg ? html`<${Stream} name=${route.arg} />` : html`<${Streams} />`;
      break;
    case "tail":
      view = html`<${Tail} key=${route.query.toString()} query=${route.query} />`;
      break;
    case "publish":
      view = html`<${Publish} />`;
      break;
    default:
      view = html`<${Overview} />`;
  }
  return html`
    <header class="top">
      <a class="brand" href="#/overview">MarketPrism <span>console</span></a>
      <nav>
        ${VIEWS.map(([id, label]) => html`<a href=${"#/" + id} class=${route.view === id ? "active" : ""}>${label}</a>`)}
        <a href="/docs/" target="_blank" rel="noopener">API docs ↗</a>
      </nav>
      <div class="who">
        ${s.token
          ? html`<span class="muted">token set</span> <button class="link" onClick=${forgetToken}>forget</button>`
          : html`<span class="muted">no token</span>`}
      </div>
    </header>
    <main>${view}</main>
    ${s.needsToken && html`<${TokenDialog} reason=${s.needsToken} />`}
  `;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
