// Browser test of the web console: drives Debian's Chromium with
// playwright-core against examples/task_execution (a built binary given in
// CHAPKIT_EXAMPLE_BIN), once without and once with API keys.
//
//   CHAPKIT_EXAMPLE_BIN=/tmp/task_execution node --test tests/
//
// Screenshots go to tests/screenshots/ (not committed).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const shots = path.join(here, "screenshots");
const bin = process.env.CHAPKIT_EXAMPLE_BIN;
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const basePort = Number(process.env.PORT || 18790);
const WAIT = 20000;

mkdirSync(shots, { recursive: true });
const work = mkdtempSync(path.join(tmpdir(), "console-test-"));
const servers = [];
let browser;

// startService runs the example on port and resolves once /health answers.
async function startService(port, env) {
  const child = spawn(bin, ["-addr", "127.0.0.1:" + port, "-db", path.join(work, "db-" + port + ".sqlite")], {
    env: Object.assign({}, process.env, env),
    stdio: ["ignore", "ignore", process.env.DEBUG ? "inherit" : "ignore"],
  });
  servers.push(child);
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      const res = await fetch("http://127.0.0.1:" + port + "/health");
      if (res.ok) return "http://127.0.0.1:" + port;
    } catch (e) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("service on port " + port + " did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  assert.ok(bin, "set CHAPKIT_EXAMPLE_BIN to a built examples/task_execution");
  // No background connections: the test needs nothing but localhost.
  const args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
  browser = await chromium.launch({ executablePath: browserPath, args });
});

after(async () => {
  if (browser) await browser.close();
  for (const s of servers) s.kill("SIGTERM");
  await Promise.all(servers.map((s) => new Promise((r) => (s.exitCode !== null ? r() : s.on("exit", r)))));
  rmSync(work, { recursive: true, force: true });
});

async function newPage(width) {
  const ctx = await browser.newContext({ viewport: { width: width || 1100, height: 900 } });
  return ctx.newPage();
}

// createAndExecute creates a shell task through the form and executes it;
// it returns once the job page shows.
async function createAndExecute(page, command) {
  await page.getByRole("link", { name: "Tasks" }).click();
  await page.getByRole("button", { name: "New task" }).click();
  await page.getByLabel("Command").fill(command);
  await page.getByRole("button", { name: "Create task" }).click();
  const item = page.locator("li.task", { hasText: command }).first();
  await item.waitFor({ timeout: WAIT });
  await item.getByRole("button", { name: "Execute" }).click();
  await page.waitForURL(/#\/jobs\/[0-9A-Z]{26}$/, { timeout: WAIT });
}

function status(page) {
  return page.locator("#job-title + .badge");
}

test("console without API keys", async (t) => {
  const base = await startService(basePort, { CHAPKIT_API_KEYS: "", CHAPKIT_API_KEY_FILE: "" });
  const page = await newPage();
  await page.goto(base + "/console");
  await page.getByRole("heading", { name: "Jobs" }).waitFor({ timeout: WAIT });

  await t.test("a task is created, executed, and its job completes without a reload", async () => {
    await createAndExecute(page, "echo hello from the console");
    let reloaded = false;
    page.once("load", () => (reloaded = true));
    await page.locator('#job-title + .badge[data-status="completed"]').waitFor({ timeout: WAIT });
    assert.equal(reloaded, false, "the page reloaded");
    await page.locator("pre.stdout-text", { hasText: "hello from the console" }).waitFor({ timeout: WAIT });
    assert.equal(await page.getByTestId("exit-code").textContent(), "0");
    await page.screenshot({ path: path.join(shots, "job-completed.png"), fullPage: true });
  });

  await t.test("live output shows lines one by one before the job ends", async () => {
    await createAndExecute(page, "for i in 1 2 3 4 5; do echo line $i; sleep 1; done");
    const live = page.locator("pre.live");
    for (let i = 1; i <= 4; i++) {
      await live.filter({ hasText: "line " + i }).waitFor({ timeout: WAIT });
      const text = await live.textContent();
      const st = await status(page).getAttribute("data-status");
      assert.equal(st, "running", "line " + i + " shown only once the job was " + st);
      assert.ok(!text.includes("line " + (i + 2)), "line " + (i + 2) + " already there with line " + i + ": lines did not arrive one by one");
      if (i === 3) await page.screenshot({ path: path.join(shots, "live-output.png"), fullPage: true });
    }
    await page.locator('#job-title + .badge[data-status="completed"]').waitFor({ timeout: WAIT });
    await page.locator("pre.stdout-text", { hasText: "line 5" }).waitFor({ timeout: WAIT });
  });

  await t.test("a long job is cancelled from the console", async () => {
    await createAndExecute(page, "sleep 120");
    await page.locator('#job-title + .badge[data-status="running"]').waitFor({ timeout: WAIT });
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.locator('#job-title + .badge[data-status="canceled"]').waitFor({ timeout: WAIT });
  });

  await t.test("the jobs list shows every job, newest first, with its status", async () => {
    await page.getByRole("link", { name: "Jobs" }).click();
    const rows = page.locator("li.job");
    await rows.nth(2).waitFor({ timeout: WAIT });
    assert.equal(await rows.count(), 3);
    assert.equal(await rows.nth(0).locator(".badge").getAttribute("data-status"), "canceled");
    assert.equal(await rows.nth(2).locator(".badge").getAttribute("data-status"), "completed");
    await page.getByLabel("Status").selectOption("canceled");
    await page.waitForFunction(() => document.querySelectorAll("li.job").length === 1, null, { timeout: WAIT });
    await page.getByLabel("Status").selectOption("");
    await rows.nth(2).waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(shots, "jobs.png") });
    await page.getByRole("link", { name: "Tasks" }).click();
    await page.locator("li.task").nth(2).waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(shots, "tasks.png") });
  });

  await t.test("a phone-sized screen shows the job page", async () => {
    const phone = await newPage(390);
    await phone.goto(base + "/console#/jobs");
    await phone.locator("li.job").first().waitFor({ timeout: WAIT });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, "page is " + overflow + "px wider than a phone screen");
    await phone.screenshot({ path: path.join(shots, "phone-jobs.png"), fullPage: true });
    await phone.context().close();
  });
});

// api sends one JSON request to the service, as another client would.
async function api(base, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(res.ok, method + " " + p + ": " + res.status);
  return res.status === 204 ? null : res.json();
}

test("console pages: live jobs list, schedules, artifacts, nodes", async (t) => {
  const base = await startService(basePort + 2, { CHAPKIT_API_KEYS: "", CHAPKIT_API_KEY_FILE: "" });
  const page = await newPage();
  await page.goto(base + "/console#/jobs");
  await page.locator('.live-state[data-live="true"]').waitFor({ timeout: WAIT });
  let reloaded = false;
  page.on("load", () => (reloaded = true));
  let jobID;

  await t.test("a job started by another client appears in the jobs list without a reload", async () => {
    const task = await api(base, "POST", "/api/v1/tasks", { command: "echo from another client" });
    jobID = (await api(base, "POST", "/api/v1/tasks/" + task.id + "/$execute")).job_id;
    const row = page.locator('li.job[data-job-id="' + jobID + '"]');
    await row.locator('.badge[data-status="completed"]').waitFor({ timeout: WAIT });
    assert.equal(await page.locator("li.job").first().getAttribute("data-job-id"), jobID, "the new job is not first");
    assert.equal(reloaded, false, "the page reloaded");
    await page.screenshot({ path: path.join(shots, "jobs-live.png") });
  });

  await t.test("the job page links its artifact, and the artifact pages show it", async () => {
    await page.locator('li.job[data-job-id="' + jobID + '"] a.id').click();
    await page.locator('#job-title + .badge[data-status="completed"]').waitFor({ timeout: WAIT });
    await page.locator("a.artifact-link").click();
    await page.waitForURL(/#\/artifacts\/[0-9A-Z]{26}$/, { timeout: WAIT });
    await page.getByRole("heading", { name: /^Artifact / }).waitFor({ timeout: WAIT });
    await page.locator("pre.stdout-text", { hasText: "from another client" }).waitFor({ timeout: WAIT });
    await page.getByRole("link", { name: "Artifacts" }).click();
    await page.locator("li.artifact").first().waitFor({ timeout: WAIT });
    assert.match(await page.getByRole("navigation", { name: "Artifact pages" }).textContent(), /Page 1 of 1 \(1 artifacts/);
    await page.screenshot({ path: path.join(shots, "artifacts.png") });
    assert.equal(reloaded, false, "the page reloaded");
  });

  await t.test("the schedules page shows a scheduled task, its next run and its waiting tick", async () => {
    const task = await api(base, "POST", "/api/v1/tasks", { command: "echo tick", schedule: "@every 1h", schedule_timezone: "Europe/Oslo" });
    await page.getByRole("link", { name: "Schedules" }).click();
    const item = page.locator('li.schedule[data-task-id="' + task.id + '"]');
    await item.waitFor({ timeout: WAIT });
    assert.equal(await item.getByTestId("schedule").textContent(), "@every 1h");
    assert.notEqual(await item.getByTestId("next-run").textContent(), "—");
    assert.match(await item.textContent(), /Europe\/Oslo/);
    // The tick is planned by the service within a second; the page reads
    // the list again when it is opened.
    const waiting = page.getByRole("list", { name: "Waiting executions" }).locator("li.job");
    const deadline = Date.now() + WAIT;
    while ((await waiting.count()) === 0) {
      assert.ok(Date.now() < deadline, "no waiting tick listed");
      await page.getByRole("link", { name: "Jobs" }).click();
      await page.getByRole("link", { name: "Schedules" }).click();
      await page.getByRole("list", { name: "Waiting executions" }).waitFor({ timeout: WAIT });
    }
    assert.equal(await waiting.first().locator(".badge").getAttribute("data-status"), "scheduled");
    await page.screenshot({ path: path.join(shots, "schedules.png"), fullPage: true });
  });

  await t.test("the service page lists the node", async () => {
    await page.getByRole("link", { name: "Service" }).click();
    const rows = page.getByRole("table", { name: "Nodes" }).locator("tr.node");
    await rows.first().waitFor({ timeout: WAIT });
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().locator(".badge.leader").count(), 1);
  });

  await t.test("the new pages fit a phone-sized screen and work with the keyboard", async () => {
    const phone = await newPage(390);
    for (const hash of ["#/schedules", "#/artifacts", "#/health"]) {
      await phone.goto(base + "/console" + hash);
      await phone.locator("main section h2").first().waitFor({ timeout: WAIT });
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, hash + " is " + overflow + "px wider than a phone screen");
    }
    await phone.screenshot({ path: path.join(shots, "phone-service.png"), fullPage: true });
    await phone.context().close();
    // The artifacts page's controls are reached with Tab and have labels.
    await page.getByRole("link", { name: "Artifacts" }).focus();
    await page.keyboard.press("Enter");
    await page.getByLabel("Per page").waitFor({ timeout: WAIT });
    assert.equal(reloaded, false, "the page reloaded");
  });
});

test("console with API keys asks for a key", async () => {
  const base = await startService(basePort + 1, { CHAPKIT_API_KEYS: "sk_console_test_key" });
  const page = await newPage();
  await page.goto(base + "/console");
  await page.getByRole("heading", { name: "API key required" }).waitFor({ timeout: WAIT });
  await page.screenshot({ path: path.join(shots, "key-prompt.png") });
  await page.getByLabel("API key", { exact: true }).fill("wrong-key");
  await page.getByRole("button", { name: "Use key" }).click();
  // A refused key brings the prompt back.
  await page.getByRole("heading", { name: "API key required" }).waitFor({ timeout: WAIT });
  await page.getByLabel("API key", { exact: true }).fill("sk_console_test_key");
  await page.getByRole("button", { name: "Use key" }).click();
  await page.getByRole("heading", { name: "Jobs" }).waitFor({ timeout: WAIT });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("chapkit-console-api-key")), "sk_console_test_key");
  await createAndExecute(page, "echo with a key");
  await page.locator('#job-title + .badge[data-status="completed"]').waitFor({ timeout: WAIT });
  await page.locator("pre.stdout-text", { hasText: "with a key" }).waitFor({ timeout: WAIT });
});
