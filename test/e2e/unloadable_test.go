//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/argohealth"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
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

// TestUnloadableModel applies, to a serving model, a ConfigMap whose model the runtime refuses (an
// SVMClassifier) and then one that is not ONNX at all: each is reported Ready=False/Degraded=True
// with the loader's message within 10 s of the apply, the previous revision keeps serving, no
// pod restarts, the status holds for the hold, and Argo CD's health check says Degraded.
//
// A URI source is not exercised here: the suite has no HTTPS model store the pods trust, so a
// download fails at the TLS handshake (a transient failure, exit code 1), never at the model.
// Its path — the first pod's exit code 78 and termination message — is the same for every
// source the operator cannot read, and envtest covers it (TestPredictionModelReportsAPodThatCannotLoadItsModel).
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
		{"an operator the runtime refuses", "svm-model", freightcastv1alpha1.ReasonUnsupportedModel, "SVMClassifier", onnxtest.SVM(12), "2"},
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
			for _, typ := range []string{freightcastv1alpha1.ConditionDegraded, freightcastv1alpha1.ConditionReady, freightcastv1alpha1.ConditionModelLoaded, freightcastv1alpha1.ConditionProgressing} {
				c := condition(m.Status.Conditions, typ)
				want := metav1.ConditionFalse
				if typ == freightcastv1alpha1.ConditionDegraded {
					want = metav1.ConditionTrue
				}
				if c == nil || c.Status != want || c.Reason != tc.reason || c.ObservedGeneration != m.Generation || !bytes.Contains([]byte(c.Message), []byte(tc.says)) {
					return fmt.Errorf("%s is %+v", typ, c)
				}
			}
			return nil
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
