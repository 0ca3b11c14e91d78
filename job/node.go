package job

import (
	"bytes"
	"fmt"
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
	// ProcStart identifies the process beyond its pid: the kernel boot id
	// and the process start time, so a restarted host or a recycled pid is
	// not mistaken for the node ("" where /proc is not available).
	ProcStart   string `gorm:"type:text;not null;default:''"`
	StartedMS   int64  `gorm:"column:started_ms;not null"`
	HeartbeatMS int64  `gorm:"column:heartbeat_ms;not null;index"`
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

// procStart returns the identity of process pid beyond its number: the boot
// id and the start time in clock ticks since boot (field 22 of
// /proc/<pid>/stat). It returns "" when /proc cannot tell.
func procStart(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startTimeField = 22 - 3 // fields 3.. follow the parenthesis
	if len(fields) <= startTimeField {
		return ""
	}
	return strings.TrimSpace(string(boot)) + ":" + fields[startTimeField]
}

// processGone reports whether the process a node row describes has ended,
// judged on this host: its pid is free, or now belongs to another process.
// It is false when /proc cannot tell (the heartbeat then decides).
func processGone(pid int, recorded string) bool {
	if recorded == "" || pid <= 0 {
		return false
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return false // no /proc here
	}
	return procStart(pid) != recorded // "" when the pid is free
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
