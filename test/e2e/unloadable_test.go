//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/argohealth"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

// holdEnv sets how long TestUnloadableModel watches the status of a model that cannot load stay
// as it is. Issue 20 asks for 15 minutes (FREIGHTCAST_E2E_UNLOADABLE_HOLD=15m); routine runs
// hold defaultHold. docs/benchmarks.md records which one ran.
const (
	holdEnv     = "FREIGHTCAST_E2E_UNLOADABLE_HOLD"
	defaultHold = 2 * time.Minute
)

func unloadableHold(t testing.TB) time.Duration {
	v := os.Getenv(holdEnv)
	if v == "" {
		return defaultHold
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 15m", holdEnv, v)
	}
	return d
}

// TestUnloadableModel applies, to a serving model, a ConfigMap whose model the runtime refuses (a
// FusedGemm) and then one that is not ONNX at all: each is reported Ready=False/Degraded=True
// with the loader's message within 10 s of the apply. Then the same FusedGemm from an https
// URI on a private model store the test serves, trusted through spec.source.caBundle: reported
// ModelLoadFailed with the pod's message within 10 s of the first crash, and rolled back. All the
// while the previous revision keeps serving and no pod of it restarts; the status holds for the
// hold, and Argo CD's health check says Degraded.
func TestUnloadableModel(t *testing.T) {
	ns := newNamespace(t, "unloadable")
	deployModel(t, ns)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: ns, Name: "freight-delay-risk"}
	m := &freightcastv1alpha1.PredictionModel{}
	if err := k8s.Get(ctx, key, m); err != nil {
		t.Fatal(err)
	}
	goodDigest := m.Status.ModelDigest
	infer := sampleInfer(t, exposeOnLoopback(t, ns, "freight-delay-risk-predictor", "http"))
	eventually(t, 30*time.Second, "OIP through the NodePort", infer)
	pods := servingPods(t, ns)

	for _, tc := range []struct {
		name, configMap, reason, says string
		content                       []byte
		version                       string
	}{
		{"an operator the runtime refuses", "fused-model", freightcastv1alpha1.ReasonUnsupportedModel, "FusedGemm", onnxtest.Refused(12), "2"},
		{"a file that is not ONNX", "broken-model", freightcastv1alpha1.ReasonInvalidModel, "invalid model", []byte("not an ONNX model"), "3"},
	} {
		applyYAML(t, ns, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\nbinaryData:\n  model.onnx: %s\n",
			tc.configMap, base64.StdEncoding.EncodeToString(tc.content)))
		patch := fmt.Appendf(nil, `{"spec":{"version":%q,"source":{"configMap":{"name":%q,"key":"model.onnx"}}}}`, tc.version, tc.configMap)
		if err := k8s.Patch(ctx, m, client.RawPatch("application/merge-patch+json", patch)); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 10*time.Second, tc.name+" reported", func() error {
			if err := k8s.Get(ctx, key, m); err != nil {
				return err
			}
			return reportsUnloadable(m, tc.reason, tc.says)
		})
		timings.record("unloadable model: "+tc.name+" reported after the apply (ConfigMap source)", took)
		if m.Status.ModelDigest != goodDigest {
			t.Errorf("serving digest %s, want the last good %s", m.Status.ModelDigest, goodDigest)
		}
		if err := infer(); err != nil {
			t.Errorf("the last good revision does not answer: %v", err)
		}
		waitWarning(t, ns, "freight-delay-risk", tc.reason)
	}

	// A URI source on a private model store: an https server this test runs on the node's address,
	// its certificate signed by a CA of its own that the model trusts through spec.source.caBundle.
	// The operator does not download, so the first pod that loads the model reports it.
	nodeIP := os.Getenv("FREIGHTCAST_E2E_NODE_IP")
	if net.ParseIP(nodeIP) == nil {
		t.Fatalf("FREIGHTCAST_E2E_NODE_IP %q is not an address (make e2e sets it)", nodeIP)
	}
	fused := onnxtest.Refused(12)
	store := newPrivateModelStore(t, nodeIP, fused)
	if err := k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "model-store-ca"},
		Data: map[string]string{"ca.crt": string(store.caPEM)}}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fused)
	patch := fmt.Appendf(nil, `{"spec":{"version":"4","source":{"configMap":null,"uri":%q,"sha256":%q,"caBundle":{"configMap":{"name":"model-store-ca"}}}}}`,
		store.url+"/fused.onnx", hex.EncodeToString(sum[:]))
	if err := k8s.Patch(ctx, m, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	// The crash is read off the pods as they come and go (the rollback deletes the failed one);
	// the report counts from the first exit the kubelet records (to the second, so it errs late).
	var firstCrash time.Time
	eventually(t, 2*time.Minute, "the download's model reported after the first crash", func() error {
		if c := firstUnloadableExit(t, ns); !c.IsZero() && (firstCrash.IsZero() || c.Before(firstCrash)) {
			firstCrash = c
		}
		if err := k8s.Get(ctx, key, m); err != nil {
			return err
		}
		return reportsUnloadable(m, freightcastv1alpha1.ReasonModelLoadFailed, "FusedGemm")
	})
	reported := time.Now()
	if firstCrash.IsZero() {
		t.Fatal("the model is reported ModelLoadFailed, but no pod was seen exiting with code 78")
	}
	if store.downloads.Load() == 0 {
		t.Error("no pod downloaded the model from the private store")
	}
	took := reported.Sub(firstCrash)
	timings.record("unloadable model: an operator the runtime refuses reported after the first crash (https URI source, private CA)", took)
	if took > 10*time.Second {
		t.Errorf("reported %s after the first crash, want within 10s", took.Round(100*time.Millisecond))
	}
	if msg := condition(m.Status.Conditions, freightcastv1alpha1.ConditionDegraded).Message; !strings.Contains(msg, "exited with code 78") || !strings.Contains(msg, store.url) {
		t.Errorf("Degraded message %q does not name the exit and the URI", msg)
	}
	if m.Status.ModelDigest != goodDigest {
		t.Errorf("serving digest %s, want the last good %s", m.Status.ModelDigest, goodDigest)
	}
	if err := infer(); err != nil {
		t.Errorf("the last good revision does not answer: %v", err)
	}
	waitWarning(t, ns, "freight-delay-risk", freightcastv1alpha1.EventReasonRolledBack)
	// The failed revision's pod goes with the rollback; the last good pods were never restarted.
	eventually(t, time.Minute, "only the last good serving pods", func() error {
		if now := servingPods(t, ns); fmt.Sprint(now) != fmt.Sprint(pods) {
			return fmt.Errorf("serving pods %v, were %v", now, pods)
		}
		return nil
	})

	hold := unloadableHold(t)
	held := m.Status.DeepCopy()
	start := time.Now()
	for time.Since(start) < hold {
		if err := k8s.Get(ctx, key, m); err != nil {
			t.Fatal(err)
		}
		for _, want := range held.Conditions {
			got := condition(m.Status.Conditions, want.Type)
			if got == nil || got.Status != want.Status || got.Reason != want.Reason || !got.LastTransitionTime.Equal(&want.LastTransitionTime) {
				t.Fatalf("after %s: %s went from %s/%s to %+v", time.Since(start).Round(time.Second), want.Type, want.Status, want.Reason, got)
			}
		}
		if now := servingPods(t, ns); fmt.Sprint(now) != fmt.Sprint(pods) {
			t.Fatalf("after %s the serving pods changed: %v, were %v", time.Since(start).Round(time.Second), now, pods)
		}
		if err := infer(); err != nil {
			t.Fatalf("after %s the last good revision does not answer: %v", time.Since(start).Round(time.Second), err)
		}
		time.Sleep(5 * time.Second)
	}
	timings.record(fmt.Sprintf("unloadable model: status, serving pods and answers held steady (%s=%s)", holdEnv, hold), time.Since(start))
	status, message, err := argohealth.Eval(filepath.Join(repoRoot, "config", "argocd", "health", "freightcast.io", "health.lua"), m)
	if err != nil {
		t.Fatal(err)
	}
	if status != "Degraded" {
		t.Errorf("Argo CD health %s (%s), want Degraded", status, message)
	}
}

// reportsUnloadable checks that m's current generation is reported unable to load, for reason,
// with a message that says says: Degraded=True and Ready, ModelLoaded, Progressing False.
func reportsUnloadable(m *freightcastv1alpha1.PredictionModel, reason, says string) error {
	for _, typ := range []string{freightcastv1alpha1.ConditionDegraded, freightcastv1alpha1.ConditionReady, freightcastv1alpha1.ConditionModelLoaded, freightcastv1alpha1.ConditionProgressing} {
		c := condition(m.Status.Conditions, typ)
		want := metav1.ConditionFalse
		if typ == freightcastv1alpha1.ConditionDegraded {
			want = metav1.ConditionTrue
		}
		if c == nil || c.Status != want || c.Reason != reason || c.ObservedGeneration != m.Generation || !strings.Contains(c.Message, says) {
			return fmt.Errorf("%s is %+v", typ, c)
		}
	}
	return nil
}

// firstUnloadableExit is when the first container of the model's serving pods that exited with
// code 78 (the model cannot load) did, zero when none has.
func firstUnloadableExit(t testing.TB, ns string) time.Time {
	t.Helper()
	list := &corev1.PodList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{"freightcast.io/model": "freight-delay-risk", "app.kubernetes.io/component": "predictor"}); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for _, p := range list.Items {
		for _, cs := range p.Status.ContainerStatuses {
			for _, term := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
				if term != nil && term.ExitCode == 78 && (first.IsZero() || term.FinishedAt.Time.Before(first)) {
					first = term.FinishedAt.Time
				}
			}
		}
	}
	return first
}

// privateModelStore is an https model store on this machine's node address whose certificate a
// CA of the test's own signed: pods reach it only if they trust caPEM.
type privateModelStore struct {
	url       string
	caPEM     []byte
	downloads atomic.Int32
}

func newPrivateModelStore(t testing.TB, nodeIP string, model []byte) *privateModelStore {
	t.Helper()
	ca := testcerts.NewCA(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &privateModelStore{url: "https://" + ln.Addr().String(), caPEM: ca.PEM}
	srv := &http.Server{
		TLSConfig:         ca.ServerConfig(t, nodeIP),
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.downloads.Add(1)
			w.Write(model)
		}),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return s
}

// servingPods names the model's serving pods with their containers' restart counts.
func servingPods(t testing.TB, ns string) []string {
	t.Helper()
	list := &corev1.PodList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{"freightcast.io/model": "freight-delay-risk", "app.kubernetes.io/component": "predictor"}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		restarts := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		out = append(out, fmt.Sprintf("%s(restarts %d)", p.Name, restarts))
	}
	return out
}

// waitWarning waits for a Warning event of reason about the object named name.
func waitWarning(t testing.TB, ns, name, reason string) {
	t.Helper()
	eventually(t, 30*time.Second, "a Warning event "+reason, func() error {
		evs := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == reason && e.Regarding.Name == name {
				return nil
			}
		}
		return fmt.Errorf("%d events, none of them", len(evs.Items))
	})
}

// sampleInfer returns a call of the sample model's OIP infer with its sample request at addr,
// which fails unless the answer is 200.
func sampleInfer(t testing.TB, addr string) func() error {
	t.Helper()
	request, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	return func() error {
		resp, err := httpClient.Post("http://"+addr+"/v2/models/freight-delay-risk/infer", "application/json", bytes.NewReader(request))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("infer: %d", resp.StatusCode)
		}
		return nil
	}
}
