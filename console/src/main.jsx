import { render } from "preact";
import { useState, useEffect, useRef, useCallback } from "preact/hooks";
import { setup, request, events, apiKey, setAPIKey, stripANSI, ApiError } from "./api.js";
import "./style.css";

const TERMINAL = ["completed", "failed", "canceled"];
const STATUSES = ["pending", "running", "completed", "failed", "canceled", "scheduled"];
const PAGE_LINES = 2000;

// useRoute follows the location hash: #/tasks, #/schedules, #/jobs,
// #/jobs/<id>, #/artifacts, #/artifacts/<id>, #/health.
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

// sortJobs orders jobs newest first: submitted_at descending, then id
// descending, as the service lists them.
function sortJobs(list) {
  // Times are compared as times: trimmed fractions ("…:49Z", "…:49.5Z") do
  // not sort as strings.
  const at = (j) => (j.submitted_at ? Date.parse(j.submitted_at) : 0);
  return list.slice().sort((a, b) => at(b) - at(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

const RANK = { scheduled: 0, pending: 1, running: 2 };

// rank orders the states of one job, so an older record never replaces a
// newer one: later attempts after earlier ones, finished states last.
function rank(j) {
  return (j.attempt || 1) * 10 + (j.status in RANK ? RANK[j.status] : 3);
}

// useLiveJobs keeps the job list (filtered by status) up to date from the
// service-wide event stream: the list is read once the stream is open, then
// every change is applied as it arrives; a lost event or a reconnection
// reads the list again.
function useLiveJobs(cfg, status) {
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const reload = useRef(() => {});
  useEffect(() => {
    const ctl = new AbortController();
    const matches = (rec) => (status ? rec.status === status : rec.status !== "scheduled");
    const apply = (rec) =>
      setJobs((cur) => {
        const list = cur || [];
        const old = list.find((j) => j.id === rec.id);
        const rest = list.filter((j) => j.id !== rec.id);
        if (rec.status === "deleted") return rest;
        if (old && rank(old) > rank(rec)) return list;
        if (!matches(rec)) return old ? rest : list;
        const { task_id, ...plain } = rec;
        return sortJobs([plain, ...rest]);
      });
    const load = async () => {
      try {
        const fresh = await request("GET", cfg.api.jobs + (status ? "?status_filter=" + status : ""));
        setJobs((cur) => {
          const byId = new Map(fresh.map((j) => [j.id, j]));
          for (const j of cur || []) {
            const f = byId.get(j.id);
            // Keep what the stream told of meanwhile, if it is newer.
            if ((f && rank(j) > rank(f)) || (!f && matches(j))) byId.set(j.id, j);
          }
          return sortJobs([...byId.values()]);
        });
        setError(null);
      } catch (err) {
        setError(err);
      }
    };
    reload.current = load;
    setJobs(null);
    (async () => {
      while (!ctl.signal.aborted) {
        try {
          await events(cfg.api.jobs + "/$stream", ctl.signal, (name, data) => {
            if (name === "lost") load();
            else if (data && data.id) apply(data);
          }, () => {
            setLive(true);
            load();
          });
        } catch (err) {
          if (ctl.signal.aborted) return;
          if (err instanceof ApiError) setError(err);
        }
        setLive(false);
        if (ctl.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 2000)); // then reconnect and read the list again
      }
    })();
    return () => ctl.abort();
  }, [status]);
  return { jobs, error, setError, live, reload: () => reload.current() };
}

function JobsPage({ cfg }) {
  const [status, setStatus] = useState("");
  const { jobs, error, setError, live, reload } = useLiveJobs(cfg, status);
  const act = async (fn) => {
    try {
      await fn();
    } catch (err) {
      setError(err);
      reload();
    }
  };
  return (
    <section aria-labelledby="jobs-title">
      <div class="heading">
        <h2 id="jobs-title">Jobs</h2>
        <span class="meta live-state" role="status" data-live={live ? "true" : "false"}>
          {live ? "Updates live" : "Connecting…"}
        </span>
      </div>
      <div class="filters">
        <label for="status-filter">Status</label>
        <select id="status-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">any</option>
          {STATUSES.map((s) => <option value={s}>{s === "scheduled" ? "scheduled (waiting)" : s}</option>)}
        </select>
      </div>
      <ErrorNote error={error} />
      {jobs && (
        <ul class="list" aria-label="Jobs">
          {jobs.length === 0 && <li class="empty">No jobs.</li>}
          {jobs.map((j) => (
            <li class="item job" data-job-id={j.id} key={j.id}>
              <div class="main">
                <a href={"#/jobs/" + j.id} class="id">{j.id}</a> <Status status={j.status} />
                <div class="meta">
                  submitted {fmtTime(j.submitted_at)} · ran {duration(j.started_at, j.finished_at)}
                  {j.trigger && j.trigger !== "api" && " · by " + j.trigger}
                  {j.attempt > 1 && " · attempt " + j.attempt}
                  {j.error && " · " + j.error}
                </div>
              </div>
              <div class="actions">
                {!TERMINAL.includes(j.status) && (
                  <button class="secondary" onClick={() => act(() => request("POST", cfg.api.jobs + "/" + j.id + "/$cancel"))} aria-label={"Cancel job " + j.id}>
                    Cancel
                  </button>
                )}
                <button
                  class="danger"
                  aria-label={"Delete job " + j.id}
                  onClick={() => confirm("Delete job " + j.id + "?") && act(() => request("DELETE", cfg.api.jobs + "/" + j.id))}
                >
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
          {job.artifact_id && cfg.api.artifacts && (
            <p>
              <a href={"#/artifacts/" + job.artifact_id} class="artifact-link">Artifact <span class="id">{job.artifact_id}</span></a>
            </p>
          )}
          {job.artifact_id && cfg.api.artifacts && <Artifact cfg={cfg} id={job.artifact_id} />}
        </>
      )}
    </section>
  );
}

// ---- schedules ----

function SchedulesPage({ cfg }) {
  const [tasks, setTasks] = useState(null);
  const [waiting, setWaiting] = useState(null);
  const [runs, setRuns] = useState({});
  const [error, setError] = useState(null);
  useEffect(() => {
    const load = async () => {
      try {
        const all = await request("GET", cfg.api.tasks);
        setTasks(all.filter((t) => t.schedule));
        if (cfg.api.jobs) setWaiting(await request("GET", cfg.api.jobs + "?status_filter=scheduled"));
        if (cfg.api.artifacts) setRuns(await lastRuns(cfg));
        setError(null);
      } catch (err) {
        setError(err);
      }
    };
    load();
    // next_run_at moves on with every tick; the list is read again now and then.
    const t = setInterval(load, 10000);
    return () => clearInterval(t);
  }, []);
  return (
    <section aria-labelledby="schedules-title">
      <h2 id="schedules-title">Schedules</h2>
      <ErrorNote error={error} />
      {tasks && (
        <ul class="list" aria-label="Scheduled tasks">
          {tasks.length === 0 && <li class="empty">No task has a schedule.</li>}
          {tasks.map((t) => (
            <li class="item schedule" data-task-id={t.id} key={t.id}>
              <div class="main">
                <code class="command">{t.command}</code>
                <dl class="facts">
                  <dt>Schedule</dt>
                  <dd><code data-testid="schedule">{t.schedule}</code> ({t.schedule_timezone || "UTC"})</dd>
                  <dt>Next run</dt>
                  <dd data-testid="next-run">{t.enabled ? fmtTime(t.next_run_at) : "— (disabled)"}</dd>
                  <dt>Overlap</dt>
                  <dd>{t.schedule_overlap || "skip"}{t.schedule_catch_up ? ", catches up one missed tick at start-up" : ""}</dd>
                  <dt>Last runs</dt>
                  <dd>
                    {(runs[t.id] || []).length === 0 ? "none recorded" : (
                      <ul class="runs">
                        {runs[t.id].map((a) => (
                          <li key={a.id}>
                            <a href={"#/artifacts/" + a.id}>{fmtTime(a.created_at)}</a> {runSummary(a.data)}
                          </li>
                        ))}
                      </ul>
                    )}
                  </dd>
                </dl>
              </div>
            </li>
          ))}
        </ul>
      )}
      {waiting && (
        <>
          <h3>Waiting executions</h3>
          <p class="meta">Ticks and retries stored until their time (status scheduled).</p>
          <ul class="list" aria-label="Waiting executions">
            {waiting.length === 0 && <li class="empty">None waiting.</li>}
            {waiting.map((j) => (
              <li class="item job" data-job-id={j.id} key={j.id}>
                <div class="main">
                  <a href={"#/jobs/" + j.id} class="id">{j.id}</a> <Status status={j.status} />
                  <div class="meta">
                    {j.trigger ? "by " + j.trigger : ""}{j.attempt > 1 ? " · attempt " + j.attempt : ""}
                    {j.retry_of && <> · retry of <a href={"#/jobs/" + j.retry_of} class="id">{j.retry_of}</a></>}
                  </div>
                </div>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

// lastRuns returns, per task id, the newest three execution artifacts among
// the last 100 artifacts stored.
async function lastRuns(cfg) {
  const first = await request("GET", cfg.api.artifacts + "?page=1&size=100");
  const page = first.pages > 1 ? await request("GET", cfg.api.artifacts + "?page=" + first.pages + "&size=100") : first;
  let items = page.items;
  if (first.pages > 1 && items.length < 100) {
    const prev = await request("GET", cfg.api.artifacts + "?page=" + (first.pages - 1) + "&size=100");
    items = prev.items.concat(items);
  }
  const out = {};
  for (const a of items.slice().reverse()) {
    const id = a.data && a.data.task && a.data.task.id;
    if (!id) continue;
    out[id] = out[id] || [];
    if (out[id].length < 3) out[id].push(a);
  }
  return out;
}

function runSummary(d) {
  if (!d) return "";
  if ("exit_code" in d) return "· exit code " + d.exit_code + (d.timed_out ? " (timed out)" : "");
  if (d.error) return "· " + d.error.type;
  return "· completed";
}

// ---- artifacts ----

function artifactSummary(a) {
  const d = a.data;
  if (d && d.task && d.task.command) return d.task.command;
  const text = JSON.stringify(d);
  return text && text.length > 120 ? text.slice(0, 120) + "…" : text;
}

function ArtifactsPage({ cfg }) {
  const [page, setPage] = useState(1);
  const [size, setSize] = useState(20);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    request("GET", cfg.api.artifacts + "?page=" + page + "&size=" + size).then(
      (d) => {
        setData(d);
        setError(null);
      },
      setError,
    );
  }, [page, size]);
  return (
    <section aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts</h2>
      <div class="filters">
        <label for="artifact-page-size">Per page</label>
        <select id="artifact-page-size" value={size} onChange={(e) => { setSize(Number(e.target.value)); setPage(1); }}>
          {[10, 20, 50, 100].map((n) => <option value={n}>{n}</option>)}
        </select>
        {data && data.pages > 1 && page !== data.pages && <button class="secondary" onClick={() => setPage(data.pages)}>Newest</button>}
      </div>
      <ErrorNote error={error} />
      {data && (
        <>
          <ul class="list" aria-label="Artifacts">
            {data.items.length === 0 && <li class="empty">No artifacts.</li>}
            {data.items.map((a) => (
              <li class="item artifact" data-artifact-id={a.id} key={a.id}>
                <div class="main">
                  <a href={"#/artifacts/" + a.id} class="id">{a.id}</a>
                  <div class="meta">
                    {fmtTime(a.created_at)} · level {a.level} · <code class="command">{artifactSummary(a)}</code>
                  </div>
                </div>
              </li>
            ))}
          </ul>
          <nav class="pager" aria-label="Artifact pages">
            <button class="secondary" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous</button>
            <span>Page {data.page} of {Math.max(data.pages, 1)} ({data.total} artifacts, oldest first)</span>
            <button class="secondary" disabled={page >= data.pages} onClick={() => setPage(page + 1)}>Next</button>
          </nav>
        </>
      )}
    </section>
  );
}

function ArtifactPage({ cfg, id }) {
  const [art, setArt] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    request("GET", cfg.api.artifacts + "/" + id).then(setArt, setError);
  }, [id]);
  return (
    <section aria-labelledby="artifact-title">
      <h2 id="artifact-title">Artifact <span class="id">{id}</span></h2>
      <ErrorNote error={error} />
      {art && (
        <>
          <dl class="facts">
            <dt>Created</dt>
            <dd>{fmtTime(art.created_at)}</dd>
            <dt>Level</dt>
            <dd>{art.level}</dd>
            {art.parent_id && <dt>Parent</dt>}
            {art.parent_id && <dd><a href={"#/artifacts/" + art.parent_id} class="id">{art.parent_id}</a></dd>}
            {art.tags && art.tags.length > 0 && <dt>Tags</dt>}
            {art.tags && art.tags.length > 0 && <dd>{art.tags.join(", ")}</dd>}
          </dl>
          {art.data && art.data.task && <Artifact cfg={cfg} id={id} />}
          <details open={!(art.data && art.data.task)}>
            <summary>Data (JSON)</summary>
            <pre class="mono" tabindex="0" aria-label="Artifact data">{JSON.stringify(art.data, null, 2)}</pre>
          </details>
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
  const [nodes, setNodes] = useState(null);
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
        if (cfg.api.nodes) setNodes(await request("GET", cfg.api.nodes));
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
      {nodes && (
        <div class="card">
          <h3>Nodes</h3>
          <div class="scroll">
            <table aria-label="Nodes">
              <thead>
                <tr><th scope="col">Node</th><th scope="col">Host</th><th scope="col">PID</th><th scope="col">Started</th><th scope="col">Heartbeat</th><th scope="col">Running</th></tr>
              </thead>
              <tbody>
                {nodes.map((n) => (
                  <tr class="node" key={n.id}>
                    <td><span class="id">{n.id}</span>{n.leader && <> <span class="badge leader">leader</span></>}</td>
                    <td>{n.hostname}</td>
                    <td>{n.pid}</td>
                    <td>{fmtTime(n.started_at)}</td>
                    <td>{fmtTime(n.heartbeat_at)}</td>
                    <td>{n.running}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
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
  } else if (route[0] === "schedules" && cfg.api.tasks) {
    page = <SchedulesPage cfg={cfg} />;
  } else if (route[0] === "artifacts" && route[1] && cfg.api.artifacts) {
    page = <ArtifactPage cfg={cfg} id={route[1]} key={route[1]} />;
  } else if (route[0] === "artifacts" && cfg.api.artifacts) {
    page = <ArtifactsPage cfg={cfg} />;
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
          {cfg.api.tasks && link("#/schedules", "Schedules", route[0] === "schedules")}
          {cfg.api.jobs && link("#/jobs", "Jobs", route[0] === "jobs" || !route[0])}
          {cfg.api.artifacts && link("#/artifacts", "Artifacts", route[0] === "artifacts")}
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
