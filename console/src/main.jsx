import { render } from "preact";
import { useState, useEffect, useRef, useCallback } from "preact/hooks";
import { setup, request, events, apiKey, setAPIKey, stripANSI, ApiError } from "./api.js";
import "./style.css";

const TERMINAL = ["completed", "failed", "canceled"];
const STATUSES = ["pending", "running", "completed", "failed", "canceled"];
const PAGE_LINES = 2000;

// useRoute follows the location hash: #/tasks, #/jobs, #/jobs/<id>, #/health.
function useRoute() {
  const get = () => (location.hash.replace(/^#/, "") || "/jobs").split("/").filter(Boolean);
  const [route, setRoute] = useState(get());
  useEffect(() => {
    const on = () => setRoute(get());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function fmtTime(s) {
  return s ? new Date(s).toLocaleString() : "—";
}

function duration(a, b) {
  if (!a) return "—";
  const ms = (b ? new Date(b) : new Date()) - new Date(a);
  return (ms / 1000).toFixed(1) + " s";
}

function Status({ status }) {
  return <span class={"badge " + status} data-status={status}>{status}</span>;
}

function ErrorNote({ error }) {
  if (!error) return null;
  return <p class="error" role="alert">{String(error.message || error)}</p>;
}

function KeyPrompt({ onDone }) {
  const [value, setValue] = useState("");
  const submit = (e) => {
    e.preventDefault();
    setAPIKey(value.trim());
    onDone();
  };
  return (
    <section class="card key-prompt" aria-labelledby="key-title">
      <h2 id="key-title">API key required</h2>
      <p>This service asks for an API key. It is kept in this browser tab only (session storage) and sent as a request header.</p>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.target.value)} required />
        <button type="submit">Use key</button>
      </form>
    </section>
  );
}

// ---- tasks ----

function TaskForm({ cfg, task, onSaved, onCancel }) {
  const [command, setCommand] = useState(task ? task.command : "");
  const [type, setType] = useState(task ? task.task_type : "shell");
  const [params, setParams] = useState(task && task.parameters ? JSON.stringify(task.parameters, null, 2) : "");
  const [timeout, setTimeout_] = useState(task && task.timeout_seconds != null ? String(task.timeout_seconds) : "");
  const [enabled, setEnabled] = useState(task ? task.enabled : true);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const body = { command, task_type: type, enabled };
      if (params.trim()) body.parameters = JSON.parse(params);
      body.timeout_seconds = timeout.trim() ? Number(timeout) : null;
      const saved = task ? await request("PUT", cfg.api.tasks + "/" + task.id, body) : await request("POST", cfg.api.tasks, body);
      onSaved(saved);
    } catch (err) {
      setError(err);
    }
  };
  const id = task ? task.id : "new";
  return (
    <form class="card task-form" onSubmit={submit} aria-label={task ? "Edit task" : "New task"}>
      <h3>{task ? "Edit task" : "New task"}</h3>
      <label for={"cmd-" + id}>Command</label>
      <textarea id={"cmd-" + id} name="command" rows="3" required value={command} onInput={(e) => setCommand(e.target.value)} />
      <div class="row">
        <div>
          <label for={"type-" + id}>Type</label>
          <select id={"type-" + id} value={type} onChange={(e) => setType(e.target.value)}>
            <option value="shell">shell</option>
            <option value="python">function (python)</option>
          </select>
        </div>
        <div>
          <label for={"timeout-" + id}>Timeout (seconds)</label>
          <input id={"timeout-" + id} type="number" min="1" value={timeout} onInput={(e) => setTimeout_(e.target.value)} />
        </div>
        <div class="check">
          <input id={"enabled-" + id} type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          <label for={"enabled-" + id}>Enabled</label>
        </div>
      </div>
      {type !== "shell" && (
        <>
          <label for={"params-" + id}>Parameters (JSON)</label>
          <textarea id={"params-" + id} rows="3" class="mono" value={params} onInput={(e) => setParams(e.target.value)} />
        </>
      )}
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit">{task ? "Save" : "Create task"}</button>
        <button type="button" class="secondary" onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}

function TasksPage({ cfg }) {
  const perms = cfg.permissions.tasks;
  const [filter, setFilter] = useState("");
  const [page, setPage] = useState(1);
  const [size, setSize] = useState(20);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null); // "new" or a task
  const load = useCallback(async () => {
    try {
      let q = "?page=" + page + "&size=" + size;
      if (filter) q += "&enabled=" + filter;
      setData(await request("GET", cfg.api.tasks + q));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [filter, page, size]);
  useEffect(() => {
    load();
  }, [load]);
  const act = async (fn) => {
    try {
      await fn();
      setError(null);
    } catch (err) {
      setError(err);
    }
    load();
  };
  const execute = (t) =>
    act(async () => {
      const res = await request("POST", cfg.api.tasks + "/" + t.id + "/$execute");
      location.hash = "#/jobs/" + res.job_id;
    });
  const toggle = (t) => act(() => request("PATCH", cfg.api.tasks + "/" + t.id, { enabled: !t.enabled }, "application/merge-patch+json"));
  const remove = (t) => {
    if (confirm("Delete task " + t.id + "?")) act(() => request("DELETE", cfg.api.tasks + "/" + t.id));
  };
  if (!perms.read) return <p>This service does not list tasks.</p>;
  return (
    <section aria-labelledby="tasks-title">
      <div class="heading">
        <h2 id="tasks-title">Tasks</h2>
        {perms.create && !editing && <button onClick={() => setEditing("new")}>New task</button>}
      </div>
      {editing && (
        <TaskForm
          cfg={cfg}
          task={editing === "new" ? null : editing}
          onSaved={() => {
            setEditing(null);
            load();
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      <div class="filters">
        <label for="enabled-filter">Show</label>
        <select id="enabled-filter" value={filter} onChange={(e) => { setFilter(e.target.value); setPage(1); }}>
          <option value="">all tasks</option>
          <option value="true">enabled</option>
          <option value="false">disabled</option>
        </select>
        <label for="page-size">Per page</label>
        <select id="page-size" value={size} onChange={(e) => { setSize(Number(e.target.value)); setPage(1); }}>
          {[10, 20, 50, 100].map((n) => <option value={n}>{n}</option>)}
        </select>
      </div>
      <ErrorNote error={error} />
      {data && (
        <>
          <ul class="list" aria-label="Tasks">
            {data.items.length === 0 && <li class="empty">No tasks.</li>}
            {data.items.map((t) => (
              <li class="item task" data-task-id={t.id}>
                <div class="main">
                  <code class="command">{t.command}</code>
                  <div class="meta">
                    {t.task_type} · {t.enabled ? "enabled" : "disabled"}
                    {t.timeout_seconds != null && " · timeout " + t.timeout_seconds + " s"} · <span class="id">{t.id}</span>
                  </div>
                </div>
                <div class="actions">
                  <button onClick={() => execute(t)} disabled={!t.enabled} aria-label={"Execute " + t.command}>Execute</button>
                  {perms.update && <button class="secondary" onClick={() => setEditing(t)}>Edit</button>}
                  {perms.update && <button class="secondary" onClick={() => toggle(t)}>{t.enabled ? "Disable" : "Enable"}</button>}
                  {perms.delete && <button class="danger" onClick={() => remove(t)}>Delete</button>}
                </div>
              </li>
            ))}
          </ul>
          <nav class="pager" aria-label="Task pages">
            <button class="secondary" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous</button>
            <span>Page {data.page} of {Math.max(data.pages, 1)} ({data.total} tasks)</span>
            <button class="secondary" disabled={page >= data.pages} onClick={() => setPage(page + 1)}>Next</button>
          </nav>
        </>
      )}
    </section>
  );
}

// ---- jobs ----

// useJobStreams keeps the records of unfinished jobs up to date from their
// $stream, at most max at a time.
function useJobStreams(cfg, jobs, onRecord, max) {
  const open = useRef(new Map());
  useEffect(() => {
    const want = new Set(jobs.filter((j) => !TERMINAL.includes(j.status)).slice(0, max).map((j) => j.id));
    for (const [id, ctl] of open.current) {
      if (!want.has(id)) {
        ctl.abort();
        open.current.delete(id);
      }
    }
    for (const id of want) {
      if (open.current.has(id)) continue;
      const ctl = new AbortController();
      open.current.set(id, ctl);
      events(cfg.api.jobs + "/" + id + "/$stream", ctl.signal, (_, rec) => {
        if (rec && rec.id) onRecord(rec);
      }).catch(() => {});
    }
  }, [jobs.map((j) => j.id + j.status).join()]);
  useEffect(() => () => open.current.forEach((c) => c.abort()), []);
}

function JobsPage({ cfg }) {
  const [status, setStatus] = useState("");
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    try {
      const list = await request("GET", cfg.api.jobs + (status ? "?status_filter=" + status : ""));
      setJobs(list);
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, [status]);
  useEffect(() => {
    load();
    // New jobs appear through the list; state changes of the unfinished
    // ones arrive at once through their event streams.
    const t = setInterval(load, 2000);
    return () => clearInterval(t);
  }, [load]);
  useJobStreams(cfg, jobs || [], (rec) => setJobs((cur) => (cur || []).map((j) => (j.id === rec.id ? rec : j))), 20);
  const act = async (fn) => {
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
    load();
  };
  return (
    <section aria-labelledby="jobs-title">
      <div class="heading">
        <h2 id="jobs-title">Jobs</h2>
      </div>
      <div class="filters">
        <label for="status-filter">Status</label>
        <select id="status-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">any</option>
          {STATUSES.map((s) => <option value={s}>{s}</option>)}
        </select>
      </div>
      <ErrorNote error={error} />
      {jobs && (
        <ul class="list" aria-label="Jobs">
          {jobs.length === 0 && <li class="empty">No jobs.</li>}
          {jobs.map((j) => (
            <li class="item job" data-job-id={j.id}>
              <div class="main">
                <a href={"#/jobs/" + j.id} class="id">{j.id}</a> <Status status={j.status} />
                <div class="meta">
                  submitted {fmtTime(j.submitted_at)} · ran {duration(j.started_at, j.finished_at)}
                  {j.error && " · " + j.error}
                </div>
              </div>
              <div class="actions">
                {!TERMINAL.includes(j.status) && (
                  <button class="secondary" onClick={() => act(() => request("POST", cfg.api.jobs + "/" + j.id + "/$cancel"))}>Cancel</button>
                )}
                <button class="danger" onClick={() => confirm("Delete job " + j.id + "?") && act(() => request("DELETE", cfg.api.jobs + "/" + j.id))}>
                  Delete
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

// Paged shows long text a page of lines at a time.
function Paged({ text, label, cls }) {
  const [pages, setPages] = useState(1);
  const lines = text.split("\n");
  const shown = lines.slice(0, pages * PAGE_LINES).join("\n");
  return (
    <div class="output">
      <h4>{label}</h4>
      <pre class={"mono " + (cls || "")} tabindex="0" aria-label={label}>{shown || "(empty)"}</pre>
      {lines.length > pages * PAGE_LINES && (
        <button class="secondary" onClick={() => setPages(pages + 1)}>
          Show {Math.min(PAGE_LINES, lines.length - pages * PAGE_LINES)} more lines of {lines.length}
        </button>
      )}
    </div>
  );
}

function LiveOutput({ cfg, id }) {
  const [chunks, setChunks] = useState([]);
  const [end, setEnd] = useState(null);
  useEffect(() => {
    const ctl = new AbortController();
    events(cfg.api.jobs + "/" + id + "/$logs", ctl.signal, (name, data) => {
      if (name === "stdout" || name === "stderr") setChunks((c) => c.concat([{ name, text: stripANSI(data) }]));
      else if (name === "skipped") setChunks((c) => c.concat([{ name, text: "[… " + (data.stdout + data.stderr) + " bytes skipped …]\n" }]));
      else if (name === "end") setEnd(data);
    }).catch(() => {});
    return () => ctl.abort();
  }, [id]);
  return (
    <div class="output">
      <h4>Live output</h4>
      <pre class="mono live" aria-live="polite" aria-label="Live output" data-ended={end ? "true" : "false"}>
        {chunks.map((c) => <span class={c.name}>{c.text}</span>)}
      </pre>
      {end && <p class="meta">Output ended{end.exit_code != null && ", exit code " + end.exit_code}.</p>}
    </div>
  );
}

function Artifact({ cfg, id }) {
  const [art, setArt] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    request("GET", cfg.api.artifacts + "/" + id).then(setArt, setError);
  }, [id]);
  if (error) return <ErrorNote error={error} />;
  if (!art) return <p>Loading the result…</p>;
  const d = art.data || {};
  const num = (v, unit, digits) => (v == null ? "—" : Number(v).toFixed(digits) + " " + unit);
  return (
    <section class="card" aria-labelledby="result-title">
      <h3 id="result-title">Result</h3>
      {d.task && (
        <details>
          <summary>Task snapshot</summary>
          <pre class="mono">{JSON.stringify(d.task, null, 2)}</pre>
        </details>
      )}
      {"stdout" in d ? (
        <>
          <dl class="facts">
            <dt>Exit code</dt>
            <dd data-testid="exit-code">{d.exit_code}</dd>
            <dt>Timed out</dt>
            <dd>{d.timed_out ? "yes" : "no"}</dd>
            <dt>Truncated</dt>
            <dd>{d.stdout_truncated || d.stderr_truncated ? [d.stdout_truncated && "stdout", d.stderr_truncated && "stderr"].filter(Boolean).join(", ") : "no"}</dd>
            <dt>Duration</dt>
            <dd>{num(d.duration_seconds, "s", 2)}</dd>
            <dt>CPU user / system</dt>
            <dd>{num(d.cpu_user_seconds, "s", 2)} / {num(d.cpu_system_seconds, "s", 2)}</dd>
            <dt>Peak memory</dt>
            <dd>{d.max_rss_bytes == null ? "—" : (d.max_rss_bytes / 1048576).toFixed(1) + " MiB"}</dd>
          </dl>
          <Paged text={stripANSI(d.stdout || "")} label="stdout" cls="stdout-text" />
          <Paged text={stripANSI(d.stderr || "")} label="stderr" cls="stderr" />
        </>
      ) : (
        <>
          <dl class="facts">
            <dt>Duration</dt>
            <dd>{num(d.duration_seconds, "s", 3)}</dd>
          </dl>
          {d.error ? (
            <div class="output">
              <h4>Error</h4>
              <p class="error">{d.error.type}: {d.error.message}</p>
              {d.error.traceback && <Paged text={d.error.traceback} label="Traceback" cls="stderr" />}
            </div>
          ) : (
            <Paged text={JSON.stringify(d.result, null, 2)} label="Result (JSON)" />
          )}
        </>
      )}
    </section>
  );
}

function JobPage({ cfg, id }) {
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    const ctl = new AbortController();
    // The first read and the stream race each other: a record never
    // replaces a finished one with an unfinished one, so a late answer
    // to the first read cannot undo the end the stream already showed.
    const update = (rec) => setJob((prev) => (prev && TERMINAL.includes(prev.status) && !TERMINAL.includes(rec.status) ? prev : rec));
    request("GET", cfg.api.jobs + "/" + id).then(update, setError);
    events(cfg.api.jobs + "/" + id + "/$stream", ctl.signal, (_, rec) => {
      if (rec && rec.status === "deleted") setGone(true);
      else if (rec && rec.id) update(rec);
    }).catch(() => {});
    return () => ctl.abort();
  }, [id]);
  const act = async (fn) => {
    try {
      await fn();
    } catch (err) {
      setError(err);
    }
  };
  if (gone) return <p>Job {id} was deleted. <a href="#/jobs">All jobs</a></p>;
  return (
    <section aria-labelledby="job-title">
      <div class="heading">
        <h2 id="job-title">Job <span class="id">{id}</span></h2>
        {job && <Status status={job.status} />}
      </div>
      <ErrorNote error={error} />
      {job && (
        <>
          <dl class="facts">
            <dt>Submitted</dt>
            <dd>{fmtTime(job.submitted_at)}</dd>
            <dt>Started</dt>
            <dd>{fmtTime(job.started_at)}</dd>
            <dt>Finished</dt>
            <dd>{fmtTime(job.finished_at)}</dd>
            {job.node && <dt>Node</dt>}
            {job.node && <dd class="id">{job.node}</dd>}
          </dl>
          {job.error && <p class="error">{job.error}</p>}
          {job.error_traceback && <Paged text={job.error_traceback} label="Traceback" cls="stderr" />}
          <div class="actions">
            {!TERMINAL.includes(job.status) && (
              <button class="secondary" onClick={() => act(() => request("POST", cfg.api.jobs + "/" + id + "/$cancel"))}>Cancel job</button>
            )}
            <button
              class="danger"
              onClick={() => confirm("Delete job " + id + "?") && act(async () => {
                await request("DELETE", cfg.api.jobs + "/" + id);
                location.hash = "#/jobs";
              })}
            >
              Delete job
            </button>
          </div>
          {!job.artifact_id && <LiveOutput cfg={cfg} id={id} />}
          {job.artifact_id && cfg.api.artifacts && <Artifact cfg={cfg} id={job.artifact_id} />}
        </>
      )}
    </section>
  );
}

// ---- health ----

function metricSum(text, name) {
  let sum = null;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
      sum = (sum || 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

function HealthPage({ cfg }) {
  const [health, setHealth] = useState(null);
  const [info, setInfo] = useState(null);
  const [nums, setNums] = useState(null);
  const [error, setError] = useState(null);
  const last = useRef(null);
  useEffect(() => {
    const load = async () => {
      try {
        if (cfg.api.health) {
          const res = await fetch(cfg.api.health, { headers: apiKey() && cfg.auth ? { [cfg.auth.header]: apiKey() } : {} });
          setHealth(await res.json());
        }
        setInfo(await request("GET", cfg.api.info));
        if (cfg.api.metrics) {
          const text = await request("GET", cfg.api.metrics);
          const finished = metricSum(text, "chapkit_jobs_finished_total");
          const now = Date.now();
          let perMinute = null;
          if (last.current && finished != null) perMinute = ((finished - last.current.finished) * 60000) / (now - last.current.at);
          last.current = { finished, at: now };
          setNums({
            running: metricSum(text, "chapkit_jobs_running"),
            pending: metricSum(text, "chapkit_jobs_pending"),
            finished,
            perMinute,
          });
        }
        setError(null);
      } catch (err) {
        setError(err);
      }
    };
    load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, []);
  const show = (v, digits) => (v == null ? "—" : digits ? v.toFixed(digits) : String(v));
  return (
    <section aria-labelledby="health-title">
      <h2 id="health-title">Service</h2>
      <ErrorNote error={error} />
      {health && (
        <div class="card">
          <h3>Health <Status status={health.status} /></h3>
          {health.checks && (
            <dl class="facts">
              {Object.entries(health.checks).map(([k, v]) => (
                <>
                  <dt>{k}</dt>
                  <dd>{typeof v === "object" ? v.state || JSON.stringify(v) : String(v)}</dd>
                </>
              ))}
            </dl>
          )}
        </div>
      )}
      {nums && (
        <div class="card numbers" aria-label="Job numbers">
          <div><span class="num">{show(nums.running)}</span> running</div>
          <div><span class="num">{show(nums.pending)}</span> pending</div>
          <div><span class="num">{show(nums.perMinute, 1)}</span> finished per minute</div>
          <div><span class="num">{show(nums.finished)}</span> finished since start</div>
        </div>
      )}
      {info && (
        <div class="card">
          <h3>Info</h3>
          <pre class="mono">{JSON.stringify(info, null, 2)}</pre>
        </div>
      )}
    </section>
  );
}

// ---- shell ----

function App({ cfg }) {
  const route = useRoute();
  const [needKey, setNeedKey] = useState(cfg.auth && !apiKey());
  const [epoch, setEpoch] = useState(0);
  useEffect(() => {
    setup(cfg, () => {
      setAPIKey("");
      setNeedKey(true);
    });
  }, []);
  let page;
  if (needKey) {
    page = <KeyPrompt onDone={() => { setNeedKey(false); setEpoch(epoch + 1); }} />;
  } else if (route[0] === "tasks" && cfg.api.tasks) {
    page = <TasksPage cfg={cfg} />;
  } else if (route[0] === "jobs" && route[1]) {
    page = <JobPage cfg={cfg} id={route[1]} key={route[1]} />;
  } else if (route[0] === "health") {
    page = <HealthPage cfg={cfg} />;
  } else {
    page = cfg.api.jobs ? <JobsPage cfg={cfg} /> : <HealthPage cfg={cfg} />;
  }
  const link = (href, label, active) => (
    <a href={href} aria-current={active ? "page" : undefined}>{label}</a>
  );
  return (
    <>
      <header>
        <h1>{cfg.title}</h1>
        <nav aria-label="Console">
          {cfg.api.tasks && link("#/tasks", "Tasks", route[0] === "tasks")}
          {cfg.api.jobs && link("#/jobs", "Jobs", route[0] === "jobs" || !route[0])}
          {link("#/health", "Service", route[0] === "health")}
          {cfg.auth && !needKey && (
            <button class="link" onClick={() => { setAPIKey(""); setNeedKey(true); }}>Forget key</button>
          )}
        </nav>
      </header>
      <main key={epoch}>{page}</main>
    </>
  );
}

async function start() {
  const root = document.getElementById("app");
  try {
    const cfg = await fetch(root.dataset.config).then((r) => {
      if (!r.ok) throw new ApiError(r.status, "console configuration: " + r.status);
      return r.json();
    });
    setup(cfg, () => {});
    root.textContent = "";
    render(<App cfg={cfg} />, root);
  } catch (err) {
    root.textContent = String(err.message || err);
  }
}

start();
