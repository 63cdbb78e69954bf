//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// TestNetworkPoliciesEnforced proves the NetworkPolicies the operator (and the chart) write on a
// cluster that enforces them (kube-router's firewall, hack/cluster/cluster.sh): clients outside
// spec.networkPolicy.from are refused by ingestion and by the model while clients inside are
// served, and a data-plane pod reaches DNS, NATS, its model's download host and nothing else.
// A refusal counts only as the enforcer's REJECT ("connection refused"), and each is paired with
// a probe that reaches the same destination from a pod the policies admit, so a destination that
// is simply down cannot pass for a policy.
func TestNetworkPoliciesEnforced(t *testing.T) {
	ns := newNamespace(t, "netpol")
	ctx := context.Background()
	allowed := map[string]string{"freightcast-e2e/client": "allowed"}
	from := `{"from":[{"podSelector":{"matchLabels":{"freightcast-e2e/client":"allowed"}}}]}`

	deployModel(t, ns)
	m := &freightcastv1alpha1.PredictionModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "freight-delay-risk"}}
	if err := k8s.Patch(ctx, m, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"networkPolicy":`+from+`}}`))); err != nil {
		t.Fatal(err)
	}
	applyYAML(t, ns, strings.Replace(pipelineYAML("guarded", 1, 1, "30s"), "spec:\n", "spec:\n  networkPolicy: "+from+"\n", 1))
	waitPipelineReady(t, ns, "guarded", 3*time.Minute)

	inside := startProbe(t, ns, "inside", allowed)
	outside := startProbe(t, ns, "outside", nil)

	request, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	event := `{"id":"netpol-1","features":{"distance_km":800,"mode_ocean":0,"mode_air":0,"mode_rail":0,"mode_road":1,"carrier_on_time_rate":0.9,"port_congestion_index":0.2,"weather_severity":0.1,"month_sin":0.5,"month_cos":0.8,"customs_complexity":0.1,"dwell_time_hours":10}}`
	svc := func(name string) string { return "http://" + name + "." + ns + ".svc.cluster.local:8080" }
	infer := []string{"http", "-X", "POST", "-H", "Content-Type: application/json", "-d", string(request),
		svc("freight-delay-risk-predictor") + "/v2/models/freight-delay-risk/infer"}
	events := []string{"http", "-X", "POST", "-H", "Content-Type: application/json", "-d", event, svc("guarded-ingest") + "/v1/events"}
	poolOIP := []string{"http", svc("guarded-inference") + "/v2/health/ready"}

	t.Run("ingress only from spec.networkPolicy.from", func(t *testing.T) {
		start := time.Now()
		expectProbe(t, "a pod outside from: the model refuses OIP", "refused", outside, infer)
		expectProbe(t, "a pod outside from: ingestion refuses events", "refused", outside, events)
		expectProbe(t, "a pod outside from: the inference pool's OIP port refuses", "refused", outside, poolOIP)
		timings.record("network policies: clients outside spec.networkPolicy.from refused", time.Since(start))
		expectProbe(t, "a pod inside from: the model answers OIP", "ok", inside, infer, "status 200", `"model_name":"freight-delay-risk"`)
		expectProbe(t, "a pod inside from: ingestion accepts events", "ok", inside, events, "status 202")
		expectProbe(t, "a pod inside from: the inference pool's OIP port answers", "ok", inside, poolOIP, "status 200")
		// A podSelector peer admits pods of the policy's own namespace only.
		elsewhere := startProbe(t, newNamespace(t, "netpol-elsewhere"), "same-labels", allowed)
		expectProbe(t, "a pod with the admitted labels in another namespace: refused", "refused", elsewhere, infer)
	})

	// Destinations no data-plane pod may reach: another namespace's Service (on the very port the
	// data plane serves) and the Kubernetes API server.
	other := newNamespace(t, "netpol-other")
	startProbe(t, other, "web", map[string]string{"app": "web"}, "serve", "8080")
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
	}}
	if err := k8s.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	otherService := "web." + other + ".svc.cluster.local:8080"
	apiServer := "kubernetes.default.svc.cluster.local:443"
	nats := "nats." + systemNamespace + ".svc.cluster.local:4222"
	// The pods the policies do not restrict reach both: the destinations are up.
	expectProbe(t, "an unrestricted pod reaches another namespace's Service", "ok", outside, []string{"dial", otherService})
	expectProbe(t, "an unrestricted pod reaches the API server", "ok", outside, []string{"dial", apiServer})

	// A host port for the download test below, and a port no policy names.
	nodeIP := os.Getenv("FREIGHTCAST_E2E_NODE_IP")
	if net.ParseIP(nodeIP) == nil {
		t.Fatalf("FREIGHTCAST_E2E_NODE_IP %q is not an address (make e2e sets it)", nodeIP)
	}
	store := newModelStore(t, nodeIP)

	t.Run("egress of an ingestion pod", func(t *testing.T) {
		pod := runningPod(t, ns, map[string]string{"app.kubernetes.io/component": "ingestion", "freightcast.io/pipeline": "guarded"})
		attachProbe(t, pod)
		expectProbe(t, "DNS", "ok", pod, []string{"lookup", "nats." + systemNamespace + ".svc.cluster.local"})
		expectProbe(t, "NATS", "ok", pod, []string{"dial", nats})
		expectProbe(t, "another namespace's Service", "refused", pod, []string{"dial", otherService})
		expectProbe(t, "the API server", "refused", pod, []string{"dial", apiServer})
		expectProbe(t, "a host port no policy names", "refused", pod, []string{"dial", store.addr})
	})

	t.Run("egress of a model serving pod", func(t *testing.T) {
		pod := runningPod(t, ns, map[string]string{"app.kubernetes.io/component": "predictor", "freightcast.io/model": "freight-delay-risk"})
		attachProbe(t, pod)
		expectProbe(t, "DNS", "ok", pod, []string{"lookup", "kubernetes.default.svc.cluster.local"})
		// Serving pods get no NATS rule: they never use the queue.
		expectProbe(t, "NATS", "refused", pod, []string{"dial", nats})
		expectProbe(t, "another namespace's Service", "refused", pod, []string{"dial", otherService})
		expectProbe(t, "the API server", "refused", pod, []string{"dial", apiServer})
		// This model comes from a ConfigMap: it has no download host to reach.
		expectProbe(t, "a host port no policy names", "refused", pod, []string{"dial", store.addr})
	})

	t.Run("the chart's NATS policy admits data-plane pods only", func(t *testing.T) {
		expectProbe(t, "a client pod that is not the data plane", "refused", inside, []string{"dial", nats})
	})

	t.Run("a downloaded model reaches its download host", func(t *testing.T) {
		// The same host port the pods above were refused: a model whose source.uri names it gets
		// an egress rule for it. The pod's download then fails at the TLS handshake (the pods trust
		// no test CA), which is after the connection this test waits for.
		model, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(model)
		applyYAML(t, ns, fmt.Sprintf(`apiVersion: freightcast.io/v1alpha1
kind: PredictionModel
metadata:
  name: downloaded
spec:
  source:
    uri: https://%s/freight-delay-risk.onnx
    sha256: %s
`, store.addr, hex.EncodeToString(sum[:])))
		took := eventually(t, 2*time.Minute, "a connection from a serving pod of the downloaded model", func() error {
			pods := &corev1.PodList{}
			if err := k8s.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"freightcast.io/model": "downloaded"}); err != nil {
				return err
			}
			for _, p := range pods.Items {
				if p.Status.PodIP != "" && store.seen(p.Status.PodIP) {
					return nil
				}
			}
			return fmt.Errorf("%d pods; connections seen from %v", len(pods.Items), store.peers())
		})
		timings.record("network policies: a downloaded model's pod reaches its download host", took)
	})
}

// modelStore is a TCP listener on this machine's node address standing in for a model store:
// it records who connected and hangs up.
type modelStore struct {
	addr     string
	accepted chan string
	from     map[string]bool
}

func newModelStore(t testing.TB, nodeIP string) *modelStore {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &modelStore{addr: net.JoinHostPort(nodeIP, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)),
		accepted: make(chan string, 64), from: map[string]bool{}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			conn.Close()
			select {
			case s.accepted <- host:
			default:
			}
		}
	}()
	return s
}

// seen reports whether ip has connected (draining what arrived since the last call).
func (s *modelStore) seen(ip string) bool {
	for {
		select {
		case host := <-s.accepted:
			s.from[host] = true
		default:
			return s.from[ip]
		}
	}
}

func (s *modelStore) peers() []string {
	var out []string
	for h := range s.from {
		out = append(out, h)
	}
	return out
}
