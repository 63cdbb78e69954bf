package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// BenchmarkManagerHeapWithModelConfigMaps measures the manager's heap with 100 PredictionModels
// whose files are ConfigMaps of 1 MiB each, once the manager has reconciled them all: with
// controller-runtime's default cache, which holds every ConfigMap of the watched namespaces in
// full (what the operator did before NewCache), and with NewCache, which holds the operator's
// own ConfigMaps only and the models' source ConfigMaps as metadata.
func BenchmarkManagerHeapWithModelConfigMaps(b *testing.B) {
	const models, size = 100, 1 << 20
	for _, tc := range []struct {
		name     string
		newCache cache.NewCacheFunc
	}{
		{"every ConfigMap cached", nil},
		{"owned ConfigMaps cached, sources metadata-only", NewCache},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ns := newNamespace(b)
			ctx := context.Background()
			for i := range models {
				// Random bytes: a model file does not compress, and neither must this.
				content := make([]byte, size-1024) // a ConfigMap holds 1 MiB in all, names included
				_, _ = rand.Read(content)
				name := fmt.Sprintf("m%03d", i)
				mustCreate(b, newModelConfigMap(ns, name+"-onnx", content), newModel(ns, name, name+"-onnx"))
			}
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			mgr, err := ctrl.NewManager(rest.CopyConfig(testConfig), ctrl.Options{Scheme: scheme,
				Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
				Controller: config.Controller{SkipNameValidation: ptr.To(true)},
				Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}, NewCache: tc.newCache})
			if err != nil {
				b.Fatal(err)
			}
			connector := queue.NewConnector("bench")
			b.Cleanup(connector.Close)
			if err := SetupWithManager(mgr, Options{Image: testImage, ImagePullPolicy: corev1.PullIfNotPresent}, connector, clock.RealClock{}); err != nil {
				b.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- mgr.Start(runCtx) }()
			b.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					b.Errorf("manager: %v", err)
				}
			})
			for b.Loop() {
				// Every model reconciled: its serving Deployment exists, so its file was read.
				for i := range models {
					name := fmt.Sprintf("m%03d-predictor", i)
					testenv.Eventually(b, 3*time.Minute, "Deployment "+name, func() error {
						_, err := getDeployment(ns, name)
						return err
					})
				}
			}
			runtime.GC()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "manager-heap-MiB")
			b.ReportMetric(float64(after.HeapInuse)/(1<<20), "process-heap-MiB")
		})
	}
}
