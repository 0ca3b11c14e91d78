// Command rss runs examples/task_execution on a file database, drives N
// executions of a shell task over HTTP (each client executes and follows
// the job's event stream to its end), and prints the service's memory
// every step, to show that it does not grow with the number of finished
// jobs.
//
//	cd bench && go run ./cmd/rss -n 100000
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	n := flag.Int("n", 100_000, "executions")
	clients := flag.Int("clients", 16, "concurrent clients")
	step := flag.Int("step", 10_000, "print memory every this many executions")
	flag.Parse()

	dir, err := os.MkdirTemp("", "chapkit-rss-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "task_execution")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/task_execution").CombinedOutput(); err != nil {
		log.Fatalf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	svc := exec.Command(bin, "-addr", addr, "-db", filepath.Join(dir, "rss.db"))
	if err := svc.Start(); err != nil {
		log.Fatal(err)
	}
	defer svc.Process.Kill()
	base := "http://" + addr
	for range 200 {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post(base+"/api/v1/tasks", "application/json", strings.NewReader(`{"command":"true"}`))
	if err != nil {
		log.Fatal(err)
	}
	var tk struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	var done atomic.Int64
	var next atomic.Int64
	began := time.Now()
	fmt.Printf("%10s %10s %10s %10s %10s\n", "executions", "VmRSS_MB", "RssAnon_MB", "RssFile_MB", "elapsed")
	report := func(k int64) {
		fmt.Printf("%10d %10s %10s %10s %10s\n", k, mem(svc.Process.Pid, "VmRSS"), mem(svc.Process.Pid, "RssAnon"),
			mem(svc.Process.Pid, "RssFile"), time.Since(began).Round(time.Second))
	}
	report(0)
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				resp, err := client.Post(base+"/api/v1/tasks/"+tk.ID+"/$execute", "application/json", nil)
				if err != nil {
					log.Fatal(err)
				}
				var out struct {
					JobID string `json:"job_id"`
				}
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				stream, err := client.Get(base + "/api/v1/jobs/" + out.JobID + "/$stream")
				if err != nil {
					log.Fatal(err)
				}
				sc := bufio.NewScanner(stream.Body)
				for sc.Scan() {
				}
				stream.Body.Close()
				if k := done.Add(1); k%int64(*step) == 0 {
					report(k)
				}
			}
		}()
	}
	wg.Wait()
}

// mem reads one field of /proc/<pid>/status, in MiB.
func mem(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field+":")), "%d", &kb)
			return fmt.Sprintf("%.1f", float64(kb)/1024)
		}
	}
	return "?"
}
