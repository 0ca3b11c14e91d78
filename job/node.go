package job

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// Node is one scheduler process sharing the database (table chapkit_nodes).
// A node registers when it starts, writes a heartbeat while it runs and
// removes its row when it stops cleanly. A node whose heartbeat is older
// than Config.RescueAfter is dead: its running jobs are rescued.
type Node struct {
	ID       string `gorm:"primaryKey;type:text"`
	Hostname string `gorm:"type:text;not null;index"`
	PID      int    `gorm:"column:pid;not null"`
	// HostKey identifies the kernel and process namespace the node ran
	// in (boot id and pid namespace): only a node with the same key can
	// judge from /proc whether the process is gone, or kill what it
	// started. Host names are not enough: containers and cloned machines
	// share them. "" where /proc cannot tell.
	HostKey string `gorm:"type:text;not null;default:''"`
	// ProcStart is the process's start time in clock ticks since boot, so
	// a recycled pid is not mistaken for the node.
	ProcStart   string `gorm:"type:text;not null;default:''"`
	StartedMS   int64  `gorm:"column:started_ms;not null"`
	HeartbeatMS int64  `gorm:"column:heartbeat_ms;not null;index"`
	// RescueAfterMS is the node's own rescue horizon: others judge its
	// heartbeat by it, so nodes with different settings can share a
	// database.
	RescueAfterMS int64 `gorm:"column:rescue_after_ms;not null;default:15000"`
}

// TableName pins the table name.
func (Node) TableName() string { return "chapkit_nodes" }

// Lease is a named, expiring lock held by one node (table chapkit_leases).
// The lease "leader" decides which node runs maintenance: the rescue of
// dead nodes and whatever the host program hooks in (retention pruning).
type Lease struct {
	Name      string `gorm:"primaryKey;type:text"`
	Holder    string `gorm:"type:text;not null;default:''"`
	ExpiresMS int64  `gorm:"column:expires_ms;not null;default:0"`
}

// TableName pins the table name.
func (Lease) TableName() string { return "chapkit_leases" }

const leaderLease = "leader"

// NodeInfo describes a live node for GET /api/v1/system/nodes.
type NodeInfo struct {
	ID          string    `json:"id"`
	Hostname    string    `json:"hostname"`
	PID         int       `json:"pid"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	Leader      bool      `json:"leader"`
	Running     int       `json:"running"`
}

// hostKey identifies this kernel boot and pid namespace: the boot id and
// the inode of /proc/self/ns/pid. It returns "" when /proc cannot tell.
func hostKey() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// procStart returns the start time of process pid in clock ticks since
// boot (field 22 of /proc/<pid>/stat), "" when there is no such process,
// and an error when /proc cannot be read for another reason.
func procStart(pid int) (string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startTimeField = 22 - 3 // fields 3.. follow the parenthesis
	if len(fields) <= startTimeField {
		return "", fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return fields[startTimeField], nil
}

// processGone reports whether the process a node row describes has
// provably ended: the row comes from this kernel boot and pid namespace,
// and its pid is free or now belongs to a process started at another
// time. It is false whenever that cannot be proven (another host, or
// /proc unreadable); the heartbeat then decides.
func processGone(n *Node, ours string) bool {
	if ours == "" || n.HostKey != ours || n.PID <= 0 || n.ProcStart == "" {
		return false
	}
	now, err := procStart(n.PID)
	if err != nil {
		return false
	}
	return now != n.ProcStart
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

func describeNode(n *Node) string {
	return fmt.Sprintf("%s (%s pid %d)", n.ID, n.Hostname, n.PID)
}
