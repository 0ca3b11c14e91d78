package task

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/inject"
	"github.com/chapkit-go/chapkit/internal/livelog"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/registry"
)

// JobKind is the job kind task executions are stored under.
const JobKind = "chapkit.task"

// jobSubmitter is what the manager needs of the job scheduler.
type jobSubmitter interface {
	Submit(ctx context.Context, kind string, args any) (string, error)
	SubmitMany(ctx context.Context, kind string, args []any) ([]string, error)
}

// artifactInserter is what executions need of the artifact store: an
// insert inside the transaction that completes the job.
type artifactInserter interface {
	Insert(tx *gorm.DB, data json.RawMessage) (string, error)
	InsertMany(tx *gorm.DB, ids []string, data []json.RawMessage) error
}

// Config wires a [Manager]. Jobs and Artifacts may be nil for a manager
// that only stores tasks; Execute then answers 400 (docs/http-api.md).
type Config struct {
	Jobs      jobSubmitter
	Artifacts artifactInserter
	// Registry holds the functions "python" tasks name; nil means none.
	Registry *registry.Registry
	// Container provides what registered functions inject; nil means none.
	Container *inject.Container
	// MaxOutput caps stdout and stderr of shell tasks, each; 0 = 1 MiB.
	MaxOutput int64
	// DefaultTimeout applies to executions of tasks without their own
	// timeout_seconds; 0 = none.
	DefaultTimeout time.Duration
	Logger         *slog.Logger

	// InheritEnv lists the names of the service's environment variables
	// that shell tasks inherit. Nil means all of them; an empty non-nil
	// slice means none. Either way the service's own secrets are never
	// inherited: CHAPKIT_API_KEYS, CHAPKIT_API_KEY_FILE, DATABASE_URL,
	// PGPASSWORD, PGPASSFILE, MYSQL_PWD, and any variable whose value
	// contains one of Secrets (docs/security.md).
	InheritEnv []string
	// ExtraEnv holds "NAME=value" entries added to every shell task's
	// environment; they replace inherited variables of the same name and
	// are not filtered.
	ExtraEnv []string
	// Secrets are values the host configured in code (API keys, the
	// database URL or password). An inherited variable whose value
	// contains any of them is dropped from tasks' environment. Empty
	// strings are ignored.
	Secrets []string
	// WorkDir is the working directory of shell tasks; empty means the
	// service's own.
	WorkDir string
	// Credential, if not nil, runs shell tasks as that user and group
	// (uid, gid and supplementary groups). Switching user needs the
	// privilege to do so, normally a service started as root.
	Credential *syscall.Credential
	// Live, if not nil, receives the output of shell tasks as they write
	// it, keyed by job ID (docs/live-output.md); nil means none.
	Live *livelog.Hub
	// Now is the clock of schedules and retry delays; nil means time.Now.
	Now func() time.Time
}

func (m *Manager) now() time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return time.Now()
}

// Manager stores task templates and executes them. It is safe for
// concurrent use.
type Manager struct {
	db    *gorm.DB
	cfg   Config
	log   *slog.Logger
	cache taskCache // tasks read by executions (cache.go)
	// stampReads counts current's reads of a task's updated_at, so tests
	// can tell which executions read the task when they start.
	stampReads atomic.Int64
}

// NewManager returns a manager over db.
func NewManager(db *gorm.DB, cfg Config) *Manager {
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{db: db, cfg: cfg, log: cfg.Logger}
}

// Migrate creates or updates the tasks table.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return db.WithContext(ctx).AutoMigrate(&Task{})
}

func notFound(op, id string) error { return problem.NotFound(op, "Entity with id %s not found", id) }

// dbErr wraps a storage error for the client (family E). Lookups use Find,
// so a missing row is never an error here but a nil result.
func dbErr(op string, err error) error { return problem.Database(op, err) }

// Create stores a new task. When in.ID names an existing task, that task is
// updated instead by the PUT rules (upsert).
func (m *Manager) Create(ctx context.Context, in In) (*Task, error) {
	const op = "task.Manager.Create"
	if in.ID != "" {
		t, err := m.find(ctx, in.ID)
		if err != nil {
			return nil, dbErr(op, err)
		}
		if t != nil {
			return m.save(ctx, op, t, applyPut(*t, in))
		}
	} else {
		in.ID = wire.NewID()
	}
	now := wire.Now()
	t := &Task{ID: in.ID, Command: in.Command, TaskType: in.TaskType, Parameters: in.Parameters,
		Enabled: in.Enabled, TimeoutSeconds: in.TimeoutSeconds, Options: in.Options, CreatedAt: now, UpdatedAt: now}
	if err := m.db.WithContext(ctx).Create(t).Error; err != nil {
		return nil, dbErr(op, err)
	}
	return t, nil
}

// find returns the task or nil when there is none.
func (m *Manager) find(ctx context.Context, id string) (*Task, error) {
	var t Task
	if err := m.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&t).Error; err != nil {
		return nil, err
	}
	if t.ID == "" {
		return nil, nil
	}
	return &t, nil
}

// Get returns the task, or a KindNotFound error.
func (m *Manager) Get(ctx context.Context, id string) (*Task, error) {
	const op = "task.Manager.Get"
	t, err := m.find(ctx, id)
	if err != nil {
		return nil, dbErr(op, err)
	}
	if t == nil {
		return nil, notFound(op, id)
	}
	return t, nil
}

// ListParams filters and pages a task list. Page and Size are used only
// when both are positive.
type ListParams struct {
	Enabled    *bool
	Page, Size int
}

// List returns the matching tasks and their total count. With an enabled
// filter they are newest first (ties: id descending), otherwise by id.
func (m *Manager) List(ctx context.Context, p ListParams) ([]Task, int64, error) {
	const op = "task.Manager.List"
	q := m.db.WithContext(ctx).Model(&Task{})
	if p.Enabled != nil {
		q = q.Where("enabled = ?", *p.Enabled).Order("created_at DESC, id DESC")
	} else {
		q = q.Order("id ASC")
	}
	tasks := []Task{}
	if p.Page > 0 && p.Size > 0 {
		var total int64
		if err := q.Session(&gorm.Session{}).Count(&total).Error; err != nil {
			return nil, 0, dbErr(op, err)
		}
		offset, ok := wire.PageOffset(p.Page, p.Size)
		if !ok {
			return tasks, total, nil // past the end of any table
		}
		if err := q.Offset(offset).Limit(p.Size).Find(&tasks).Error; err != nil {
			return nil, 0, dbErr(op, err)
		}
		return tasks, total, nil
	}
	if err := q.Find(&tasks).Error; err != nil {
		return nil, 0, dbErr(op, err)
	}
	return tasks, int64(len(tasks)), nil
}

// Update replaces a task by the PUT rules (docs/http-api.md): command,
// task_type and enabled are assigned (the latter two from their defaults
// when omitted); parameters and timeout_seconds only when not null.
func (m *Manager) Update(ctx context.Context, id string, in In) (*Task, error) {
	const op = "task.Manager.Update"
	t, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.save(ctx, op, t, applyPut(*t, in))
}

func applyPut(t Task, in In) Task {
	t.Command, t.TaskType, t.Enabled = in.Command, in.TaskType, in.Enabled
	if in.Parameters != nil {
		t.Parameters = in.Parameters
	}
	if in.TimeoutSeconds != nil {
		t.TimeoutSeconds = in.TimeoutSeconds
	}
	// Like parameters, schedule and retry fields change only when given:
	// a client that does not know them keeps them. PATCH with null
	// removes one.
	t.Options = t.Options.overlay(in.Options)
	return t
}

// Patch applies a JSON merge patch (RFC 7396) to a task.
// The patched task is validated like a TaskIn body; on failure nothing
// changes.
func (m *Manager) Patch(ctx context.Context, id string, patch json.RawMessage) (*Task, error) {
	const op = "task.Manager.Patch"
	t, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	members := map[string]any{
		"command": t.Command, "task_type": t.TaskType, "parameters": nullIfEmpty(t.Parameters),
		"enabled": t.Enabled, "timeout_seconds": t.TimeoutSeconds,
	}
	t.Options.members(members)
	doc, err := json.Marshal(members)
	if err != nil {
		return nil, problem.Wrap(problem.KindInternal, op, err, "encode task")
	}
	// RFC 7396 reads null as "remove the member", which for these fields
	// would quietly restore the defaults; null is not a value they take.
	var given map[string]any
	if json.Unmarshal(patch, &given) == nil {
		var items []problem.Violation
		for _, f := range []struct{ name, typ, msg string }{
			{"command", "string_type", "Input should be a valid string"},
			{"task_type", "literal_error", "Input should be 'shell' or 'python'"},
			{"enabled", "bool_type", "Input should be a valid boolean"},
		} {
			if v, present := given[f.name]; present && v == nil {
				items = append(items, problem.Violation{Type: f.typ, Loc: []any{"body", f.name}, Msg: f.msg, Input: nil})
			}
		}
		if len(items) > 0 {
			return nil, problem.Invalid(op, items...)
		}
	}
	merged, err := jsonpatch.MergePatch(doc, patch)
	if err != nil {
		return nil, problem.Invalid(op, problem.Violation{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: string(patch)})
	}
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil {
		return nil, problem.Wrap(problem.KindInternal, op, err, "decode patched task")
	}
	in, err := DecodeIn(body)
	if err != nil {
		return nil, err
	}
	next := *t
	next.Command, next.TaskType, next.Enabled = in.Command, in.TaskType, in.Enabled
	next.Parameters, next.TimeoutSeconds, next.Options = in.Parameters, in.TimeoutSeconds, in.Options
	return m.save(ctx, op, t, next)
}

// save stores next over old, bumping updated_at only when a column changed.
func (m *Manager) save(ctx context.Context, op string, old *Task, next Task) (*Task, error) {
	if sameContent(old, &next) {
		return old, nil
	}
	next.UpdatedAt = wire.Now()
	cols := next.Options.columns()
	for k, v := range map[string]any{
		"command": next.Command, "task_type": next.TaskType, "parameters": nullableJSON(next.Parameters),
		"enabled": next.Enabled, "timeout_seconds": next.TimeoutSeconds, "updated_at": next.UpdatedAt,
	} {
		cols[k] = v
	}
	err := m.db.WithContext(ctx).Model(&Task{}).Where("id = ?", old.ID).Updates(cols).Error
	m.cache.drop(old.ID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	return &next, nil
}

func nullableJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return []byte(raw)
}

func sameContent(a, b *Task) bool {
	sameTimeout := (a.TimeoutSeconds == nil) == (b.TimeoutSeconds == nil) &&
		(a.TimeoutSeconds == nil || *a.TimeoutSeconds == *b.TimeoutSeconds)
	return a.Command == b.Command && a.TaskType == b.TaskType && a.Enabled == b.Enabled &&
		bytes.Equal(a.Parameters, b.Parameters) && sameTimeout && a.Options.equal(b.Options)
}

// Delete removes a task. Its artifacts and jobs are kept.
func (m *Manager) Delete(ctx context.Context, id string) error {
	const op = "task.Manager.Delete"
	res := m.db.WithContext(ctx).Where("id = ?", id).Delete(&Task{})
	m.cache.drop(id)
	if res.Error != nil {
		return dbErr(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return notFound(op, id)
	}
	return nil
}

// Count returns the number of tasks.
func (m *Manager) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := m.db.WithContext(ctx).Model(&Task{}).Count(&n).Error; err != nil {
		return 0, dbErr("task.Manager.Count", err)
	}
	return n, nil
}

// jobArgs are the arguments stored with a task job. The task type is taken
// at submission so a job recovered after a restart runs the
// same way.
type jobArgs struct {
	TaskID   string `json:"task_id"`
	TaskType string `json:"task_type"`
	// TaskStamp is the task's updated_at as the submission read it. A job
	// that starts with its submission (a free slot on the submitting
	// node) runs that version without reading the task again: its start
	// and the read are one moment. Any other job reads the task when it
	// starts. Absent in jobs of earlier releases and in schedule ticks.
	TaskStamp *time.Time `json:"task_updated_at,omitempty"`
}

// Execute checks the task and submits one job for it. It
// returns the job id; KindBadRequest for a missing scheduler or artifact
// store, an unknown or a disabled task; the scheduler's KindUnavailable
// errors while draining, when the queue is full or the database is busy;
// its KindDatabase errors; KindConflict for any other failure to submit.
func (m *Manager) Execute(ctx context.Context, id string) (string, error) {
	const op = "task.Manager.Execute"
	args, err := m.executable(ctx, op, id)
	if err != nil {
		return "", err
	}
	jobID, err := m.cfg.Jobs.Submit(ctx, JobKind, args)
	if err != nil {
		return "", submitErr(op, err)
	}
	return jobID, nil
}

// ExecuteMany submits one execution per element of ids (a task may appear
// several times), all stored in one transaction, and returns the job ids
// in the order of ids. Every task is checked first, as Execute checks it:
// when one is unknown or disabled, the error names it and nothing is
// submitted. Either every job is stored or none is; the errors are those
// of Execute, and ErrQueueFull's KindUnavailable when the jobs would not
// fit below the scheduler's pending bound. It is safe for concurrent use;
// an empty ids submits nothing.
func (m *Manager) ExecuteMany(ctx context.Context, ids []string) ([]string, error) {
	const op = "task.Manager.ExecuteMany"
	args := make([]any, len(ids))
	for i, id := range ids {
		a, err := m.executable(ctx, op, id)
		if err != nil {
			return nil, err
		}
		args[i] = a
	}
	if len(args) == 0 {
		return []string{}, nil
	}
	jobIDs, err := m.cfg.Jobs.SubmitMany(ctx, JobKind, args)
	if err != nil {
		return nil, submitErr(op, err)
	}
	return jobIDs, nil
}

// executable checks that task id can be executed now and returns the
// arguments of its job.
func (m *Manager) executable(ctx context.Context, op, id string) (jobArgs, error) {
	if m.cfg.Jobs == nil {
		return jobArgs{}, problem.BadRequest(op, "Task execution requires a scheduler. Use ServiceBuilder.with_jobs() to enable.")
	}
	if m.cfg.Artifacts == nil {
		return jobArgs{}, problem.BadRequest(op, "Task execution requires artifacts. Use ServiceBuilder.with_artifacts() before with_tasks().")
	}
	t, stamp, err := m.current(ctx, id)
	if err != nil {
		return jobArgs{}, dbErr(op, err)
	}
	if t == nil {
		return jobArgs{}, problem.BadRequest(op, "Task %s not found", id)
	}
	if !t.Enabled {
		return jobArgs{}, problem.BadRequest(op, "Cannot execute disabled task %s", id)
	}
	return jobArgs{TaskID: t.ID, TaskType: t.TaskType, TaskStamp: &stamp}, nil
}

// submitErr classifies a failure to submit: a storage failure is the
// server's, never the client's conflict.
func submitErr(op string, err error) error {
	if problem.Is(err, problem.KindUnavailable) || problem.Is(err, problem.KindDatabase) {
		return err
	}
	return problem.Wrap(problem.KindConflict, op, err, "%s", err.Error())
}

// ValidateOrphans disables every "python" task whose function is not in
// reg and returns how many such tasks there are, counting ones that were
// disabled already. Shell tasks are never touched.
func (m *Manager) ValidateOrphans(ctx context.Context, reg *registry.Registry) (int, error) {
	const op = "task.Manager.ValidateOrphans"
	var tasks []Task
	if err := m.db.WithContext(ctx).Where("task_type = ?", TypePython).Order("id ASC").Find(&tasks).Error; err != nil {
		return 0, dbErr(op, err)
	}
	var ids, names []string
	for _, t := range tasks {
		if reg != nil && reg.Has(t.Command) {
			continue
		}
		ids, names = append(ids, t.ID), append(names, t.Command)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	err := m.db.WithContext(ctx).Model(&Task{}).Where("id IN ? AND enabled = ?", ids, true).
		Updates(map[string]any{"enabled": false, "updated_at": wire.Now()}).Error
	m.cache.clear()
	if err != nil {
		return 0, dbErr(op, err)
	}
	m.log.Warn("disabled python tasks whose function is not registered", "count", len(ids), "task_ids", ids, "functions", names)
	return len(ids), nil
}

// ensure the concrete types satisfy the consumer interfaces.
var (
	_ jobSubmitter     = (*job.Scheduler)(nil)
	_ artifactInserter = (*artifact.Manager)(nil)
)
