// The console's access to the service: JSON requests and Server-Sent Events
// read through fetch (EventSource cannot send the API key header).

const KEY_STORE = "chapkit-console-api-key";

let config = null;
let onUnauthorized = () => {};

export function setup(cfg, unauthorized) {
  config = cfg;
  onUnauthorized = unauthorized;
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export function setAPIKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

function headers(extra) {
  const h = Object.assign({}, extra);
  const key = apiKey();
  if (config && config.auth && key) h[config.auth.header] = key;
  return h;
}

// ApiError carries the status and the service's message.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function failure(res) {
  let msg = res.status + " " + res.statusText;
  try {
    const body = await res.json();
    if (typeof body.detail === "string") msg = body.detail;
    else if (Array.isArray(body.detail)) msg = body.detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
    else if (body.title) msg = body.title + (body.detail ? ": " + body.detail : "");
  } catch (e) {
    // not JSON: keep the status line
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, msg);
}

// request sends one request; body is sent as JSON (or as the given type).
export async function request(method, path, body, contentType) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// events reads the Server-Sent Events of path and calls onEvent(name, data)
// with data decoded from JSON, and onOpen (if given) once the stream is
// open. It resolves when the stream ends; abort signal ends it early.
export async function events(path, signal, onEvent, onOpen) {
  const res = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!res.ok) throw await failure(res);
  if (onOpen) onOpen();
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let name = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (data.length) {
          let v = data.join("\n");
          try {
            v = JSON.parse(v);
          } catch (e) {
            // leave as text
          }
          onEvent(name || "message", v);
        }
        name = "";
        data = [];
      } else if (line.startsWith("event:")) {
        name = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  }
}

// stripANSI removes terminal colour and cursor sequences.
export function stripANSI(s) {
  // CSI sequences, OSC sequences ended by BEL or ST, and lone escapes.
  return s.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "").replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "").replace(/\x1b[@-Z\\-_]/g, "");
}
