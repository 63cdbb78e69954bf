// Command e2ereport writes the timings the end-to-end suite measured (test/e2e, FREIGHTCAST_E2E_REPORT)
// into docs/benchmarks.md, between the markers below, replacing the previous run's.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const (
	begin = "<!-- e2e-timings:begin (written by make e2e) -->"
	end   = "<!-- e2e-timings:end -->"
)

type row struct {
	What    string    `json:"what"`
	Seconds []float64 `json:"seconds"`
}

func main() {
	report := flag.String("report", "", "JSON report written by the e2e suite")
	doc := flag.String("doc", "docs/benchmarks.md", "markdown file to update")
	status := flag.Int("status", 0, "exit status of the suite")
	flag.Parse()
	if err := run(*report, *doc, *status); err != nil {
		fmt.Fprintln(os.Stderr, "e2ereport:", err)
		os.Exit(1)
	}
}

func run(reportPath, docPath string, status int) error {
	raw, err := os.ReadFile(reportPath)
	if err != nil {
		return err
	}
	var rows []row
	if err := json.Unmarshal(raw, &rows); err != nil {
		return fmt.Errorf("%s: %w", reportPath, err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return errors.New(docPath + " has no e2e timing markers")
	}
	var b strings.Builder
	b.WriteString(begin + "\n")
	verdict := "passed"
	if status != 0 {
		verdict = fmt.Sprintf("FAILED (exit %d): timings of the tests that ran", status)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "Last run: %s, %s, %d CPUs, load average %s; suite %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), kernel(), runtime.NumCPU(), firstField(string(load)), verdict)
	b.WriteString("| what | seconds |\n|---|---|\n")
	for _, r := range rows {
		var s []string
		for _, v := range r.Seconds {
			s = append(s, strconv.FormatFloat(v, 'f', 2, 64))
		}
		fmt.Fprintf(&b, "| %s | %s |\n", r.What, strings.Join(s, ", "))
	}
	out := append([]byte{}, doc[:i]...)
	out = append(out, b.String()...)
	out = append(out, doc[j:]...)
	return os.WriteFile(docPath, out, 0o644)
}

func kernel() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return "unknown kernel"
	}
	return strings.TrimSpace(string(out))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "?"
}
