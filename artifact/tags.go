package artifact

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// Tags is the list of labels of an artifact. It is stored as a JSON array
// in one text column (default "[]"), so adding it to an existing database
// is a single ALTER TABLE that AutoMigrate performs. A nil Tags is stored
// and rendered as [].
type Tags []string

// Value stores the tags as a JSON array.
func (t Tags) Value() (driver.Value, error) {
	if t == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(t))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan reads a JSON array of strings; NULL and the empty string read as
// no tags.
func (t *Tags) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*t = Tags{}
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("artifact tags: cannot scan %T", src)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		*t = Tags{}
		return nil
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("artifact tags: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	*t = out
	return nil
}

// MarshalJSON renders nil as [].
func (t Tags) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]string(t))
}

// withTag narrows q to artifacts whose tags hold tag exactly (case
// sensitive, whole element). The JSON array is searched with the engine's
// own JSON functions, so no substring of another tag can match.
func withTag(q *gorm.DB, tag string) *gorm.DB {
	if q.Dialector.Name() == "postgres" {
		return q.Where("EXISTS (SELECT 1 FROM jsonb_array_elements_text(artifacts.tags::jsonb) AS t(v) WHERE t.v = ?)", tag)
	}
	return q.Where("EXISTS (SELECT 1 FROM json_each(artifacts.tags) WHERE json_each.value = ?)", tag)
}
