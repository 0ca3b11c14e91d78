package problem

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"syscall"
)

// DatabaseRetryAfter is the Retry-After, in seconds, of a [Database] error
// classified as temporary: a lock held by another process or a store that
// did not answer in time usually clears within a few seconds.
const DatabaseRetryAfter = 2

// A storage error is temporary when retrying the same request later can
// succeed without anyone changing anything: the database is locked or
// busy, the connection was refused or dropped, or the caller's deadline
// passed while waiting for it. Such an error is a 503 with Retry-After,
// never a 4xx or a 500.
//
// Driver errors are recognised by the type's package path, name and code
// field, so this package imports no driver. To teach it another engine,
// add a row to driverCodes.

// driverCode is one driver's error type and the codes that mean "busy".
type driverCode struct {
	pkg, typ string // reflect package path and type name
	field    string // the code field
	ints     []int64
	strs     []string
}

var driverCodes = []driverCode{
	// mattn/go-sqlite3: SQLITE_BUSY (5), a lock held by another connection
	// or process past the busy timeout; SQLITE_LOCKED (6), a conflict
	// inside one connection's shared cache. Extended codes keep the primary
	// code in Code.
	{pkg: "github.com/mattn/go-sqlite3", typ: "Error", field: "Code", ints: []int64{5, 6}},
	// pgx: SQLSTATE classes where the same statement can succeed later:
	// serialization failure and deadlock (40001, 40P01), lock not available
	// (55P03), too many connections (53300), server starting or shutting
	// down (57P01, 57P02, 57P03), connection failures (08000, 08003, 08006).
	{pkg: "github.com/jackc/pgx/v5/pgconn", typ: "PgError", field: "Code",
		strs: []string{"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03", "08000", "08003", "08006"}},
}

// Temporary reports whether err, or any error it wraps, is a storage
// failure that a later retry can get past (see [Database]). It is safe for
// concurrent use.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET):
		return true
	}
	var timeout interface{ Timeout() bool } // net.Error and friends
	if errors.As(err, &timeout) && timeout.Timeout() {
		return true
	}
	return walk(err, busyDriverError)
}

// walk reports whether f holds for err or any error in its tree.
func walk(err error, f func(error) bool) bool {
	if err == nil {
		return false
	}
	if f(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, f) {
				return true
			}
		}
	}
	return false
}

// busyDriverError reports whether err itself is a driver error with a
// busy code listed in driverCodes.
func busyDriverError(err error) bool {
	for _, dc := range driverCodes {
		if dc.matches(err) {
			return true
		}
	}
	return false
}

// matches reports whether err itself (not what it wraps) is of dc's type
// with one of its codes.
func (dc driverCode) matches(err error) bool {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || v.Type().PkgPath() != dc.pkg || v.Type().Name() != dc.typ {
		return false
	}
	f := v.FieldByName(dc.field)
	switch {
	case !f.IsValid():
		return false
	case f.CanInt():
		for _, c := range dc.ints {
			if f.Int() == c {
				return true
			}
		}
	case f.Kind() == reflect.String:
		for _, c := range dc.strs {
			if f.String() == c {
				return true
			}
		}
	}
	return false
}
