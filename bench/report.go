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
				"github.com/riverqueue/river/riverdriver/riverpgxv5", "github.com/jackc/pgx/v5", "gorm.io/driver/postgres",
				"github.com/mattn/go-sqlite3", "gorm.io/gorm", "gorm.io/driver/sqlite":
				m.Versions[d.Path] = d.Version
			}
		}
	}
	return m
}

type resultMeta struct {
	Mode    string          `json:"mode"`
	Args    []string        `json:"args"`
	Machine machine         `json:"machine"`
	Options json.RawMessage `json:"options"`
	Started string          `json:"started"`
}

type resultFile struct {
	meta     resultMeta   // the first file's
	metas    []resultMeta // every file's, in order
	sources  []string
	runs     []Result
	pg       []pgLine
	profiles []profileLine
	finished bool
}

// readResults reads one or more JSONL files (a report can combine, say,
// the SQLite matrices of one run with the PostgreSQL matrix of another).
// The report counts as finished when every file is.
func readResults(paths ...string) (*resultFile, error) {
	rf := &resultFile{finished: true}
	for _, path := range paths {
		fin, err := rf.read(path)
		if err != nil {
			return nil, err
		}
		rf.finished = rf.finished && fin
		rf.sources = append(rf.sources, path)
	}
	if len(rf.metas) > 0 {
		rf.meta = rf.metas[0]
	}
	return rf, nil
}

func (rf *resultFile) read(path string) (finished bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
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
			var m resultMeta
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				rf.metas = append(rf.metas, m)
			}
		case "end":
			finished = true
		case "run":
			var r Result
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				rf.runs = append(rf.runs, r)
			}
		case "postgres":
			var l pgLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				rf.pg = append(rf.pg, l)
			}
		case "profile":
			var l profileLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				rf.profiles = append(rf.profiles, l)
			}
		}
	}
	return finished, sc.Err()
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

// cells returns the distinct cells of a workload in a matrix (a SQLite
// synchronous mode or "postgres"), in first-run order.
func cells(runs []Result, workload, matrix string) []Spec {
	seen := map[string]bool{}
	var out []Spec
	for _, r := range runs {
		s := r.Spec
		if s.Workload != workload || s.matrix() != matrix {
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

// matrices lists the matrices of the runs in first-run order.
func matrices(runs []Result) []string {
	var out []string
	for _, r := range runs {
		if !slices.Contains(out, r.Spec.matrix()) {
			out = append(out, r.Spec.matrix())
		}
	}
	return out
}

// inMatrix returns s placed in the named matrix.
func inMatrix(s Spec, matrix string) Spec {
	if matrix == enginePG {
		s.Engine, s.Synchronous = enginePG, ""
	} else {
		s.Engine, s.Synchronous = "", matrix
	}
	return s
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
	for _, sync := range matrices(runs) {
		if sync == enginePG {
			fmt.Fprintf(w, "PostgreSQL (ours stores an artifact per job; River stores none)\n")
		} else {
			fmt.Fprintf(w, "SQLite synchronous=%s\n", sync)
		}
		peers := peerConfigs(runs, sync)
		for _, p := range peers {
			var parts []string
			for _, c := range []int{1, 8, 64} {
				o := inMatrix(Spec{Workload: "w1", System: "ours", Config: "defaults", Concurrency: c}, sync)
				ps := inMatrix(Spec{Workload: "w1", System: p.system, Config: p.config, Concurrency: c}, sync)
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
			for _, lbl := range []string{"100/s", "200/s", "500/s", "1000/s", "80% of W1 best"} {
				o := inMatrix(Spec{Workload: "w2", System: "ours", Config: "defaults", Concurrency: 8, RateLabel: lbl}, sync)
				ps := inMatrix(Spec{Workload: "w2", System: p.system, Config: p.config, Concurrency: 8, RateLabel: lbl}, sync)
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
				o := inMatrix(Spec{Workload: "w3", System: "ours", Config: "defaults", Concurrency: c}, sync)
				ps := inMatrix(Spec{Workload: "w3", System: p.system, Config: p.config, Concurrency: c}, sync)
				of, pf := findFraction(runs, o), findFraction(runs, ps)
				if !math.IsNaN(of) && !math.IsNaN(pf) {
					parts = append(parts, fmt.Sprintf("c%d %s/%s of raw=%s", c, fmtNum(of), fmtNum(pf), fmtNum(of/pf)))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  W3 shell   ours vs %-17s %s\n", p.system+" "+p.config, strings.Join(parts, "  "))
			}
		}
		for _, p := range peers {
			o := inMatrix(Spec{Workload: "w4n", System: "ours", Config: "defaults", Concurrency: pgW4NodeConc}, sync)
			ps := inMatrix(Spec{Workload: "w4n", System: p.system, Config: p.config, Concurrency: pgW4NodeConc}, sync)
			ov, pv := findMedian(runs, o, "jobs_per_s"), findMedian(runs, ps, "jobs_per_s")
			if !math.IsNaN(ov) && !math.IsNaN(pv) {
				fmt.Fprintf(w, "  W4 3 nodes ours vs %-17s %s/%s=%s jobs/s\n", p.system+" "+p.config, fmtNum(ov), fmtNum(pv), fmtNum(ov/pv))
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
		printExecRatios(w, runs, sync)
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
	for _, s := range cells(runs, want.Workload, want.matrix()) {
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
		if r.Spec.matrix() == sync && (sc.system == "river" || sc.system == "goqite") && r.Spec.Workload != "w4" && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}
