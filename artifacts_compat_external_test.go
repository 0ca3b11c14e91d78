package chapkit_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// Tags are stored, settable on create and update, and filter the list.
func TestArtifactTags(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	a := createArtifact(t, h, `{"data":{"n":1},"tags":["model","run-1"]}`)
	b := createArtifact(t, h, `{"data":{"n":2}}`)
	c := createArtifact(t, h, `{"data":{"n":3},"tags":["Model"]}`)
	aID, bID, cID := a["id"].(string), b["id"].(string), c["id"].(string)
	if diff := cmp.Diff([]any{"model", "run-1"}, a["tags"]); diff != "" {
		t.Errorf("created tags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{}, b["tags"]); diff != "" {
		t.Errorf("untagged artifact tags (-want +got):\n%s", diff)
	}

	ids := func(t *testing.T, query string) []string {
		t.Helper()
		rec := testkit.Request(t, h, http.MethodGet, artPrefix+query, "", "")
		expect(t, rec, http.StatusOK, ctJSON, nil)
		body := decode(t, rec.Body.Bytes())
		items, ok := body.([]any)
		if m, isPage := body.(map[string]any); isPage {
			items = m["items"].([]any)
		} else if !ok {
			t.Fatalf("list body %s", rec.Body.String())
		}
		out := []string{}
		for _, it := range items {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{aID, bID, cID}},
		{"?tag=model", []string{aID}},
		{"?tag=Model", []string{cID}},
		{"?tag=mod", []string{}},
		{"?tag=model&page=1&size=5", []string{aID}},
	} {
		if diff := cmp.Diff(tc.want, ids(t, tc.query)); diff != "" {
			t.Errorf("GET %s ids (-want +got):\n%s", tc.query, diff)
		}
	}
	rec := testkit.Request(t, h, http.MethodGet, artPrefix+"?tag=model&page=1&size=5", "", "")
	if got := object(t, rec.Body.Bytes()); got["total"] != float64(1) || got["pages"] != float64(1) {
		t.Errorf("filtered page = %v, want total 1, pages 1", got)
	}

	// PUT without tags keeps them; with tags replaces them.
	rec = doJSON(t, h, http.MethodPut, artPrefix+"/"+aID, `{"data":{"n":10}}`)
	expect(t, rec, http.StatusOK, ctJSON, map[string]any{"id": aID, "data": map[string]any{"n": float64(10)}, "parent_id": nil,
		"level": float64(0), "tags": []any{"model", "run-1"}}, ignoreTimes)
	rec = doJSON(t, h, http.MethodPut, artPrefix+"/"+aID, `{"data":null,"tags":["final"]}`)
	expect(t, rec, http.StatusOK, ctJSON, map[string]any{"id": aID, "data": map[string]any{"n": float64(10)}, "parent_id": nil,
		"level": float64(0), "tags": []any{"final"}}, ignoreTimes)
	if diff := cmp.Diff([]string{}, ids(t, "?tag=model")); diff != "" {
		t.Errorf("after retagging (-want +got):\n%s", diff)
	}

	t.Run("tags must be a list of strings", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, artPrefix, `{"data":1,"tags":"x"}`)
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "list_type", "loc": []any{"body", "tags"}, "msg": "Input should be a valid list", "input": "x"}}})
		rec = doJSON(t, h, http.MethodPost, artPrefix, `{"data":1,"tags":["ok",2]}`)
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "string_type", "loc": []any{"body", "tags", float64(1)}, "msg": "Input should be a valid string", "input": float64(2)}}})
	})
}

// $download serves the data as a JSON file, and shell outputs as text on request.
func TestArtifactDownload(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	plain := createArtifact(t, h, `{"data":{"rows":[1,2],"name":"x"}}`)
	plainID := plain["id"].(string)
	_, job, _ := runShell(t, h, "echo out; echo err >&2")
	shellID := job["artifact_id"].(string)

	type resp struct {
		Status            int
		ContentType, Disp string
		Body              string
	}
	get := func(t *testing.T, target string, extra ...string) resp {
		t.Helper()
		rec := testkit.Request(t, h, http.MethodGet, target, "", "", extra...)
		return resp{rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Content-Disposition"), rec.Body.String()}
	}
	jsonFile := func(id string) string { return `attachment; filename="artifact-` + id + `.json"` }
	textFile := func(id string) string { return `attachment; filename="artifact-` + id + `.txt"` }
	dl := func(id string) string { return artPrefix + "/" + id + "/$download" }

	t.Run("JSON by default", func(t *testing.T) {
		got := get(t, dl(plainID))
		want := resp{200, ctJSON, jsonFile(plainID), ""}
		if diff := cmp.Diff(want, resp{got.Status, got.ContentType, got.Disp, ""}); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]any{"rows": []any{float64(1), float64(2)}, "name": "x"}, decode(t, []byte(got.Body))); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
		// A shell output is JSON too unless text is asked for.
		got = get(t, dl(shellID), "Accept", "application/json")
		if got.Status != 200 || got.ContentType != ctJSON || got.Disp != jsonFile(shellID) {
			t.Errorf("shell output as JSON = %+v", got)
		}
	})

	wantText := resp{200, "text/plain; charset=utf-8", textFile(shellID), "out\n--- stderr ---\nerr\n"}
	t.Run("text for a shell output with format=text", func(t *testing.T) {
		if diff := cmp.Diff(wantText, get(t, dl(shellID)+"?format=text")); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("text for a shell output with Accept: text/plain", func(t *testing.T) {
		if diff := cmp.Diff(wantText, get(t, dl(shellID), "Accept", "text/plain, application/json;q=0.5")); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("Accept: text/plain on other data falls back to JSON", func(t *testing.T) {
		got := get(t, dl(plainID), "Accept", "text/plain")
		if got.Status != 200 || got.ContentType != ctJSON || got.Disp != jsonFile(plainID) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("format=text on other data is 400", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, dl(plainID)+"?format=text", "", "")
		expect(t, rec, http.StatusBadRequest, ctProblem, map[string]any{"type": "urn:chapkit:error:bad-request", "title": "Bad Request",
			"status": float64(400), "detail": "Artifact " + plainID + " has no text form: only shell task outputs have one",
			"instance": dl(plainID)})
	})
	t.Run("bad format is 422", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, dl(plainID)+"?format=xml", "", "")
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "enum", "loc": []any{"query", "format"}, "msg": "Input should be 'json' or 'text'", "input": "xml",
			"ctx": map[string]any{"expected": "'json' or 'text'"}}}})
	})
	t.Run("unknown and invalid ids", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, dl(unknownID), "", ""), http.StatusNotFound, ctProblem, entityNotFound(artPrefix, unknownID))
		want := invalidULID(artPrefix, "nope")
		want["instance"] = dl("nope")
		expect(t, testkit.Request(t, h, http.MethodGet, dl("nope"), "", ""), http.StatusBadRequest, ctProblem, want)
	})
}

// A bad id on a $-route names the whole request path as the instance.
func TestArtifactInvalidIDInstance(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	for _, suffix := range []string{"/$expand", "/$tree", "/$download"} {
		want := invalidULID(artPrefix, "bad-id")
		want["instance"] = artPrefix + "/bad-id" + suffix
		expect(t, testkit.Request(t, h, http.MethodGet, artPrefix+"/bad-id"+suffix, "", ""), http.StatusBadRequest, ctProblem, want)
	}
}
