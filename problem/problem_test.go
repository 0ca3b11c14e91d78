package problem

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mattn/go-sqlite3"
)

func TestKindTable(t *testing.T) {
	type row struct {
		Status int
		Type   string
		Title  string
	}
	tests := []struct {
		kind Kind
		want row
	}{
		{KindInternal, row{500, "urn:chapkit:error:internal", "Internal Server Error"}},
		{KindNotFound, row{404, "urn:chapkit:error:not-found", "Resource Not Found"}},
		{KindConflict, row{409, "urn:chapkit:error:conflict", "Resource Conflict"}},
		{KindInvalidULID, row{400, "urn:chapkit:error:invalid-ulid", "Invalid ULID Format"}},
		{KindValidation, row{400, "urn:chapkit:error:validation-failed", "Validation Failed"}},
		{KindBadRequest, row{400, "urn:chapkit:error:bad-request", "Bad Request"}},
		{KindUnauthorized, row{401, "urn:chapkit:error:unauthorized", "Unauthorized"}},
		{KindForbidden, row{403, "urn:chapkit:error:forbidden", "Forbidden"}},
		{KindUnavailable, row{503, "urn:chapkit:error:service-unavailable", "Service Unavailable"}},
		{KindUnsupportedMediaType, row{415, "urn:chapkit:error:unsupported-media-type", "Unsupported Media Type"}},
		{KindTooLarge, row{413, "urn:chapkit:error:payload-too-large", "Payload Too Large"}},
		{KindRequestInvalid, row{422, "urn:chapkit:error:validation-failed", "Validation Failed"}},
		{KindModelInvalid, row{422, "urn:chapkit:error:validation-failed", "Validation Failed"}},
		{KindDatabase, row{500, "urn:chapkit:error:internal", "Internal Server Error"}},
		{Kind(200), row{500, "urn:chapkit:error:internal", "Internal Server Error"}}, // unknown fails safe
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.kind), func(t *testing.T) {
			got := row{tc.kind.Status(), tc.kind.Type(), tc.kind.Title()}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kind %d mismatch (-want +got):\n%s", tc.kind, diff)
			}
		})
	}
}

// TestDatabaseClassifies checks that a storage error a retry can get past
// becomes a 503 with Retry-After and a fixed client text, and that every
// other storage error stays the 500 that carries the driver's text.
func TestDatabaseClassifies(t *testing.T) {
	busy := sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusySnapshot}
	type result struct {
		Kind       Kind
		Status     int
		RetryAfter int
		Detail     string
	}
	unavailable := result{KindUnavailable, 503, 2, "The database is busy or unavailable; retry later"}
	database := result{KindDatabase, 500, 0, "Database error occurred"}
	tests := []struct {
		name string
		err  error
		want result
	}{
		{"sqlite busy", busy, unavailable},
		{"sqlite busy by pointer", &busy, unavailable},
		{"sqlite locked", sqlite3.Error{Code: sqlite3.ErrLocked, ExtendedCode: sqlite3.ErrLockedSharedCache}, unavailable},
		{"sqlite busy wrapped", fmt.Errorf("insert job: %w", busy), unavailable},
		{"sqlite busy joined", errors.Join(errors.New("rollback failed"), fmt.Errorf("commit: %w", busy)), unavailable},
		{"deadline passed", fmt.Errorf("wait for connection: %w", context.DeadlineExceeded), unavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, unavailable},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), unavailable},
		{"bad connection", driver.ErrBadConn, unavailable},
		{"sqlite constraint", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintForeignKey}, database},
		{"sqlite read-only", sqlite3.Error{Code: sqlite3.ErrReadonly}, database},
		{"plain error", errors.New("no such table: jobs"), database},
		{"client went away", fmt.Errorf("query: %w", context.Canceled), database},
	}
	const op = "job.Scheduler.Submit"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := Database(op, tc.err)
			got := result{e.Kind, e.Kind.Status(), e.RetryAfter, e.Detail}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Database(%v) mismatch (-want +got):\n%s", tc.err, diff)
			}
			if !errors.Is(e, tc.err) {
				t.Errorf("Database(%v) does not wrap its cause", tc.err)
			}
			if body := e.ProblemDetails("/x"); strings.Contains(body.Detail, op) || strings.Contains(body.Detail, "Scheduler") {
				t.Errorf("client detail %q names the operation", body.Detail)
			}
			if !strings.Contains(e.Error(), op) {
				t.Errorf("Error() = %q, want the operation for logs", e.Error())
			}
		})
	}
}

type intCodeErr struct{ Code int }

func (intCodeErr) Error() string { return "int code" }

type strCodeErr struct{ Code string }

func (*strCodeErr) Error() string { return "string code" }

// TestDriverCodeMatches checks the row matcher the engine table relies on,
// with stand-in types for an engine whose codes are strings (PostgreSQL's
// SQLSTATE) and one whose codes are integers.
func TestDriverCodeMatches(t *testing.T) {
	const pkg = "github.com/chapkit-go/chapkit/problem"
	ints := driverCode{pkg: pkg, typ: "intCodeErr", field: "Code", ints: []int64{5}}
	strs := driverCode{pkg: pkg, typ: "strCodeErr", field: "Code", strs: []string{"40P01"}}
	var nilStr *strCodeErr
	tests := []struct {
		name string
		row  driverCode
		err  error
		want bool
	}{
		{"int code listed", ints, intCodeErr{Code: 5}, true},
		{"int code not listed", ints, intCodeErr{Code: 19}, false},
		{"int row, other type", ints, &strCodeErr{Code: "5"}, false},
		{"string code listed", strs, &strCodeErr{Code: "40P01"}, true},
		{"string code not listed", strs, &strCodeErr{Code: "23505"}, false},
		{"nil pointer", strs, nilStr, false},
		{"wrapped is not itself", strs, fmt.Errorf("x: %w", &strCodeErr{Code: "40P01"}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.matches(tc.err); got != tc.want {
				t.Errorf("matches(%#v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
