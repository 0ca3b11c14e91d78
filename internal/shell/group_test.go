package shell

import (
	"testing"
)

func TestKillGroupRefusesLowIDs(t *testing.T) {
	for _, pgid := range []int{-5, -1, 0, 1} {
		if err := KillGroup(pgid); err == nil {
			t.Errorf("KillGroup(%d) = nil, want an error", pgid)
		}
		if GroupAlive(pgid) {
			t.Errorf("GroupAlive(%d) = true, want false", pgid)
		}
	}
}

func TestKillGroupGoneIsNotAnError(t *testing.T) {
	got, err := Run(t.Context(), "true", Options{})
	if err != nil {
		t.Fatalf("Run error = %v", err)
	}
	waitGroupGone(t, got.PGID)
	if err := KillGroup(got.PGID); err != nil {
		t.Errorf("KillGroup(%d) of a finished job = %v, want nil", got.PGID, err)
	}
}

func TestKillGroupKillsRunningGroup(t *testing.T) {
	done, started := runAsync(t.Context(), "sleep 1000 & sleep 1000; wait", Options{})
	pgid := <-started
	if !GroupAlive(pgid) {
		t.Errorf("GroupAlive(%d) = false while running, want true", pgid)
	}
	if err := KillGroup(pgid); err != nil {
		t.Errorf("KillGroup(%d) = %v, want nil", pgid, err)
	}
	r := <-done
	if r.err != nil {
		t.Errorf("Run error = %v, want nil (killed from outside is a normal result)", r.err)
	}
	if r.res.ExitCode != -9 {
		t.Errorf("ExitCode = %d, want -9", r.res.ExitCode)
	}
	waitGroupGone(t, pgid)
}
