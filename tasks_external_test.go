package chapkit_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// taskOut is the expected TaskOut without id and timestamps.
func taskOut(command, taskType string, parameters any, enabled bool) map[string]any {
	return map[string]any{"command": command, "task_type": taskType, "parameters": parameters,
		"enabled": enabled, "timeout_seconds": nil}
}

var ignoreEntity = ignoreKeys("id", "created_at", "updated_at")

func invalidULID(prefix, raw string) map[string]any {
	return map[string]any{"type": "urn:chapkit:error:invalid-ulid", "title": "Invalid ULID Format", "status": float64(400),
		"detail": "Invalid ULID format: " + raw, "instance": prefix + "/" + raw}
}

func entityNotFound(prefix, id string) map[string]any {
	return map[string]any{"type": "urn:chapkit:error:not-found", "title": "Resource Not Found", "status": float64(404),
		"detail": "Entity with id " + id + " not found", "instance": prefix + "/" + id}
}

func detail(text string) map[string]any { return map[string]any{"detail": text} }

func TestTaskCreate(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("shell task gets 201 with an absolute Location", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo 'test task creation'"}`)
		expect(t, rec, http.StatusCreated, ctJSON, taskOut("echo 'test task creation'", "shell", nil, true), ignoreEntity)
		got := object(t, rec.Body.Bytes())
		id, _ := got["id"].(string)
		if len(id) != 26 {
			t.Fatalf("id = %q, want a ULID", id)
		}
		if loc, want := rec.Header().Get("Location"), "http://example.com/api/v1/tasks/"+id; loc != want {
			t.Errorf("Location = %q, want %q", loc, want)
		}
		for _, k := range []string{"created_at", "updated_at"} {
			s, _ := got[k].(string)
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
				t.Errorf("%s = %q, want an RFC 3339 UTC time with Z", k, s)
			}
		}
		if got["created_at"] != got["updated_at"] {
			t.Errorf("created_at %v != updated_at %v on create", got["created_at"], got["updated_at"])
		}
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+id, "", ""), http.StatusOK, ctJSON, got)
	})

	t.Run("python task echoes task_type and parameters", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"calculate_sum","task_type":"python","parameters":{"a":5,"b":10}}`)
		expect(t, rec, http.StatusCreated, ctJSON,
			taskOut("calculate_sum", "python", map[string]any{"a": float64(5), "b": float64(10)}, true), ignoreEntity)
	})

	t.Run("function is stored as python", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"f","task_type":"function","enabled":false}`)
		expect(t, rec, http.StatusCreated, ctJSON, taskOut("f", "python", nil, false), ignoreEntity)
	})

	t.Run("client id is used, and a second POST with it upserts", func(t *testing.T) {
		const id = "01JCSEED0000000000000TASK1"
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"id":"`+id+`","command":"a","task_type":"python","parameters":{"x":1},"enabled":false}`)
		want := taskOut("a", "python", map[string]any{"x": float64(1)}, false)
		want["id"] = id
		expect(t, rec, http.StatusCreated, ctJSON, want, ignoreKeys("created_at", "updated_at"))

		rec = doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"id":"`+id+`","command":"b"}`)
		want = taskOut("b", "shell", map[string]any{"x": float64(1)}, true)
		want["id"] = id
		expect(t, rec, http.StatusCreated, ctJSON, want, ignoreKeys("created_at", "updated_at"))
		if loc := rec.Header().Get("Location"); loc != "http://example.com/api/v1/tasks/"+id {
			t.Errorf("Location = %q", loc)
		}
	})

	t.Run("curl's default form content type is read as JSON", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo form"}`, "application/x-www-form-urlencoded")
		expect(t, rec, http.StatusCreated, ctJSON, taskOut("echo form", "shell", nil, true), ignoreEntity)
	})

	t.Run("no Content-Type is read as JSON", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo none"}`, "")
		expect(t, rec, http.StatusCreated, ctJSON, taskOut("echo none", "shell", nil, true), ignoreEntity)
	})

	t.Run("json with charset and +json types are accepted", func(t *testing.T) {
		for _, ct := range []string{"application/json; charset=utf-8", "application/vnd.api+json"} {
			rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo ct"}`, ct)
			expect(t, rec, http.StatusCreated, ctJSON, taskOut("echo ct", "shell", nil, true), ignoreEntity)
		}
	})
}

func TestTaskCreateInvalidBody(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	item := func(typ string, loc []any, msg string, input any) map[string]any {
		return map[string]any{"type": typ, "loc": loc, "msg": msg, "input": input}
	}
	tests := []struct {
		name string
		body string
		want []any
	}{
		{"empty object", `{}`, []any{item("missing", []any{"body", "command"}, "Field required", map[string]any{})}},
		{"no body", ``, []any{item("missing", []any{"body"}, "Field required", nil)}},
		{"array body", `[1,2]`, []any{item("model_attributes_type", []any{"body"},
			"Input should be a valid dictionary or object to extract fields from", []any{float64(1), float64(2)})}},
		{"string body", `"echo"`, []any{item("model_attributes_type", []any{"body"},
			"Input should be a valid dictionary or object to extract fields from", "echo")}},
		{"command not a string", `{"command":5}`, []any{item("string_type", []any{"body", "command"}, "Input should be a valid string", float64(5))}},
		{"parameters not an object", `{"command":"x","parameters":[1]}`, []any{item("dict_type", []any{"body", "parameters"},
			"Input should be a valid dictionary", []any{float64(1)})}},
		{"enabled not a boolean", `{"command":"x","enabled":[1]}`, []any{item("bool_type", []any{"body", "enabled"},
			"Input should be a valid boolean", []any{float64(1)})}},
		{"id not a ULID", `{"command":"x","id":"01k72p5n5kcrm6md3bre4p0999"}`, []any{item("ulid_format", []any{"body", "id"},
			"Unrecognized format", "01k72p5n5kcrm6md3bre4p0999")}},
		{"bad task_type", `{"command":"x","task_type":"perl"}`, []any{map[string]any{"type": "literal_error",
			"loc": []any{"body", "task_type"}, "msg": "Input should be 'shell' or 'python'", "input": "perl",
			"ctx": map[string]any{"expected": "'shell' or 'python'"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", tc.body)
			expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": tc.want})
		})
	}

	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{`{"command":`, `{"command":"x",}`, `{"command":"x"} trailing`} {
			rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", body)
			expect(t, rec, http.StatusUnprocessableEntity, ctJSON, nil)
			got := object(t, rec.Body.Bytes())
			items, _ := got["detail"].([]any)
			if len(items) != 1 {
				t.Fatalf("body %s: detail = %v, want one item", body, got["detail"])
			}
			it := items[0].(map[string]any)
			loc, _ := it["loc"].([]any)
			errText, _ := it["ctx"].(map[string]any)["error"].(string)
			if it["type"] != "json_invalid" || it["msg"] != "JSON decode error" || !cmp.Equal(it["input"], map[string]any{}) ||
				len(loc) != 2 || loc[0] != "body" || errText == "" {
				t.Errorf("body %s: item = %v, want json_invalid at [body, <offset>] with input {} and ctx.error", body, it)
			}
			if _, isNum := loc[1].(float64); len(loc) == 2 && !isNum {
				t.Errorf("body %s: loc[1] = %v, want a character offset", body, loc[1])
			}
		}
	})

	t.Run("nothing was created", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", ""), http.StatusOK, ctJSON, []any{})
	})
}

func TestTaskBodyLimits(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("body over 1 MiB is 413 and creates nothing", func(t *testing.T) {
		body := `{"command":"` + strings.Repeat("x", 1<<20) + `"}`
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", body)
		expect(t, rec, http.StatusRequestEntityTooLarge, ctProblem, nil)
		got := object(t, rec.Body.Bytes())
		if got["status"] != float64(413) || got["type"] != "urn:chapkit:error:payload-too-large" {
			t.Errorf("413 body = %v", got)
		}
	})

	t.Run("body just under the cap is accepted", func(t *testing.T) {
		body := `{"command":"` + strings.Repeat("y", 1<<20-20) + `"}`
		rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", body)
		if rec.Code != http.StatusCreated {
			t.Fatalf("status = %d, want 201", rec.Code)
		}
		rec = testkit.Request(t, h, http.MethodDelete, "/api/v1/tasks/"+object(t, rec.Body.Bytes())["id"].(string), "", "")
		if rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE status = %d", rec.Code)
		}
	})

	t.Run("text/plain is 415", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo"}`, "text/plain")
		expect(t, rec, http.StatusUnsupportedMediaType, ctProblem, nil)
		if got := object(t, rec.Body.Bytes()); got["status"] != float64(415) {
			t.Errorf("415 body = %v", got)
		}
	})

	t.Run("nothing was created", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", ""), http.StatusOK, ctJSON, []any{})
	})
}

func TestTaskIDErrors(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	const prefix = "/api/v1/tasks"
	for _, tc := range []struct {
		method, body string
	}{
		{http.MethodGet, ""},
		{http.MethodPut, `{"command":"x"}`},
		{http.MethodPatch, `{"enabled":false}`},
		{http.MethodDelete, ""},
	} {
		t.Run(tc.method+" invalid ULID", func(t *testing.T) {
			rec := doJSON(t, h, tc.method, prefix+"/not-a-ulid", tc.body)
			expect(t, rec, http.StatusBadRequest, ctProblem, invalidULID(prefix, "not-a-ulid"))
		})
		t.Run(tc.method+" lowercase ULID", func(t *testing.T) {
			raw := strings.ToLower(unknownID)
			rec := doJSON(t, h, tc.method, prefix+"/"+raw, tc.body)
			expect(t, rec, http.StatusBadRequest, ctProblem, invalidULID(prefix, raw))
		})
		t.Run(tc.method+" unknown id", func(t *testing.T) {
			rec := doJSON(t, h, tc.method, prefix+"/"+unknownID, tc.body)
			expect(t, rec, http.StatusNotFound, ctProblem, entityNotFound(prefix, unknownID))
		})
	}
	t.Run("execute invalid ULID names the request path", func(t *testing.T) {
		for _, target := range []string{prefix + "/not-a-ulid/$execute", prefix + "/not-a-ulid/%24execute"} {
			rec := testkit.Request(t, h, http.MethodPost, target, "", "")
			want := invalidULID(prefix, "not-a-ulid")
			want["instance"] = prefix + "/not-a-ulid/$execute"
			expect(t, rec, http.StatusBadRequest, ctProblem, want)
		}
	})
	t.Run("body is validated before the id", func(t *testing.T) {
		rec := doJSON(t, h, http.MethodPut, prefix+"/not-a-ulid", `{}`)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("status = %d, want 422", rec.Code)
		}
	})
}

func TestTaskPut(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	const stored = `{"command":"a","task_type":"python","parameters":{"x":1},"enabled":false}`
	x1 := map[string]any{"x": float64(1)}
	tests := []struct {
		name string
		body string
		want map[string]any
	}{
		{"omitted task_type and enabled reset to defaults", `{"command":"b"}`, taskOut("b", "shell", x1, true)},
		{"only command changes", `{"command":"b","task_type":"python","enabled":false}`, taskOut("b", "python", x1, false)},
		{"null parameters are kept", `{"command":"b","parameters":null}`, taskOut("b", "shell", x1, true)},
		{"empty parameters replace", `{"command":"b","parameters":{}}`, taskOut("b", "shell", map[string]any{}, true)},
		{"body id is ignored", `{"id":"` + unknownID + `","command":"b","task_type":"python","enabled":false}`, taskOut("b", "python", x1, false)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := createTask(t, h, stored)
			id := before["id"].(string)
			rec := doJSON(t, h, http.MethodPut, "/api/v1/tasks/"+id, tc.body)
			want := withEntries(tc.want, "id", id, "created_at", before["created_at"])
			expect(t, rec, http.StatusOK, ctJSON, want, ignoreKeys("updated_at"))
			if got := object(t, rec.Body.Bytes()); got["updated_at"] == before["updated_at"] {
				t.Errorf("updated_at did not move on a change: %v", got["updated_at"])
			}
			expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+id, "", ""), http.StatusOK, ctJSON, want, ignoreKeys("updated_at"))
		})
	}

	t.Run("a PUT that changes nothing keeps updated_at", func(t *testing.T) {
		before := createTask(t, h, `{"command":"same"}`)
		rec := doJSON(t, h, http.MethodPut, "/api/v1/tasks/"+before["id"].(string), `{"command":"same"}`)
		expect(t, rec, http.StatusOK, ctJSON, before)
	})

	t.Run("missing command is 422", func(t *testing.T) {
		id := createTask(t, h, `{"command":"c"}`)["id"].(string)
		rec := doJSON(t, h, http.MethodPut, "/api/v1/tasks/"+id, `{"enabled":false}`)
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "missing", "loc": []any{"body", "command"}, "msg": "Field required", "input": map[string]any{"enabled": false}}}})
	})
}

// withEntries returns a copy of m with the key/value pairs kv set.
func withEntries(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestTaskPatch(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	const stored = `{"command":"echo a","parameters":{"a":1,"b":2},"enabled":true}`
	ab := map[string]any{"a": float64(1), "b": float64(2)}
	const mergeJSON = "application/merge-patch+json"

	ok := []struct {
		name  string
		patch string
		want  map[string]any
	}{
		{"enabled false keeps the rest", `{"enabled":false}`, taskOut("echo a", "shell", ab, false)},
		{"parameters merge member by member", `{"parameters":{"b":null,"c":3}}`,
			taskOut("echo a", "shell", map[string]any{"a": float64(1), "c": float64(3)}, true)},
		{"null parameters remove them", `{"parameters":null}`, taskOut("echo a", "shell", nil, true)},
		{"function is stored as python", `{"task_type":"function"}`, taskOut("echo a", "python", ab, true)},
		{"command changes alone", `{"command":"echo b"}`, taskOut("echo b", "shell", ab, true)},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			id := createTask(t, h, stored)["id"].(string)
			rec := testkit.Request(t, h, http.MethodPatch, "/api/v1/tasks/"+id, tc.patch, mergeJSON)
			expect(t, rec, http.StatusOK, ctJSON, withEntries(tc.want, "id", id), ignoreKeys("created_at", "updated_at"))
			expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+id, "", ""), http.StatusOK, ctJSON,
				withEntries(tc.want, "id", id), ignoreKeys("created_at", "updated_at"))
		})
	}

	t.Run("empty patch changes nothing", func(t *testing.T) {
		before := createTask(t, h, stored)
		rec := testkit.Request(t, h, http.MethodPatch, "/api/v1/tasks/"+before["id"].(string), `{}`, mergeJSON)
		expect(t, rec, http.StatusOK, ctJSON, before)
	})

	t.Run("plain application/json is accepted", func(t *testing.T) {
		id := createTask(t, h, stored)["id"].(string)
		rec := doJSON(t, h, http.MethodPatch, "/api/v1/tasks/"+id, `{"enabled":false}`)
		expect(t, rec, http.StatusOK, ctJSON, withEntries(taskOut("echo a", "shell", ab, false), "id", id), ignoreKeys("created_at", "updated_at"))
	})

	// A wrong type, or null for command, task_type or enabled, is a 422
	// and changes nothing.
	bad := []struct {
		name  string
		patch string
	}{
		{"command of the wrong type", `{"command":5}`},
		{"null command", `{"command":null}`},
		{"null task_type", `{"task_type":null}`},
		{"null enabled", `{"enabled":null}`},
		{"enabled of the wrong type", `{"enabled":[1]}`},
		{"unknown task_type", `{"task_type":"perl"}`},
		{"array body", `[{"enabled":false}]`},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is 422 and changes nothing", func(t *testing.T) {
			before := createTask(t, h, `{"command":"echo a","task_type":"python","parameters":{"a":1},"enabled":false}`)
			id := before["id"].(string)
			rec := testkit.Request(t, h, http.MethodPatch, "/api/v1/tasks/"+id, tc.patch, mergeJSON)
			expect(t, rec, http.StatusUnprocessableEntity, ctJSON, nil)
			if _, isList := object(t, rec.Body.Bytes())["detail"].([]any); !isList {
				t.Errorf("422 body %s is not a list of violations", rec.Body.String())
			}
			expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+id, "", ""), http.StatusOK, ctJSON, before)
		})
	}
}

func TestTaskDelete(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	id := shellTask(t, h, "echo bye")
	rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/tasks/"+id, "", "")
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("DELETE: status %d body %q, want 204 and no body", rec.Code, rec.Body.String())
	}
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+id, "", ""), http.StatusNotFound, ctProblem, entityNotFound("/api/v1/tasks", id))
	expect(t, testkit.Request(t, h, http.MethodDelete, "/api/v1/tasks/"+id, "", ""), http.StatusNotFound, ctProblem, entityNotFound("/api/v1/tasks", id))
}

func TestTaskList(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	get := func(t *testing.T, query string) *httpResult {
		t.Helper()
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks"+query, "", "")
		return &httpResult{rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()}
	}
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", ""), http.StatusOK, ctJSON, []any{})
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks?enabled=true", "", ""), http.StatusOK, ctJSON, []any{})

	// Five tasks: 1, 3, 5 enabled; 2, 4 disabled.
	var ids []string
	for _, body := range []string{`{"command":"t1"}`, `{"command":"t2","enabled":false}`, `{"command":"t3"}`,
		`{"command":"t4","enabled":false}`, `{"command":"t5"}`} {
		task := createTask(t, h, body)
		ids = append(ids, task["id"].(string))
	}
	idsOf := func(t *testing.T, v any) []string {
		t.Helper()
		var out []string
		for _, it := range v.([]any) {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}

	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"all tasks by id", "", ids},
		{"enabled only, newest first", "?enabled=true", []string{ids[4], ids[2], ids[0]}},
		{"disabled only, newest first", "?enabled=false", []string{ids[3], ids[1]}},
		{"only page given is not paginated", "?page=1", ids},
		{"only size given is not paginated", "?size=2", ids},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.query)
			if r.code != http.StatusOK || r.ct != ctJSON {
				t.Fatalf("status %d, Content-Type %q", r.code, r.ct)
			}
			if diff := cmp.Diff(tc.want, idsOf(t, decode(t, r.body))); diff != "" {
				t.Errorf("ids mismatch (-want +got):\n%s", diff)
			}
		})
	}

	pages := []struct {
		name                     string
		query                    string
		want                     []string
		total, page, size, pages float64
	}{
		{"first page", "?page=1&size=2", ids[:2], 5, 1, 2, 3},
		{"last page", "?page=3&size=2", ids[4:], 5, 3, 2, 3},
		{"beyond the end", "?page=4&size=2", nil, 5, 4, 2, 3},
		{"size above 100 is not capped", "?page=1&size=500", ids, 5, 1, 500, 1},
		{"enabled filter applies with pagination", "?enabled=true&page=1&size=2", []string{ids[4], ids[2]}, 3, 1, 2, 2},
		{"enabled filter second page", "?enabled=false&page=2&size=1", []string{ids[1]}, 2, 2, 1, 2},
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.query)
			if r.code != http.StatusOK || r.ct != ctJSON {
				t.Fatalf("status %d, Content-Type %q, body %s", r.code, r.ct, r.body)
			}
			env := object(t, r.body)
			got := map[string]any{"total": env["total"], "page": env["page"], "size": env["size"], "pages": env["pages"]}
			want := map[string]any{"total": tc.total, "page": tc.page, "size": tc.size, "pages": tc.pages}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("envelope mismatch (-want +got):\n%s", diff)
			}
			items, isList := env["items"].([]any)
			if !isList || len(env) != 5 {
				t.Fatalf("envelope = %s, want items/total/page/size/pages", r.body)
			}
			if diff := cmp.Diff(tc.want, idsOf(t, items)); diff != "" {
				t.Errorf("items mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("empty page of an empty filter has zero pages", func(t *testing.T) {
		app := newApp(t)
		rec := testkit.Request(t, app.Handler(), http.MethodGet, "/api/v1/tasks?page=1&size=10", "", "")
		expect(t, rec, http.StatusOK, ctJSON, map[string]any{"items": []any{}, "total": float64(0), "page": float64(1),
			"size": float64(10), "pages": float64(0)})
	})

	for _, q := range []string{"?page=0&size=10", "?page=1&size=0", "?page=-1&size=5"} {
		t.Run("out of range "+q+" is 422 family D", func(t *testing.T) {
			r := get(t, q)
			if r.code != http.StatusUnprocessableEntity || r.ct != ctJSON {
				t.Fatalf("status %d, Content-Type %q", r.code, r.ct)
			}
			got := object(t, r.body)
			if msg, _ := got["errors"].(string); got["detail"] != "Validation error" || msg == "" || len(got) != 2 {
				t.Errorf("body = %s, want {detail: Validation error, errors: <text>}", r.body)
			}
		})
	}

	intItem := func(name, input string) map[string]any {
		return map[string]any{"type": "int_parsing", "loc": []any{"query", name},
			"msg": "Input should be a valid integer, unable to parse string as an integer", "input": input}
	}
	t.Run("page=abc is int_parsing", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks?page=abc&size=10", "", ""), http.StatusUnprocessableEntity, ctJSON,
			map[string]any{"detail": []any{intItem("page", "abc")}})
	})
	t.Run("size=1.5 is int_parsing", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks?page=1&size=1.5", "", ""), http.StatusUnprocessableEntity, ctJSON,
			map[string]any{"detail": []any{intItem("size", "1.5")}})
	})
	t.Run("enabled=maybe is bool_parsing", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks?enabled=maybe", "", ""), http.StatusUnprocessableEntity, ctJSON,
			map[string]any{"detail": []any{map[string]any{"type": "bool_parsing", "loc": []any{"query", "enabled"},
				"msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"}}})
	})
}

type httpResult struct {
	code int
	ct   string
	body []byte
}

func TestTaskRouting(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	id := shellTask(t, h, "echo route")

	t.Run("trailing slash redirects with 307 keeping the query", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/?enabled=true", "", "")
		if rec.Code != http.StatusTemporaryRedirect {
			t.Fatalf("status = %d, want 307", rec.Code)
		}
		if loc := rec.Header().Get("Location"); loc != "/api/v1/tasks?enabled=true" {
			t.Errorf("Location = %q, want /api/v1/tasks?enabled=true", loc)
		}
	})

	t.Run("unknown path is 404 Not Found", func(t *testing.T) {
		for _, p := range []string{"/api/v1/nothing", "/", "/api/v1/tasks/" + id + "/$nothing"} {
			expect(t, testkit.Request(t, h, http.MethodGet, p, "", ""), http.StatusNotFound, ctJSON, detail("Not Found"))
		}
	})

	methodNotAllowed := []struct {
		method, path string
		allow        []string
	}{
		{http.MethodPost, "/api/v1/info", []string{"GET"}},
		{http.MethodPatch, "/api/v1/tasks", []string{"GET", "POST"}},
		{http.MethodDelete, "/api/v1/tasks", []string{"GET", "POST"}},
		{http.MethodPost, "/api/v1/tasks/" + id, []string{"GET", "PUT", "PATCH", "DELETE"}},
		{http.MethodGet, "/api/v1/tasks/" + id + "/$execute", []string{"POST"}},
		{http.MethodPost, "/api/v1/jobs", []string{"GET"}},
	}
	for _, tc := range methodNotAllowed {
		t.Run(tc.method+" "+tc.path+" is 405", func(t *testing.T) {
			rec := testkit.Request(t, h, tc.method, tc.path, "", "")
			expect(t, rec, http.StatusMethodNotAllowed, ctJSON, detail("Method Not Allowed"))
			allow := rec.Header().Get("Allow")
			for _, m := range tc.allow {
				if !strings.Contains(allow, m) {
					t.Errorf("Allow = %q, want it to list %s", allow, m)
				}
			}
		})
	}

	t.Run("%24execute is $execute", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/%24execute", "", "")
		expect(t, rec, http.StatusAccepted, ctJSON, nil)
		jobID := object(t, rec.Body.Bytes())["job_id"].(string)
		if got := waitJob(t, h, jobID); got["status"] != "completed" {
			t.Errorf("job = %v", got)
		}
	})

	t.Run("%24schema is $schema", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/%24schema", "", "")
		expect(t, rec, http.StatusOK, ctJSON, nil)
	})

	t.Run("$schema of tasks", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/$schema", "", "")
		expect(t, rec, http.StatusOK, ctJSON, nil)
		s := object(t, rec.Body.Bytes())
		if s["title"] != "TaskOut" || s["type"] != "object" {
			t.Errorf("title/type = %v/%v", s["title"], s["type"])
		}
		want := []any{"id", "created_at", "updated_at", "command", "task_type", "enabled"}
		if diff := cmp.Diff(want, s["required"]); diff != "" {
			t.Errorf("required mismatch (-want +got):\n%s", diff)
		}
		props, _ := s["properties"].(map[string]any)
		for _, k := range []string{"id", "created_at", "updated_at", "command", "task_type", "parameters", "enabled"} {
			if _, ok := props[k]; !ok {
				t.Errorf("properties lack %q", k)
			}
		}
	})
}

func TestTaskPermissions(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTasks(registry.New(), chapkit.TasksConfig{Permissions: &chapkit.Permissions{Read: true, Update: true, Delete: true}})
	})
	h := app.Handler()
	rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo"}`)
	expect(t, rec, http.StatusMethodNotAllowed, ctJSON, detail("Method Not Allowed"))
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", ""), http.StatusOK, ctJSON, []any{})

	t.Run("read-only tasks still execute", func(t *testing.T) {
		app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
			return b.WithTasks(registry.New(), chapkit.TasksConfig{Permissions: &chapkit.ReadOnly}).
				OnStartup(chapkit.SeedTasks(seedTask("01JCSEED0000000000000TASK1", "echo seeded")))
		})
		h := app.Handler()
		for _, m := range []string{http.MethodPut, http.MethodDelete} {
			rec := doJSON(t, h, m, "/api/v1/tasks/01JCSEED0000000000000TASK1", `{"command":"x"}`)
			expect(t, rec, http.StatusMethodNotAllowed, ctJSON, detail("Method Not Allowed"))
		}
		job := waitJob(t, h, execute(t, h, "01JCSEED0000000000000TASK1"))
		if job["status"] != "completed" {
			t.Errorf("job = %v", job)
		}
	})
}
