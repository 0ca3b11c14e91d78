package chapkit

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/problem"

	"github.com/chapkit-go/chapkit/task"
)

// SeedTasks returns a start-up hook that inserts tasks, in order, only when
// the task table is empty: a file database is seeded once and never
// re-seeded or overwritten, even after the seeds were edited or deleted.
func SeedTasks(tasks ...task.In) Hook {
	return func(ctx context.Context, app *App) error {
		m := app.Tasks()
		if m == nil {
			return fmt.Errorf("SeedTasks: the app has no tasks (use WithTasks)")
		}
		n, err := m.Count(ctx)
		if err != nil || n > 0 {
			return err
		}
		for _, in := range tasks {
			if in.TaskType == "" {
				in.TaskType = task.TypeShell
			}
			if _, err := m.Create(ctx, in); err != nil {
				// Replicas starting at the same moment on one database
				// may seed together: the one that lost the race finds the
				// task there already, which is what seeding wants.
				if problem.Is(err, problem.KindConflict) || errors.Is(err, gorm.ErrDuplicatedKey) {
					continue
				}
				return fmt.Errorf("seed task %s: %w", in.ID, err)
			}
		}
		app.Logger().Info("seeded tasks", "count", len(tasks))
		return nil
	}
}
