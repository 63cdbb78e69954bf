// Package memtest measures the Go heap a test's workload needs at its peak.
package memtest

import (
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// inUse is the heap in spans holding objects (MemStats.HeapInuse), what a pod's memory
// limit sees of the heap; runtime/metrics reads it without stopping the world.
var inUse = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}

// HeapInUse is the heap in use now.
func HeapInUse() uint64 {
	s := make([]metrics.Sample, len(inUse))
	copy(s, inUse)
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// Peak runs work and returns the largest heap in use seen while it ran, sampled every
// millisecond, and the heap in use before it started (after a collection).
func Peak(work func()) (peak, before uint64) {
	runtime.GC()
	before = HeapInUse()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, HeapInUse())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	work()
	close(done)
	wg.Wait()
	return peak, before
}

// SamplePodLimit is the memory limit the sample pipeline and model give their pods.
const SamplePodLimit = 256 << 20

// LimitLikeASamplePod sets the Go memory limit a sample pod runs with (GOMEMLIMIT at 90 % of
// its memory limit) until tb ends. Call it before building the server: budgets are sized from it.
func LimitLikeASamplePod(tb testing.TB) {
	old := debug.SetMemoryLimit(SamplePodLimit / 10 * 9)
	tb.Cleanup(func() { debug.SetMemoryLimit(old) })
}

// CheckBurst posts body to url from n clients at once and checks that the heap stays under
// SamplePodLimit, that every answer is served (a body read whole) or a 503 with Retry-After
// (no budget for it), at least one served, and that the heap is back within 32 MiB of where it
// started once the burst is over and collected.
func CheckBurst(tb testing.TB, n int, url, contentType, body string, served int) {
	tb.Helper()
	statuses := map[int]int{}
	var mu sync.Mutex
	peak, before := Peak(func() {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, err := http.Post(url, contentType, strings.NewReader(body))
				if err != nil {
					tb.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					tb.Error("a 503 without Retry-After")
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
	})
	tb.Logf("%d bodies of %d bytes; heap in use: %d MiB before, %d MiB at the peak; answers %v", n, len(body), before>>20, peak>>20, statuses)
	if peak > SamplePodLimit {
		tb.Errorf("the heap peaked at %d MiB, over the pod limit of %d MiB", peak>>20, SamplePodLimit>>20)
	}
	if statuses[served] == 0 || statuses[served]+statuses[http.StatusServiceUnavailable] != n {
		tb.Errorf("answers %v, want %d (read whole) or 503 (no budget) for each of %d", statuses, served, n)
	}
	runtime.GC()
	if after := HeapInUse(); after > before+32<<20 {
		tb.Errorf("after the burst and a collection the heap holds %d MiB, %d MiB before it", after>>20, before>>20)
	}
}
