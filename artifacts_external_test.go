package chapkit_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

const artPrefix = "/api/v1/artifacts"

// createArtifact posts body and returns the created artifact.
func createArtifact(t testing.TB, h http.Handler, body string) map[string]any {
	t.Helper()
	rec := doJSON(t, h, http.MethodPost, artPrefix, body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST %s %s: %d %s", artPrefix, body, rec.Code, rec.Body.String())
	}
	return object(t, rec.Body.Bytes())
}

func artifactOut(id string, data any, parent any, level int) map[string]any {
	return map[string]any{"id": id, "data": data, "parent_id": parent, "level": float64(level), "tags": []any{}}
}

var ignoreTimes = ignoreKeys("created_at", "updated_at")

func TestArtifactCRUD(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	rec := doJSON(t, h, http.MethodPost, artPrefix, `{"data":{"name":"root"},"level":7}`)
	expect(t, rec, http.StatusCreated, ctJSON, map[string]any{"data": map[string]any{"name": "root"}, "parent_id": nil,
		"level": float64(0), "tags": []any{}}, ignoreKeys("id", "created_at", "updated_at"))
	root := object(t, rec.Body.Bytes())
	rootID := root["id"].(string)
	if loc := rec.Header().Get("Location"); loc != "http://example.com"+artPrefix+"/"+rootID {
		t.Errorf("Location = %q", loc)
	}
	child := createArtifact(t, h, `{"data":{"name":"child"},"parent_id":"`+rootID+`"}`)
	childID := child["id"].(string)
	if diff := cmp.Diff(artifactOut(childID, map[string]any{"name": "child"}, rootID, 1), child, ignoreTimes); diff != "" {
		t.Errorf("child mismatch (-want +got):\n%s", diff)
	}
	grand := createArtifact(t, h, `{"data":[1,"two",null],"parent_id":"`+childID+`"}`)
	grandID := grand["id"].(string)
	leaf2 := createArtifact(t, h, `{"data":"leaf","parent_id":"`+rootID+`"}`)
	leaf2ID := leaf2["id"].(string)

	t.Run("GET returns the plain artifact", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+childID, "", ""), http.StatusOK, ctJSON, child)
	})

	t.Run("$expand labels the level, children null", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, artPrefix+"/"+rootID+"/$expand", "", "")
		want := withEntries(root, "level_label", "execution", "hierarchy", "task_executions", "children", nil, "config", nil)
		expect(t, rec, http.StatusOK, ctJSON, want)
		rec = testkit.Request(t, h, http.MethodGet, artPrefix+"/"+childID+"/$expand", "", "")
		want = withEntries(child, "level_label", "level_1", "hierarchy", "task_executions", "children", nil, "config", nil)
		expect(t, rec, http.StatusOK, ctJSON, want)
	})

	t.Run("$tree nests children, leaves have []", func(t *testing.T) {
		node := func(a map[string]any, label string, children ...any) map[string]any {
			if children == nil {
				children = []any{}
			}
			return withEntries(a, "level_label", label, "hierarchy", "task_executions", "children", children, "config", nil)
		}
		want := node(root, "execution",
			node(child, "level_1", node(grand, "level_2")),
			node(leaf2, "level_1"))
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+rootID+"/$tree", "", ""), http.StatusOK, ctJSON, want)
		// A subtree may start below the root.
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+childID+"/$tree", "", ""), http.StatusOK, ctJSON,
			node(child, "level_1", node(grand, "level_2")))
	})

	t.Run("list is by id, with pagination", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, artPrefix, "", "")
		expect(t, rec, http.StatusOK, ctJSON, []any{root, child, grand, leaf2})
		rec = testkit.Request(t, h, http.MethodGet, artPrefix+"?page=2&size=3", "", "")
		expect(t, rec, http.StatusOK, ctJSON, map[string]any{"items": []any{leaf2}, "total": float64(4), "page": float64(2),
			"size": float64(3), "pages": float64(2)})
		rec = testkit.Request(t, h, http.MethodGet, artPrefix+"?page=0&size=3", "", "")
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, nil)
		if got := object(t, rec.Body.Bytes()); got["detail"] != "Validation error" {
			t.Errorf("page=0 body = %v", got)
		}
	})

	t.Run("PUT moves a subtree and re-levels it", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPut, artPrefix+"/"+childID, `{"data":{"name":"child"},"parent_id":"`+leaf2ID+`"}`)
		expect(t, rec, http.StatusOK, ctJSON, artifactOut(childID, map[string]any{"name": "child"}, leaf2ID, 2), ignoreTimes)
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+grandID, "", ""), http.StatusOK, ctJSON,
			artifactOut(grandID, []any{float64(1), "two", nil}, childID, 3), ignoreTimes)
		// null data and an omitted parent keep both.
		rec = doJSON(t, h, http.MethodPut, artPrefix+"/"+childID, `{"data":null}`)
		expect(t, rec, http.StatusOK, ctJSON, artifactOut(childID, map[string]any{"name": "child"}, leaf2ID, 2), ignoreTimes)
	})

	t.Run("DELETE detaches children, keeping their level", func(t *testing.T) {
		if rec := testkit.Request(t, h, http.MethodDelete, artPrefix+"/"+leaf2ID, "", ""); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("DELETE: %d %q", rec.Code, rec.Body.String())
		}
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+childID, "", ""), http.StatusOK, ctJSON,
			artifactOut(childID, map[string]any{"name": "child"}, nil, 2), ignoreTimes)
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+leaf2ID, "", ""), http.StatusNotFound, ctProblem, entityNotFound(artPrefix, leaf2ID))
	})

	t.Run("$schema", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, artPrefix+"/$schema", "", "")
		expect(t, rec, http.StatusOK, ctJSON, nil)
		s := object(t, rec.Body.Bytes())
		if s["title"] != "ArtifactOut" || !cmp.Equal(s["required"], []any{"id", "created_at", "updated_at", "data", "level", "tags"}) {
			t.Errorf("schema = %v", s)
		}
	})
}

func TestArtifactErrors(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("unknown parent is 500 database error", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, artPrefix, `{"data":{},"parent_id":"`+unknownID+`"}`)
		expect(t, rec, http.StatusInternalServerError, ctJSON, map[string]any{"detail": "Database error occurred",
			"error": "FOREIGN KEY constraint failed"})
	})

	t.Run("null data is 500 database error", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, artPrefix, `{"data":null}`)
		expect(t, rec, http.StatusInternalServerError, ctJSON, nil)
		got := object(t, rec.Body.Bytes())
		if msg, _ := got["error"].(string); got["detail"] != "Database error occurred" || !strings.Contains(msg, "NOT NULL") || len(got) != 2 {
			t.Errorf("body = %v", got)
		}
	})

	t.Run("missing data is 422", func(t *testing.T) {
		expect(t, doJSON(t, h, http.MethodPost, artPrefix, `{"parent_id":null}`), http.StatusUnprocessableEntity, ctJSON,
			map[string]any{"detail": []any{map[string]any{"type": "missing", "loc": []any{"body", "data"}, "msg": "Field required",
				"input": map[string]any{"parent_id": nil}}}})
	})

	t.Run("bad parent_id is 422 ulid_format", func(t *testing.T) {
		expect(t, doJSON(t, h, http.MethodPost, artPrefix, `{"data":1,"parent_id":"nope"}`), http.StatusUnprocessableEntity, ctJSON,
			map[string]any{"detail": []any{map[string]any{"type": "ulid_format", "loc": []any{"body", "parent_id"},
				"msg": "Unrecognized format", "input": "nope"}}})
	})

	t.Run("nothing was stored", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix, "", ""), http.StatusOK, ctJSON, []any{})
	})

	for _, tc := range []struct{ method, suffix, body string }{
		{http.MethodGet, "", ""},
		{http.MethodPut, "", `{"data":1}`},
		{http.MethodDelete, "", ""},
		{http.MethodGet, "/$expand", ""},
		{http.MethodGet, "/$tree", ""},
	} {
		t.Run(tc.method+tc.suffix+" invalid ULID is 400", func(t *testing.T) {
			want := invalidULID(artPrefix, "not-a-ulid")
			want["instance"] = artPrefix + "/not-a-ulid" + tc.suffix
			expect(t, doJSON(t, h, tc.method, artPrefix+"/not-a-ulid"+tc.suffix, tc.body), http.StatusBadRequest, ctProblem, want)
		})
	}
	for _, tc := range []struct{ method, body string }{
		{http.MethodGet, ""}, {http.MethodPut, `{"data":1}`}, {http.MethodDelete, ""},
	} {
		t.Run(tc.method+" unknown is 404 problem", func(t *testing.T) {
			expect(t, doJSON(t, h, tc.method, artPrefix+"/"+unknownID, tc.body), http.StatusNotFound, ctProblem, entityNotFound(artPrefix, unknownID))
		})
	}
	for _, op := range []string{"$expand", "$tree"} {
		t.Run(op+" unknown is 404 detail", func(t *testing.T) {
			expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/"+unknownID+"/"+op, "", ""), http.StatusNotFound, ctJSON,
				detail("Artifact with id "+unknownID+" not found"))
		})
	}
}

func TestArtifactsReadOnly(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithArtifacts(testHierarchy, chapkit.ArtifactsConfig{Permissions: &chapkit.ReadOnly})
	})
	h := app.Handler()
	// Task executions still store artifacts.
	job := waitJob(t, h, execute(t, h, shellTask(t, h, "echo ro")))
	id := job["artifact_id"].(string)

	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, artPrefix, `{"data":1}`},
		{http.MethodPut, artPrefix + "/" + id, `{"data":1}`},
		{http.MethodDelete, artPrefix + "/" + id, ""},
	} {
		t.Run(tc.method+" is 405", func(t *testing.T) {
			expect(t, doJSON(t, h, tc.method, tc.path, tc.body), http.StatusMethodNotAllowed, ctJSON, detail("Method Not Allowed"))
		})
	}
	t.Run("reads still work", func(t *testing.T) {
		for _, p := range []string{artPrefix, artPrefix + "/" + id, artPrefix + "/" + id + "/$expand", artPrefix + "/" + id + "/$tree", artPrefix + "/$schema"} {
			if rec := testkit.Request(t, h, http.MethodGet, p, "", ""); rec.Code != http.StatusOK {
				t.Errorf("GET %s: %d", p, rec.Code)
			}
		}
	})
}
