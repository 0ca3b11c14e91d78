package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// maxIn caps the ids bound in one "IN (...)" list, well below SQLite's
// limit of 32766 host parameters, so a wide tree level never fails.
const maxIn = 500

// Manager reads and writes artifacts. It holds no state besides the
// database handle and the hierarchy, so it is safe for concurrent use.
// Its methods return *problem.Error values of kind KindNotFound for a
// missing artifact, KindUnavailable (503, Retry-After) when the database
// is busy or unreachable, and KindDatabase for any other storage failure.
type Manager struct {
	db *gorm.DB
	h  *Hierarchy
}

// NewManager returns a Manager on db. h names the tree levels; nil means no
// hierarchy. h is copied, so later changes to it have no effect.
func NewManager(db *gorm.DB, h *Hierarchy) *Manager {
	return &Manager{db: db, h: h.clone()}
}

// Hierarchy returns a copy of the manager's hierarchy, or nil when it has
// none.
func (m *Manager) Hierarchy() *Hierarchy { return m.h.clone() }

// Migrate creates or updates the artifacts table, its indexes and its
// self-referencing foreign key.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Artifact{}); err != nil {
		return fmt.Errorf("migrate artifacts: %w", err)
	}
	return nil
}

// isNull reports whether data is the JSON null the client may send.
func isNull(data json.RawMessage) bool {
	d := bytes.TrimSpace(data)
	return len(d) == 0 || bytes.Equal(d, []byte("null"))
}

// Create stores a new artifact (POST). An empty in.ID gets a fresh ULID.
// When an artifact with in.ID exists, Create updates it with the rules of
// [Manager.Update] instead (upsert). The level is the parent's plus one, or
// 0 without a parent; an unknown parent gives level 0 and then fails the
// foreign key. Null data on a plain create fails the NOT NULL constraint.
// Both are KindDatabase errors, rendered as the database error body.
func (m *Manager) Create(ctx context.Context, in In) (*Artifact, error) {
	const op = "artifact.Manager.Create"
	id := in.ID
	if id == "" {
		id = wire.NewID()
	}
	var out *Artifact
	err := m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var existing Artifact
		err := tx.Where("id = ?", id).Take(&existing).Error
		switch {
		case err == nil:
			out, err = m.update(tx, op, &existing, in)
			return err
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		level, err := levelUnder(tx, in.ParentID)
		if err != nil {
			return err
		}
		if isNull(in.Data) {
			// Checked here, not left to the database, so both engines
			// answer with the same text.
			return errNotNullData
		}
		now := wire.Now()
		a := Artifact{ID: id, ParentID: in.ParentID, Level: level, Tags: Tags{}, CreatedAt: now, UpdatedAt: now, Data: in.Data}
		if in.Tags != nil {
			a.Tags = append(Tags{}, (*in.Tags)...)
		}
		if err := tx.Create(&a).Error; err != nil {
			return err
		}
		out = &a
		return nil
	})
	if err != nil {
		return nil, dbError(op, err)
	}
	return out, nil
}

// Insert stores data as a new root artifact inside the caller's
// transaction tx and returns its id, so that a job scheduler can commit the
// artifact together with the job's completion. Failures are KindDatabase,
// or KindUnavailable when the database is busy.
func (m *Manager) Insert(tx *gorm.DB, data json.RawMessage) (string, error) {
	now := wire.Now()
	a := Artifact{ID: wire.NewID(), Data: data, Tags: Tags{}, CreatedAt: now, UpdatedAt: now}
	if isNull(data) {
		a.Data = nil
	}
	// A fresh statement on tx's connection: conditions the caller chained
	// onto tx must not reach the insert.
	if err := tx.Session(&gorm.Session{NewDB: true}).Create(&a).Error; err != nil {
		return "", problem.Database("artifact.Manager.Insert", err)
	}
	return a.ID, nil
}

// InsertMany stores data[i] as a new root artifact with id ids[i], all
// with one statement inside the caller's transaction tx (the completion of
// a batch of jobs). ids and data have the same length. A JSON null fails
// like it does in Insert. Failures are KindDatabase, or KindUnavailable
// when the database is busy; then nothing of the batch is stored.
func (m *Manager) InsertMany(tx *gorm.DB, ids []string, data []json.RawMessage) error {
	if len(ids) == 0 {
		return nil
	}
	now := wire.Now()
	var q strings.Builder
	q.WriteString("INSERT INTO artifacts (id, data, level, tags, created_at, updated_at) VALUES ")
	args := make([]any, 0, len(ids)*4)
	for i, id := range ids {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, 0, '[]', ?, ?)")
		var d any = []byte(data[i])
		if isNull(data[i]) {
			d = nil
		}
		args = append(args, id, d, now, now)
	}
	// Raw SQL on a fresh statement: GORM's reflection would cost more than
	// the insert, and conditions chained onto tx must not reach it.
	if err := tx.Session(&gorm.Session{NewDB: true}).Exec(q.String(), args...).Error; err != nil {
		return problem.Database("artifact.Manager.InsertMany", err)
	}
	return nil
}

// Get returns the artifact id, or a KindNotFound error
// "Entity with id <id> not found".
func (m *Manager) Get(ctx context.Context, id string) (*Artifact, error) {
	const op = "artifact.Manager.Get"
	var a Artifact
	if err := m.db.WithContext(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, problem.NotFound(op, "Entity with id %s not found", id)
		}
		return nil, problem.Database(op, err)
	}
	return &a, nil
}

// List returns artifacts ordered by id (creation order) and the total
// count. page 0 with size 0 returns every artifact, total being their
// number; otherwise it returns page page (from 1) of size size, total
// counting all artifacts; a page past the end, however large, has no
// items. Callers validate page, size >= 1.
func (m *Manager) List(ctx context.Context, page, size int) ([]Artifact, int64, error) {
	return m.ListTagged(ctx, "", page, size)
}

// ListTagged is [Manager.List] restricted to the artifacts whose tags
// hold tag (exact, case-sensitive match of a whole tag); total counts the
// matching artifacts. An empty tag means no restriction.
func (m *Manager) ListTagged(ctx context.Context, tag string, page, size int) ([]Artifact, int64, error) {
	const op = "artifact.Manager.List"
	base := func() *gorm.DB {
		q := m.db.WithContext(ctx).Model(&Artifact{})
		if tag != "" {
			q = withTag(q, tag)
		}
		return q
	}
	items := []Artifact{}
	if page == 0 && size == 0 {
		if err := base().Order("id ASC").Find(&items).Error; err != nil {
			return nil, 0, problem.Database(op, err)
		}
		return items, int64(len(items)), nil
	}
	var total int64
	if err := base().Count(&total).Error; err != nil {
		return nil, 0, problem.Database(op, err)
	}
	offset, ok := wire.PageOffset(page, size)
	if !ok {
		return items, total, nil // past the end of any table
	}
	err := base().Order("id ASC").Offset(offset).Limit(size).Find(&items).Error
	if err != nil {
		return nil, 0, problem.Database(op, err)
	}
	return items, total, nil
}

// Update applies a PUT: null data keeps the stored data, a
// nil ParentID keeps the parent, nil Tags keep the tags (other tags
// replace them). A new parent recomputes the level and
// re-levels every descendant; a data-only update keeps levels. updated_at
// moves only when a column changes. A missing artifact is a KindNotFound
// error "Entity with id <id> not found"; storage failures (an unknown
// parent) are KindDatabase.
func (m *Manager) Update(ctx context.Context, id string, in In) (*Artifact, error) {
	const op = "artifact.Manager.Update"
	var out *Artifact
	err := m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var a Artifact
		if err := tx.Where("id = ?", id).Take(&a).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return problem.NotFound(op, "Entity with id %s not found", id)
			}
			return err
		}
		var err error
		out, err = m.update(tx, op, &a, in)
		return err
	})
	if err != nil {
		return nil, dbError(op, err)
	}
	return out, nil
}

// update assigns in onto the stored row a inside tx.
func (m *Manager) update(tx *gorm.DB, op string, a *Artifact, in In) (*Artifact, error) {
	changes := map[string]any{}
	if !isNull(in.Data) && !sameJSON(a.Data, in.Data) {
		changes["data"] = in.Data
		a.Data = in.Data
	}
	if in.Tags != nil && !slices.Equal(a.Tags, *in.Tags) {
		a.Tags = append(Tags{}, (*in.Tags)...)
		changes["tags"] = a.Tags
	}
	moved := in.ParentID != nil && (a.ParentID == nil || *a.ParentID != *in.ParentID)
	if moved {
		level, err := levelUnder(tx, in.ParentID)
		if err != nil {
			return nil, err
		}
		parent := *in.ParentID
		changes["parent_id"] = parent
		a.ParentID = &parent
		if level != a.Level {
			changes["level"] = level
			a.Level = level
		}
	}
	if len(changes) == 0 {
		return a, nil
	}
	now := wire.Now()
	changes["updated_at"] = now
	a.UpdatedAt = now
	if err := tx.Model(&Artifact{}).Where("id = ?", a.ID).Updates(changes).Error; err != nil {
		return nil, err
	}
	if moved {
		if err := relevel(tx, a.ID, a.Level, now); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// relevel sets every descendant of id to its depth below it, one tree level
// at a time (breadth first, child.level = parent.level + 1). Rows already
// at the right level are left alone, so their updated_at stays. A visited
// set stops the walk if an update has made the tree cyclic.
func relevel(tx *gorm.DB, id string, level int, now time.Time) error {
	seen := map[string]bool{id: true}
	frontier := []string{id}
	for depth := level + 1; len(frontier) > 0; depth++ {
		var next []string
		for _, chunk := range chunks(frontier) {
			var ids []string
			if err := tx.Model(&Artifact{}).Where("parent_id IN ?", chunk).Order("id ASC").Pluck("id", &ids).Error; err != nil {
				return err
			}
			for _, c := range ids {
				if !seen[c] {
					seen[c] = true
					next = append(next, c)
				}
			}
		}
		for _, chunk := range chunks(next) {
			err := tx.Model(&Artifact{}).Where("id IN ? AND level <> ?", chunk, depth).
				Updates(map[string]any{"level": depth, "updated_at": now}).Error
			if err != nil {
				return err
			}
		}
		frontier = next
	}
	return nil
}

// Delete removes the artifact id. Its children keep their level and get a
// null parent_id through the foreign key's ON DELETE SET NULL. A missing
// artifact is a KindNotFound error "Entity with id <id> not found".
func (m *Manager) Delete(ctx context.Context, id string) error {
	const op = "artifact.Manager.Delete"
	res := m.db.WithContext(ctx).Where("id = ?", id).Delete(&Artifact{})
	if res.Error != nil {
		return problem.Database(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return problem.NotFound(op, "Entity with id %s not found", id)
	}
	return nil
}

// Expand returns the artifact id as a tree node with its hierarchy label
// and null children. A missing artifact is a KindNotFound error
// "Artifact with id <id> not found".
func (m *Manager) Expand(ctx context.Context, id string) (*TreeNode, error) {
	a, err := m.find(ctx, "artifact.Manager.Expand", id)
	if err != nil {
		return nil, err
	}
	return m.node(a), nil
}

// Tree returns the subtree rooted at id (which need not be a root): every
// node has a children array, empty for leaves, with siblings ordered by id.
// It reads one query per tree level. A missing artifact is a KindNotFound
// error "Artifact with id <id> not found".
func (m *Manager) Tree(ctx context.Context, id string) (*TreeNode, error) {
	const op = "artifact.Manager.Tree"
	a, err := m.find(ctx, op, id)
	if err != nil {
		return nil, err
	}
	root := m.node(a)
	root.Children = []*TreeNode{}
	nodes := map[string]*TreeNode{id: root}
	frontier := []string{id}
	for len(frontier) > 0 {
		var next []string
		for _, chunk := range chunks(frontier) {
			var rows []Artifact
			if err := m.db.WithContext(ctx).Where("parent_id IN ?", chunk).Order("id ASC").Find(&rows).Error; err != nil {
				return nil, problem.Database(op, err)
			}
			for i := range rows {
				r := &rows[i]
				if _, ok := nodes[r.ID]; ok {
					continue // a cycle made by an update; show each node once
				}
				n := m.node(r)
				n.Children = []*TreeNode{}
				nodes[r.ID] = n
				p := nodes[*r.ParentID]
				p.Children = append(p.Children, n)
				next = append(next, r.ID)
			}
		}
		frontier = next
	}
	return root, nil
}

// find loads id for Expand and Tree, whose not-found text differs from
// the CRUD routes'.
func (m *Manager) find(ctx context.Context, op, id string) (*Artifact, error) {
	var a Artifact
	if err := m.db.WithContext(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, problem.NotFound(op, "Artifact with id %s not found", id)
		}
		return nil, problem.Database(op, err)
	}
	return &a, nil
}

// node builds the tree node of a, labelled by the manager's hierarchy.
func (m *Manager) node(a *Artifact) *TreeNode {
	n := &TreeNode{Out: a.Out()}
	if m.h != nil {
		label, name := m.h.LabelFor(a.Level), m.h.Name
		n.LevelLabel, n.Hierarchy = &label, &name
	}
	return n
}

// levelUnder is the level of a child of parentID: 0 without a parent or
// when the parent does not exist (the insert then fails on the foreign key).
func levelUnder(tx *gorm.DB, parentID *string) (int, error) {
	if parentID == nil {
		return 0, nil
	}
	var levels []int
	if err := tx.Model(&Artifact{}).Where("id = ?", *parentID).Limit(1).Pluck("level", &levels).Error; err != nil {
		return 0, err
	}
	if len(levels) == 0 {
		return 0, nil
	}
	return levels[0] + 1, nil
}

// sameJSON reports whether a and b hold equal JSON values, so that an
// update resending the stored data (formatted differently or not) changes
// nothing, as Python compares the values rather than their bytes.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// chunks splits ids into slices of at most maxIn.
func chunks(ids []string) [][]string {
	var out [][]string
	for len(ids) > maxIn {
		out = append(out, ids[:maxIn])
		ids = ids[maxIn:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// dbError passes a *problem.Error through and wraps anything else with
// [problem.Database]: KindUnavailable when busy, else KindDatabase.
func dbError(op string, err error) error {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, gorm.ErrForeignKeyViolated) {
		err = errForeignKey
	}
	return problem.Database(op, err)
}

// errForeignKey restores SQLite's own text for a foreign-key failure. With
// TranslateError GORM replaces the driver error by its generic
// ErrForeignKeyViolated ("violates foreign key constraint"), but the family
// E body shows the driver's text, which clients know as SQLite's.
var errForeignKey error = foreignKeyError{}

// notNullError is a missing artifact body, worded as SQLite words it, so
// the database error body is the same on every engine.
type notNullError struct{}

func (notNullError) Error() string { return "NOT NULL constraint failed: artifacts.data" }

var errNotNullData error = notNullError{}

type foreignKeyError struct{}

func (foreignKeyError) Error() string { return "FOREIGN KEY constraint failed" }
func (foreignKeyError) Unwrap() error { return gorm.ErrForeignKeyViolated }
