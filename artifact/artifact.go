// Package artifact stores artifacts: JSON payloads arranged in a tree, each
// with a level computed from its parent (docs/http-api.md, artifacts).
//
// [Manager] is the domain layer the HTTP routes call; it returns
// *problem.Error values and never chooses an HTTP status itself.
package artifact

import (
	"encoding/json"
	"time"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// Artifact is a row of the artifacts table. Data holds JSON text; a root
// has a nil ParentID and level 0. Times are UTC with microsecond precision.
type Artifact struct {
	ID       string  `gorm:"primaryKey;type:text" json:"id"`
	ParentID *string `gorm:"type:text;index" json:"parent_id"`
	// Parent exists only so AutoMigrate creates the foreign key
	// parent_id → artifacts(id) ON DELETE SET NULL; it is never loaded.
	// Without the constraint an unknown parent_id would be stored instead
	// of failing, and deleting a parent would leave dangling ids.
	Parent *Artifact `gorm:"foreignKey:ParentID;references:ID;constraint:OnDelete:SET NULL" json:"-"`
	// Data is the payload as JSON text. Nil is stored as SQL NULL, which
	// the NOT NULL constraint rejects: that is how a JSON null sent on
	// create fails in storage, with a database error.
	Data  json.RawMessage `gorm:"not null" json:"data"` // blob on SQLite, bytea on PostgreSQL
	Level int             `gorm:"not null;index" json:"level"`
	// Tags label the artifact; stored as a JSON array, [] by default.
	Tags      Tags      `gorm:"type:text;not null;default:'[]'" json:"tags"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName is the table of the Python service, so a database can be
// shared with it.
func (Artifact) TableName() string { return "artifacts" }

// Out is the wire shape of an artifact (ArtifactOut). All seven keys are
// always present; parent_id is null for a root, tags is [] when unset.
type Out struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
	Data      json.RawMessage `json:"data"`
	ParentID  *string         `json:"parent_id"`
	Level     int             `json:"level"`
	Tags      Tags            `json:"tags"`
}

// Out returns the wire shape of a, with RFC 3339 UTC times.
func (a *Artifact) Out() Out {
	var parent *string
	if a.ParentID != nil {
		p := *a.ParentID
		parent = &p
	}
	tags := append(Tags{}, a.Tags...)
	return Out{
		ID:        a.ID,
		CreatedAt: wire.FormatTime(a.CreatedAt),
		UpdatedAt: wire.FormatTime(a.UpdatedAt),
		Data:      a.Data,
		ParentID:  parent,
		Level:     a.Level,
		Tags:      tags,
	}
}

// TreeNode is the wire shape of $expand and $tree (ArtifactTreeNode): the
// [Out] fields followed by the hierarchy members.
type TreeNode struct {
	Out
	// LevelLabel is the hierarchy's label for Level; nil without hierarchy.
	LevelLabel *string `json:"level_label"`
	// Hierarchy is the hierarchy name; nil without hierarchy.
	Hierarchy *string `json:"hierarchy"`
	// Children is nil for $expand (rendered null) and a non-nil slice for
	// every node of $tree (rendered [] for a leaf).
	Children []*TreeNode `json:"children"`
	// Config is the linked config of a root artifact. Config linking is not
	// implemented, so it is always nil and rendered null.
	Config json.RawMessage `json:"config"`
}

// In is the input of [Manager.Create] and [Manager.Update]. A nil Data or
// the JSON literal null means the client sent null; a nil ParentID means
// no parent (create) or keep the parent (update); a nil Tags means no
// tags (create) or keep the tags (update).
type In struct {
	ID       string
	Data     json.RawMessage
	ParentID *string
	Tags     *[]string
}
