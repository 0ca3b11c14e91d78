package chapkit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// This file holds a small client written the way chap-core talks to a
// chapkit service: a probe of /api/v1/info that needs an id, task CRUD,
// $execute, job lists filtered with ?status=, job polling, artifacts with
// tags and $download, and /health. Objects a typed client models in full
// (tasks, artifacts, the execute answer) are decoded strictly: a key the
// model does not know fails. Info, jobs and health are decoded tolerantly,
// as such a client ignores keys it does not know there, but the keys it
// reads must be present.

// ccInfo is the service info as the client reads it.
type ccInfo struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	Version     string `json:"version"`
}

// ccTask is a task, modelled in full.
type ccTask struct {
	ID             string          `json:"id"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	Command        string          `json:"command"`
	TaskType       string          `json:"task_type"`
	Parameters     json.RawMessage `json:"parameters"`
	Enabled        bool            `json:"enabled"`
	TimeoutSeconds *int            `json:"timeout_seconds"`
}

// ccTaskIn is the body of a task create or replace.
type ccTaskIn struct {
	Command    string         `json:"command"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Enabled    *bool          `json:"enabled,omitempty"`
}

// ccExecuted is the answer of $execute, modelled in full.
type ccExecuted struct {
	JobID   string `json:"job_id"`
	Message string `json:"message"`
}

// ccJob is a job as the client reads it.
type ccJob struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	ArtifactID *string `json:"artifact_id"`
}

// ccArtifact is an artifact, modelled in full.
type ccArtifact struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
	Data      json.RawMessage `json:"data"`
	ParentID  *string         `json:"parent_id"`
	Level     int             `json:"level"`
	Tags      []string        `json:"tags"`
}

// ccHealth is the health answer as the client reads it.
type ccHealth struct {
	Status string `json:"status"`
}

// ccClient talks to one service. Its methods return an error for any
// status other than the one the call expects, naming the body.
type ccClient struct {
	base string
	http *http.Client
}

// ccStatusError is an unexpected answer.
type ccStatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *ccStatusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.Path, e.Status, truncate(e.Body))
}

// do sends one request and returns the answer's body when its status is
// want.
func (c *ccClient) do(ctx context.Context, method, path string, body any, want int) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != want {
		return resp, b, &ccStatusError{method, path, resp.StatusCode, string(b)}
	}
	return resp, b, nil
}

// decodeInto decodes a JSON object into v after checking that each of
// required is a key of it. strict rejects keys v has no field for.
func decodeInto(b []byte, v any, strict bool, required ...string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	for _, k := range required {
		if _, ok := keys[k]; !ok {
			return fmt.Errorf("missing key %q in %s", k, truncate(string(b)))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}

// decodeList decodes a JSON array of objects, each as decodeInto does.
func decodeList[T any](b []byte, strict bool, required ...string) ([]T, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON array: %w", err)
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := decodeInto(r, &v, strict, required...); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

var (
	taskKeys     = []string{"id", "created_at", "updated_at", "command", "task_type", "parameters", "enabled", "timeout_seconds"}
	artifactKeys = []string{"id", "created_at", "updated_at", "data", "parent_id", "level", "tags"}
	jobKeys      = []string{"id", "status", "error", "artifact_id"}
)

// IsChapkitService is the probe: the info answers 200 with an id.
func (c *ccClient) IsChapkitService(ctx context.Context) bool {
	info, err := c.Info(ctx)
	return err == nil && info.ID != ""
}

func (c *ccClient) Info(ctx context.Context) (ccInfo, error) {
	var v ccInfo
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/info", nil, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, false, "id", "display_name", "version")
	}
	return v, err
}

func (c *ccClient) Health(ctx context.Context) (ccHealth, error) {
	var v ccHealth
	_, b, err := c.do(ctx, http.MethodGet, "/health", nil, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, false, "status")
	}
	return v, err
}

// CreateTask returns the task and the Location header of the answer.
func (c *ccClient) CreateTask(ctx context.Context, in ccTaskIn) (ccTask, string, error) {
	var v ccTask
	resp, b, err := c.do(ctx, http.MethodPost, "/api/v1/tasks", in, http.StatusCreated)
	if err != nil {
		return v, "", err
	}
	return v, resp.Header.Get("Location"), decodeInto(b, &v, true, taskKeys...)
}

func (c *ccClient) GetTask(ctx context.Context, id string) (ccTask, error) {
	var v ccTask
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+id, nil, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, true, taskKeys...)
	}
	return v, err
}

func (c *ccClient) ListTasks(ctx context.Context) ([]ccTask, error) {
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/tasks", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return decodeList[ccTask](b, true, taskKeys...)
}

func (c *ccClient) ReplaceTask(ctx context.Context, id string, in ccTaskIn) (ccTask, error) {
	var v ccTask
	_, b, err := c.do(ctx, http.MethodPut, "/api/v1/tasks/"+id, in, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, true, taskKeys...)
	}
	return v, err
}

func (c *ccClient) DeleteTask(ctx context.Context, id string) error {
	_, _, err := c.do(ctx, http.MethodDelete, "/api/v1/tasks/"+id, nil, http.StatusNoContent)
	return err
}

// Execute returns the answer and its Location header.
func (c *ccClient) Execute(ctx context.Context, taskID string) (ccExecuted, string, error) {
	var v ccExecuted
	resp, b, err := c.do(ctx, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", nil, http.StatusAccepted)
	if err != nil {
		return v, "", err
	}
	return v, resp.Header.Get("Location"), decodeInto(b, &v, true, "job_id", "message")
}

// ListJobs lists the jobs; a non-empty status filters them with ?status=.
func (c *ccClient) ListJobs(ctx context.Context, status string) ([]ccJob, error) {
	path := "/api/v1/jobs"
	if status != "" {
		path += "?status=" + url.QueryEscape(status)
	}
	_, b, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return decodeList[ccJob](b, false, jobKeys...)
}

func (c *ccClient) GetJob(ctx context.Context, id string) (ccJob, error) {
	var v ccJob
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+id, nil, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, false, jobKeys...)
	}
	return v, err
}

func (c *ccClient) CancelJob(ctx context.Context, id string) error {
	_, _, err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", nil, http.StatusAccepted)
	return err
}

func (c *ccClient) GetArtifact(ctx context.Context, id string) (ccArtifact, error) {
	var v ccArtifact
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/artifacts/"+id, nil, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, true, artifactKeys...)
	}
	return v, err
}

// ListArtifacts lists the artifacts; a non-empty tag filters them.
func (c *ccClient) ListArtifacts(ctx context.Context, tag string) ([]ccArtifact, error) {
	path := "/api/v1/artifacts"
	if tag != "" {
		path += "?tag=" + url.QueryEscape(tag)
	}
	_, b, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return decodeList[ccArtifact](b, true, artifactKeys...)
}

// TagArtifact replaces the artifact's data and tags.
func (c *ccClient) TagArtifact(ctx context.Context, a ccArtifact, tags []string) (ccArtifact, error) {
	var v ccArtifact
	body := map[string]any{"data": a.Data, "tags": tags}
	_, b, err := c.do(ctx, http.MethodPut, "/api/v1/artifacts/"+a.ID, body, http.StatusOK)
	if err == nil {
		err = decodeInto(b, &v, true, artifactKeys...)
	}
	return v, err
}

// Download fetches $download, asking for text when asText, and returns
// the body, its media type and the file name of Content-Disposition.
func (c *ccClient) Download(ctx context.Context, id string, asText bool) (body []byte, mediaType, filename string, err error) {
	path := "/api/v1/artifacts/" + id + "/$download"
	if asText {
		path += "?format=text"
	}
	resp, b, err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return nil, "", "", err
	}
	mediaType, _, err = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, "", "", err
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil {
		return nil, "", "", fmt.Errorf("Content-Disposition: %w", err)
	}
	return b, mediaType, params["filename"], nil
}

// ccWaitJob polls a job until its status is want, failing the test at the
// deadline or when the job ends in another status.
func ccWaitJob(t *testing.T, c *ccClient, id, want string) ccJob {
	t.Helper()
	var j ccJob
	testkit.Eventually(t, testkit.Deadline, "job "+id+" "+want, func() bool {
		var err error
		j, err = c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatalf("GetJob: %v", err)
		}
		if j.Status != want && testkit.Terminal(j.Status) {
			t.Fatalf("job %s ended %s (error %v), want %s", id, j.Status, j.Error, want)
		}
		return j.Status == want
	})
	return j
}

func jobIDs(js []ccJob) []string {
	ids := make([]string, 0, len(js))
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestChapCoreStyleClientFlow runs the task, job and artifact flow of a
// chap-core-style client against the real app over HTTP.
func TestChapCoreStyleClientFlow(t *testing.T) {
	t.Parallel()
	app := apptest.Start(t, builderFor(t))
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	c := &ccClient{base: srv.URL, http: srv.Client()}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The probe and the service's own descriptions.
	if !c.IsChapkitService(ctx) {
		t.Fatal("probe: the service does not look like a chapkit service")
	}
	info, err := c.Info(ctx)
	must(err)
	if diff := cmp.Diff(ccInfo{ID: "test", DisplayName: "Test", Version: "1.0.0"}, info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	health, err := c.Health(ctx)
	must(err)
	if health.Status != "healthy" {
		t.Errorf("health status = %q, want healthy", health.Status)
	}

	// Task CRUD.
	created, loc, err := c.CreateTask(ctx, ccTaskIn{Command: "echo hello; echo oops >&2", Parameters: map[string]any{"k": "v"}})
	must(err)
	if want := srv.URL + "/api/v1/tasks/" + created.ID; loc != want {
		t.Errorf("create Location = %q, want %q", loc, want)
	}
	ignoreTimes := cmpopts.IgnoreFields(ccTask{}, "ID", "CreatedAt", "UpdatedAt")
	wantTask := ccTask{Command: "echo hello; echo oops >&2", TaskType: "shell", Parameters: json.RawMessage(`{"k":"v"}`), Enabled: true}
	if diff := cmp.Diff(wantTask, created, ignoreTimes); diff != "" {
		t.Errorf("created task (-want +got):\n%s", diff)
	}
	got, err := c.GetTask(ctx, created.ID)
	must(err)
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("read task (-created +read):\n%s", diff)
	}
	tasks, err := c.ListTasks(ctx)
	must(err)
	if !slices.ContainsFunc(tasks, func(x ccTask) bool { return x.ID == created.ID }) {
		t.Errorf("task list %v lacks %s", tasks, created.ID)
	}
	enabled := true
	replaced, err := c.ReplaceTask(ctx, created.ID, ccTaskIn{Command: "echo hello; echo oops >&2", Parameters: map[string]any{"k": "w"}, Enabled: &enabled})
	must(err)
	if string(replaced.Parameters) != `{"k":"w"}` || replaced.ID != created.ID {
		t.Errorf("replaced task = %+v, want id %s and parameters {\"k\":\"w\"}", replaced, created.ID)
	}

	// Execute, poll the job, list jobs by status. A second, long job is
	// running while the lists are read, so each filter has a job to
	// leave out.
	exec, jobLoc, err := c.Execute(ctx, created.ID)
	must(err)
	if want := srv.URL + "/api/v1/jobs/" + exec.JobID; jobLoc != want {
		t.Errorf("execute Location = %q, want %q", jobLoc, want)
	}
	if !strings.Contains(exec.Message, exec.JobID) {
		t.Errorf("execute message %q does not name job %s", exec.Message, exec.JobID)
	}
	done := ccWaitJob(t, c, exec.JobID, "completed")
	if done.ArtifactID == nil {
		t.Fatal("completed job has no artifact_id")
	}
	long, _, err := c.CreateTask(ctx, ccTaskIn{Command: "sleep 30"})
	must(err)
	slow, _, err := c.Execute(ctx, long.ID)
	must(err)
	ccWaitJob(t, c, slow.JobID, "running")
	running, err := c.ListJobs(ctx, "running")
	must(err)
	if diff := cmp.Diff([]string{slow.JobID}, jobIDs(running)); diff != "" {
		t.Errorf("jobs ?status=running (-want +got):\n%s", diff)
	}
	completed, err := c.ListJobs(ctx, "completed")
	must(err)
	if diff := cmp.Diff([]string{exec.JobID}, jobIDs(completed)); diff != "" {
		t.Errorf("jobs ?status=completed (-want +got):\n%s", diff)
	}
	must(c.CancelJob(ctx, slow.JobID))
	ccWaitJob(t, c, slow.JobID, "canceled")

	// The job's artifact: read, tag, list by tag, download.
	art, err := c.GetArtifact(ctx, *done.ArtifactID)
	must(err)
	if diff := cmp.Diff([]string{}, art.Tags); diff != "" {
		t.Errorf("new artifact tags (-want +got):\n%s", diff)
	}
	var out struct {
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
		ExitCode int    `json:"exit_code"`
	}
	must(json.Unmarshal(art.Data, &out))
	if out.Stdout != "hello\n" || out.Stderr != "oops\n" || out.ExitCode != 0 {
		t.Errorf("artifact data = %+v, want stdout hello, stderr oops, exit 0", out)
	}
	tagged, err := c.TagArtifact(ctx, art, []string{"chap", "run-1"})
	must(err)
	if diff := cmp.Diff([]string{"chap", "run-1"}, tagged.Tags); diff != "" {
		t.Errorf("tags after update (-want +got):\n%s", diff)
	}
	byTag, err := c.ListArtifacts(ctx, "chap")
	must(err)
	if len(byTag) != 1 || byTag[0].ID != art.ID {
		t.Errorf("artifacts ?tag=chap = %v, want only %s", byTag, art.ID)
	}
	none, err := c.ListArtifacts(ctx, "absent")
	must(err)
	if len(none) != 0 {
		t.Errorf("artifacts ?tag=absent = %v, want none", none)
	}
	file, ct, name, err := c.Download(ctx, art.ID, false)
	must(err)
	if ct != "application/json" || name != "artifact-"+art.ID+".json" {
		t.Errorf("download: %s %q, want application/json artifact-%s.json", ct, name, art.ID)
	}
	var fileData, artData any
	must(json.Unmarshal(file, &fileData))
	must(json.Unmarshal(art.Data, &artData))
	if diff := cmp.Diff(artData, fileData); diff != "" {
		t.Errorf("downloaded JSON (-artifact data +file):\n%s", diff)
	}
	text, ct, name, err := c.Download(ctx, art.ID, true)
	must(err)
	if ct != "text/plain" || name != "artifact-"+art.ID+".txt" || !strings.HasPrefix(string(text), "hello\n") {
		t.Errorf("text download: %s %q %q, want text/plain, artifact-%s.txt, starting with hello", ct, name, text, art.ID)
	}

	// Delete: the task is gone, its artifact stays.
	must(c.DeleteTask(ctx, created.ID))
	_, err = c.GetTask(ctx, created.ID)
	var se *ccStatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("GetTask after delete: %v, want a 404", err)
	}
	if _, err := c.GetArtifact(ctx, art.ID); err != nil {
		t.Errorf("artifact after its task was deleted: %v", err)
	}
}

// TestChapCoreStyleClientProbeRejectsNonChapkit checks that the probe can
// say no: a server whose info has no id is not a chapkit service.
func TestChapCoreStyleClientProbeRejectsNonChapkit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"display_name":"Other","version":"1"}`)
	}))
	t.Cleanup(srv.Close)
	c := &ccClient{base: srv.URL, http: srv.Client()}
	if c.IsChapkitService(context.Background()) {
		t.Error("probe accepted an info without id")
	}
}
