// The task, job and artifact flow through a client generated from a
// chapkit service's /openapi.json (openapi-typescript types, openapi-fetch
// calls). Every call is typed by the document: if the document and this
// program disagree, `tsc --noEmit` fails; if the service and this program
// disagree, the run exits non-zero.
//
//   CHAPKIT_URL=http://localhost:8000 npx tsx src/flow.ts
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Job = components["schemas"]["JobRecord"];
type Artifact = components["schemas"]["ArtifactOut"];

const baseUrl = process.env.CHAPKIT_URL ?? "http://localhost:8000";
const client = createClient<paths>({ baseUrl });

function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// ok returns the data of a successful answer and fails on an error one.
function ok<T>(r: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (r.error !== undefined || r.data === undefined) {
    throw new Error(`${what}: status ${r.response.status}: ${JSON.stringify(r.error)}`);
  }
  return r.data;
}

async function pollJob(id: string, want: Job["status"], timeoutMs = 15000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = ok(await client.GET("/api/v1/jobs/{id}", { params: { path: { id } } }), "get job");
    if (job.status === want) return job;
    check(!["completed", "failed", "canceled"].includes(job.status), `job ${id} ended ${job.status}, want ${want}`);
    check(Date.now() < deadline, `job ${id} not ${want} in ${timeoutMs} ms (is ${job.status})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main(): Promise<void> {
  const info = ok(await client.GET("/api/v1/info"), "info");
  check(typeof info.id === "string" && info.id !== "", "info has an id");
  console.log(`service ${info.id} (${info.display_name} ${info.version})`);

  const health = ok(await client.GET("/health"), "health");
  check(health.status === "healthy", `health is ${health.status}`);

  // A task with parameters: free-form objects are typed as such.
  const created = await client.POST("/api/v1/tasks", {
    body: { command: "echo hello from ts; echo oops >&2", parameters: { source: "flow.ts", n: 1 } },
  });
  const task = ok(created, "create task");
  check(created.response.status === 201, "create answers 201");
  check(created.response.headers.get("Location")?.endsWith(`/api/v1/tasks/${task.id}`) === true, "create sends Location");
  // Compared key by key: the service does not keep the keys' order.
  const params = task.parameters as Record<string, unknown> | null;
  check(params?.["source"] === "flow.ts" && params["n"] === 1 && Object.keys(params).length === 2, "task parameters round-trip");

  const patched = ok(
    await client.PATCH("/api/v1/tasks/{id}", { params: { path: { id: task.id } }, body: { parameters: { source: "patched" } } }),
    "patch task",
  );
  check(patched.id === task.id, "patch keeps the id");

  const executed = await client.POST("/api/v1/tasks/{id}/$execute", { params: { path: { id: task.id } } });
  const { job_id } = ok(executed, "execute");
  check(executed.response.status === 202, "execute answers 202");
  check(executed.response.headers.get("Location")?.endsWith(`/api/v1/jobs/${job_id}`) === true, "execute sends Location");

  const job = await pollJob(job_id, "completed");
  check(typeof job.artifact_id === "string", "completed job has an artifact");
  const artifactId = job.artifact_id;

  const completed = ok(await client.GET("/api/v1/jobs", { params: { query: { status: "completed" } } }), "jobs ?status=completed");
  check(completed.some((j) => j.id === job_id), "completed list has the job");
  check(completed.every((j) => j.status === "completed"), "completed list has only completed jobs");
  const running = ok(await client.GET("/api/v1/jobs", { params: { query: { status: "running" } } }), "jobs ?status=running");
  check(running.every((j) => j.status === "running"), "running list has only running jobs");

  const artifact: Artifact = ok(await client.GET("/api/v1/artifacts/{id}", { params: { path: { id: artifactId } } }), "get artifact");
  check(Array.isArray(artifact.tags) && artifact.tags.length === 0, "a new artifact has tags []");
  const data = artifact.data as { stdout?: unknown; exit_code?: unknown };
  check(data.stdout === "hello from ts\n" && data.exit_code === 0, `artifact data ${JSON.stringify(artifact.data)}`);

  const tagged = ok(
    await client.PUT("/api/v1/artifacts/{id}", { params: { path: { id: artifactId } }, body: { data: artifact.data, tags: ["ts", "flow"] } }),
    "tag artifact",
  );
  check(JSON.stringify(tagged.tags) === '["ts","flow"]', "tags are stored");
  // The list is an array, or a page when page and size are given.
  const byTag = ok(await client.GET("/api/v1/artifacts", { params: { query: { tag: "ts" } } }), "artifacts ?tag=ts");
  const items = Array.isArray(byTag) ? byTag : byTag.items;
  check(items.length === 1 && items[0]?.id === artifactId, "tag filter finds the artifact");

  const file = await client.GET("/api/v1/artifacts/{id}/$download", { params: { path: { id: artifactId } } });
  check(ok(file, "download") !== null, "download has a body");
  check(file.response.headers.get("Content-Disposition")?.includes(`artifact-${artifactId}.json`) === true, "download names a .json file");
  const text = await client.GET("/api/v1/artifacts/{id}/$download", {
    params: { path: { id: artifactId }, query: { format: "text" } },
    parseAs: "text",
  });
  check(ok(text, "download as text").startsWith("hello from ts\n"), "text download starts with stdout");

  const deleted = await client.DELETE("/api/v1/tasks/{id}", { params: { path: { id: task.id } } });
  check(deleted.response.status === 204, `delete answers ${deleted.response.status}`);
  const gone = await client.GET("/api/v1/tasks/{id}", { params: { path: { id: task.id } } });
  check(gone.response.status === 404 && gone.error !== undefined, "deleted task is gone");

  console.log("ts client flow: ok");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
