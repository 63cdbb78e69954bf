// Package testenv holds what test suites of several packages share: the kube-apiserver and etcd
// binaries that envtest runs, the committed freight model, and Eventually for waiting on
// conditions that other goroutines or processes make true, and a settable Clock.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/model"
)

// Assets returns the directory holding kube-apiserver and etcd: KUBEBUILDER_ASSETS when set (make
// test sets it), otherwise the project's own build of them, which hack/k8s-binaries.sh makes once
// and caches outside the clone.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("testenv: cannot locate the repository")
	}
	script := filepath.Join(filepath.Dir(self), "..", "..", "..", "hack", "k8s-binaries.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		return "", fmt.Errorf("building envtest binaries with %s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// CRDDirectory is config/crd/bases, the generated CRDs.
func CRDDirectory() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "..", "config", "crd", "bases")
}

// Eventually calls cond until it returns nil, and fails the test with cond's last error when
// timeout has passed. The timeout bounds a wait for something that must happen, so make it
// generous: a loaded machine under -race is slow, not wrong. cond may call tb.Fatal: Eventually
// runs it on the caller's goroutine.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	// Short first pauses catch a condition that is about to hold; the cap keeps a long wait
	// (an API server, a backlog) from adding load to the machine it waits on.
	pause := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// FreightModel loads models/freight-delay-risk.onnx with the real runtime, so that tests score
// with the model the project ships rather than a stand-in.
func FreightModel(tb testing.TB) *model.Model {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	m, err := model.LoadFile(filepath.Join(filepath.Dir(self), "..", "..", "..", "models", "freight-delay-risk.onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// Clock is a settable time for tests whose code takes a `now func() time.Time`; safe for
// concurrent use, so several components of one test can share it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time; pass the method value as a component's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
