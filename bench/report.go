package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

type machine struct {
	CPU      string            `json:"cpu"`
	Cores    int               `json:"cores"`
	MemGiB   float64           `json:"mem_gib"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	SQLite   string            `json:"sqlite"`
	Versions map[string]string `json:"versions"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Versions: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemGiB = math.Round(float64(si.Totalram)*float64(si.Unit)/(1<<30)*10) / 10
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var sb strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			sb.WriteByte(byte(c))
		}
		m.Kernel = sb.String()
	}
	if db, err := sql.Open("sqlite3", ":memory:"); err == nil {
		_ = db.QueryRow("select sqlite_version()").Scan(&m.SQLite)
		_ = db.Close()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/riverqueue/river", "github.com/riverqueue/river/riverdriver/riversqlite", "maragu.dev/goqite",
				"github.com/mattn/go-sqlite3", "gorm.io/gorm", "gorm.io/driver/sqlite":
				m.Versions[d.Path] = d.Version
			}
		}
	}
	return m
}

type resultFile struct {
	meta struct {
		Mode    string          `json:"mode"`
		Args    []string        `json:"args"`
		Machine machine         `json:"machine"`
		Options json.RawMessage `json:"options"`
		Started string          `json:"started"`
	}
	runs     []Result
	finished bool
}

func readResults(path string) (*resultFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rf := &resultFile{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &head) != nil {
			continue
		}
		switch head.Type {
		case "meta":
			_ = json.Unmarshal(sc.Bytes(), &rf.meta)
		case "end":
			rf.finished = true
		case "run":
			var r Result
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				rf.runs = append(rf.runs, r)
			}
		}
	}
	return rf, sc.Err()
}

// cellMedian is the median of metric over the runs of spec's cell.
func cellMedian(runs []Result, spec Spec, metric string) float64 {
	return cellSummary(runs, spec, metric).Median
}

func cellSummary(runs []Result, spec Spec, metric string) summary {
	key := spec.cell()
	var xs []float64
	for _, r := range runs {
		if r.Error == "" && r.Spec.cell() == key {
			if v, ok := r.Metrics[metric]; ok {
				xs = append(xs, v)
			}
		}
	}
	return summarize(xs)
}

// cells returns the distinct cells of a workload in first-run order.
func cells(runs []Result, workload, sync string) []Spec {
	seen := map[string]bool{}
	var out []Spec
	for _, r := range runs {
		s := r.Spec
		if s.Workload != workload || s.Synchronous != sync {
			continue
		}
		s.Rep, s.Profile = 0, ""
		if !seen[s.cell()] {
			seen[s.cell()] = true
			out = append(out, s)
		}
	}
	return out
}

func syncModes(runs []Result) []string {
	var out []string
	for _, r := range runs {
		if !slices.Contains(out, r.Spec.Synchronous) {
			out = append(out, r.Spec.Synchronous)
		}
	}
	return out
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtSummary(s summary) string {
	if s.N == 0 {
		return "n/a"
	}
	if s.N == 1 || s.Min == s.Max {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

func label(s Spec) string { return s.System + " " + s.Config }

// w3Fraction is a W3 cell's jobs/s over the raw exec loop's at the same
// concurrency in the same matrix (medians).
func w3Fraction(runs []Result, s Spec) float64 {
	raw := s
	raw.System, raw.Config = "exec", "raw"
	return cellMedian(runs, s, "jobs_per_s") / cellMedian(runs, raw, "jobs_per_s")
}

// printRatios prints ours against each peer configuration: the ratio
// ours/peer of the medians, per workload's headline metric.
func printRatios(w io.Writer, rf *resultFile) {
	runs := rf.runs
	fmt.Fprintln(w, "ratio rows: ours/peer of the medians (W1, W3: above 1 = ours faster; W2 p99: below 1 = ours lower latency)")
	for _, sync := range syncModes(runs) {
		fmt.Fprintf(w, "synchronous=%s\n", sync)
		peers := peerConfigs(runs, sync)
		for _, p := range peers {
			var parts []string
			for _, c := range []int{1, 8, 64} {
				o := Spec{Workload: "w1", System: "ours", Config: "defaults", Synchronous: sync, Concurrency: c}
				ps := Spec{Workload: "w1", System: p.system, Config: p.config, Synchronous: sync, Concurrency: c}
				ov, pv := findMedian(runs, o, "jobs_per_s"), findMedian(runs, ps, "jobs_per_s")
				if !math.IsNaN(ov) && !math.IsNaN(pv) {
					parts = append(parts, fmt.Sprintf("c%d %s/%s=%s", c, fmtNum(ov), fmtNum(pv), fmtNum(ov/pv)))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  W1 jobs/s  ours vs %-17s %s\n", p.system+" "+p.config, strings.Join(parts, "  "))
			}
		}
		for _, p := range peers {
			var parts []string
			for _, lbl := range []string{"100/s", "500/s", "1000/s", "80% of W1 best"} {
				o := Spec{Workload: "w2", System: "ours", Config: "defaults", Synchronous: sync, Concurrency: 8, RateLabel: lbl}
				ps := Spec{Workload: "w2", System: p.system, Config: p.config, Synchronous: sync, Concurrency: 8, RateLabel: lbl}
				ov, pv := findMedian(runs, o, "done_p99_ms"), findMedian(runs, ps, "done_p99_ms")
				if !math.IsNaN(ov) && !math.IsNaN(pv) {
					parts = append(parts, fmt.Sprintf("%s %sms/%sms=%s", lbl, fmtNum(ov), fmtNum(pv), fmtNum(ov/pv)))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  W2 done p99 ours vs %-17s %s\n", p.system+" "+p.config, strings.Join(parts, "  "))
			}
		}
		for _, p := range peers {
			var parts []string
			for _, c := range []int{2, 4, 8} {
				o := Spec{Workload: "w3", System: "ours", Config: "defaults", Synchronous: sync, Concurrency: c}
				ps := Spec{Workload: "w3", System: p.system, Config: p.config, Synchronous: sync, Concurrency: c}
				of, pf := findFraction(runs, o), findFraction(runs, ps)
				if !math.IsNaN(of) && !math.IsNaN(pf) {
					parts = append(parts, fmt.Sprintf("c%d %s/%s of raw=%s", c, fmtNum(of), fmtNum(pf), fmtNum(of/pf)))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  W3 shell   ours vs %-17s %s\n", p.system+" "+p.config, strings.Join(parts, "  "))
			}
		}
		var parts []string
		for _, s := range cells(runs, "w4", sync) {
			parts = append(parts, fmt.Sprintf("%s lost=%s dup=%s", label(s),
				fmtNum(cellMedian(runs, s, "lost_jobs")), fmtNum(cellMedian(runs, s, "duplicate_runs"))))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "  W4 crash   %s\n", strings.Join(parts, "; "))
		}
	}
}

// findMedian matches a cell by workload, system, config, sync and
// concurrency or rate label, whatever the other fields.
func findMedian(runs []Result, want Spec, metric string) float64 {
	if s, ok := findCell(runs, want); ok {
		return cellMedian(runs, s, metric)
	}
	return math.NaN()
}

func findFraction(runs []Result, want Spec) float64 {
	if s, ok := findCell(runs, want); ok {
		return w3Fraction(runs, s)
	}
	return math.NaN()
}

func findCell(runs []Result, want Spec) (Spec, bool) {
	for _, s := range cells(runs, want.Workload, want.Synchronous) {
		if s.System == want.System && s.Config == want.Config && s.Concurrency == want.Concurrency && s.RateLabel == want.RateLabel {
			return s, true
		}
	}
	return Spec{}, false
}

func peerConfigs(runs []Result, sync string) []sysConf {
	var out []sysConf
	for _, r := range runs {
		sc := sysConf{r.Spec.System, r.Spec.Config}
		if r.Spec.Synchronous == sync && (sc.system == "river" || sc.system == "goqite") && r.Spec.Workload != "w4" && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}
