package shell

import (
	"errors"
	"fmt"
	"syscall"
)

// KillGroup sends SIGKILL to every process in the process group pgid. A
// group that no longer exists (ESRCH) is not an error. pgid <= 1 is refused
// with an error, because kill(2) reads 0 as the caller's own group, -1 as
// every process it may signal, and 1 as init's group. It is safe for
// concurrent use.
//
// A group ID is only a number: once every member has exited and been
// reaped, the kernel may hand it to an unrelated process. Callers that kill
// a group recorded earlier (such as an orphan from before a restart) take
// that risk.
func KillGroup(pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("shell: refusing to kill process group %d: want a group ID > 1", pgid)
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("shell: kill process group %d: %w", pgid, err)
	}
	return nil
}

// GroupAlive reports whether the process group pgid exists and may be
// signalled by this process, that is whether kill(-pgid, 0) succeeds. It is
// false for pgid <= 1. Killed members still count until their parent (for
// orphans, init) reaps them, so poll rather than expect false at once after
// [KillGroup]. It is safe for concurrent use.
func GroupAlive(pgid int) bool {
	if pgid <= 1 {
		return false
	}
	return syscall.Kill(-pgid, 0) == nil
}
