package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// TestFloorStatements runs the floor's rounds on the library's migrated
// tables, on SQLite and on PostgreSQL, and checks what they leave: every
// job completed by the floor's node, with started and finished times, and
// naming an artifact that exists and holds the execution's data.
func TestFloorStatements(t *testing.T) {
	for _, engine := range []string{"sqlite", enginePG} {
		t.Run(engine, func(t *testing.T) {
			spec := Spec{Workload: wExec, System: sysFloor, Synchronous: "NORMAL", DB: filepath.Join(t.TempDir(), "floor.db")}
			if engine == enginePG {
				spec = Spec{Workload: wExec, System: sysFloor, Engine: enginePG, DB: pgtest.URL(t)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f, err := openFloor(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			defer f.close()
			if err := f.prepare(ctx, 3); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := f.roundThree(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.roundTwo(ctx); err == nil {
				t.Fatal("roundTwo with a batch of 3: no error")
			}
			if err := f.prepare(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := f.roundThree(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.roundTwo(ctx); err != nil {
				t.Fatal(err)
			}

			type row struct {
				Status, Node, Kind string
				Timed, Linked      bool
				Data               string
			}
			rs, err := f.db.QueryContext(ctx, `SELECT j.status, j.node, j.kind,
				j.submitted_at IS NOT NULL AND j.started_at IS NOT NULL AND j.finished_at IS NOT NULL,
				a.id IS NOT NULL, coalesce(a.data, '')
				FROM jobs j LEFT JOIN artifacts a ON a.id = j.artifact_id ORDER BY j.id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			var got []row
			for rs.Next() {
				var r row
				var data []byte
				if err := rs.Scan(&r.Status, &r.Node, &r.Kind, &r.Timed, &r.Linked, &data); err != nil {
					t.Fatal(err)
				}
				r.Data = string(data)
				got = append(got, r)
			}
			if err := rs.Err(); err != nil {
				t.Fatal(err)
			}
			want := make([]row, 2*3+1+1)
			for i := range want {
				want[i] = row{Status: "completed", Node: f.node, Kind: "task", Timed: true, Linked: true, Data: string(f.data)}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("jobs after the floor's rounds (-want +got):\n%s", diff)
			}
			var arts int
			if err := f.db.QueryRowContext(ctx, "SELECT count(*) FROM artifacts").Scan(&arts); err != nil {
				t.Fatal(err)
			}
			if arts != len(want) {
				t.Fatalf("artifacts: %d, want %d", arts, len(want))
			}
		})
	}
}
