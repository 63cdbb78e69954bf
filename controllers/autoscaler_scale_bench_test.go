package controllers

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/spec"
)

// startNATSProcess runs nats-server as its own process (built from the Go module in go.mod), so
// that this process's CPU and memory are the autoscaler's, not the queue's.
func startNATSProcess(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		b.Fatalf("building nats-server: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", b.TempDir())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return url
		}
		if time.Now().After(deadline) {
			b.Fatal("nats-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAutoscaler1000Pipelines samples 1,000 pipelines on one nats-server and one API server
// at the default 2 s interval and reports how late samples ran and what the autoscaler cost.
func BenchmarkAutoscaler1000Pipelines(b *testing.B) {
	const pipelines = 1000
	const run = 20 * time.Second
	natsURL := startNATSProcess(b)
	ns := newNamespace(b)
	ctx := context.Background()

	connector := queue.NewConnector("bench")
	b.Cleanup(connector.Close)
	js, err := connector.JetStream(natsURL)
	if err != nil {
		b.Fatal(err)
	}
	// The objects the autoscaler reads: pipelines, their pools, their streams and consumers.
	var wg sync.WaitGroup
	errs := make(chan error, pipelines)
	sem := make(chan struct{}, 16)
	for i := range pipelines {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := newPipeline(ns, fmt.Sprintf("p%04d", i), "m")
			// Small streams: JetStream reserves each stream's byte limit up front.
			p.Spec.Queue.MaxBytes = ptr.To(resource.MustParse("1Mi"))
			if err := k8s.Create(ctx, p); err != nil {
				errs <- err
				return
			}
			labels := map[string]string{"app": p.Name}
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: inferenceName(p)},
				Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: testImage}}}}}}
			if err := k8s.Create(ctx, d); err != nil {
				errs <- err
				return
			}
			if _, err := queue.Provision(ctx, js, spec.Queue(p, 1)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	cfg := rest.CopyConfig(testConfig)
	cfg.QPS, cfg.Burst = 200, 400
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := metrics.NewAutoscaling(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	a := &AutoscalerReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Queue: connector, Recorder: mgr.GetEventRecorder("bench"),
		Clock: clock.RealClock{}, Metrics: m, Options: Options{DefaultNATSURL: natsURL}, Concurrency: autoscalerConcurrency}
	if err := a.SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}

	// Warm up: the first sample of each pipeline writes its status (1,000 API writes at the
	// client's rate limit); the steady state is what the interval promise is about.
	time.Sleep(10 * time.Second)
	var warm dto.Metric
	if err := m.SampleLateness.Write(&warm); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := cpuTime()
	for b.Loop() {
		time.Sleep(run)
	}
	cpu := cpuTime() - cpuBefore
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	cancel()
	<-done

	var h dto.Metric
	if err := m.SampleLateness.Write(&h); err != nil {
		b.Fatal(err)
	}
	hist, warmHist := h.GetHistogram(), warm.GetHistogram()
	count := float64(hist.GetSampleCount() - warmHist.GetSampleCount())
	within := func(le float64) float64 {
		for i, bk := range hist.GetBucket() {
			if bk.GetUpperBound() >= le {
				return float64(bk.GetCumulativeCount()-warmHist.GetBucket()[i].GetCumulativeCount()) / count
			}
		}
		return 1
	}
	b.ReportMetric(count, "samples")
	b.ReportMetric(count/(float64(pipelines)*run.Seconds()/2), "samples/expected")
	b.ReportMetric((hist.GetSampleSum()-warmHist.GetSampleSum())/count*1000, "mean-lateness-ms")
	b.ReportMetric(100*within(0.128), "%late<=128ms")
	b.ReportMetric(100*within(0.512), "%late<=512ms")
	b.ReportMetric(cpu.Seconds()/run.Seconds()*100, "cpu-%")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MiB")
}
