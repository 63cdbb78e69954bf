//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKubectlLogsExecPortForward uses the three commands a user reaches for first when a pod
// misbehaves, on a model-serving pod: each goes from the API server to the kubelet, which the API
// server must reach at the node's address (hack/cluster/cluster.sh: InternalIP first, and a kubelet
// serving certificate that covers it).
func TestKubectlLogsExecPortForward(t *testing.T) {
	ns := newNamespace(t, "kubectl")
	deployModel(t, ns)
	pod := runningPod(t, ns, map[string]string{"app.kubernetes.io/component": "predictor", "freightcast.io/model": "freight-delay-risk"})

	// exec: the image's one binary, run in the pod's container.
	version, err := kubectl("exec", "-n", ns, pod.Name, "--", "/freightcast", "version")
	if err != nil {
		t.Fatalf("kubectl exec: %v: %s", err, version)
	}
	version = strings.TrimSpace(version)
	if version == "" || strings.Contains(version, "\n") {
		t.Fatalf("kubectl exec freightcast version printed %q, want one line", version)
	}

	// logs: the server logs its version when it starts serving.
	logs, err := kubectl("logs", "-n", ns, pod.Name)
	if err != nil {
		t.Fatalf("kubectl logs: %v: %s", err, logs)
	}
	if !strings.Contains(logs, version) {
		t.Errorf("kubectl logs does not show the version %q the pod runs:\n%s", version, logs)
	}
	if out, err := kubectl("logs", "-n", systemNamespace, "deployment/"+managerName, "--tail", "5"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("kubectl logs of the manager: %v: %q", err, out)
	}

	// port-forward: OIP metadata through a local port to the pod's HTTP port.
	start := time.Now()
	local := portForward(t, ns, "pod/"+pod.Name, "8080")
	var meta struct {
		Name string `json:"name"`
	}
	eventually(t, 30*time.Second, "OIP model metadata through kubectl port-forward", func() error {
		resp, err := httpClient.Get("http://" + local + "/v2/models/freight-delay-risk")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return json.Unmarshal(body, &meta)
	})
	if meta.Name != "freight-delay-risk" {
		t.Errorf("model metadata through port-forward names %q", meta.Name)
	}
	timings.record("kubectl: port-forward started to first OIP answer", time.Since(start))
}

// portForward runs kubectl port-forward to target's port on a free local port until the test
// ends, and returns the local address.
func portForward(t testing.TB, ns, target, port string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, kubectlBin, "port-forward", "-n", ns, "--address", "127.0.0.1", target, ":"+port)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	// "Forwarding from 127.0.0.1:PORT -> 8080"
	forwarding := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) -> ` + port)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		close(found)
	}()
	select {
	case addr, ok := <-found:
		if !ok {
			t.Fatalf("kubectl port-forward exited: %s", stderr.String())
		}
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl port-forward printed no local port within 30s: %s", stderr.String())
	}
	return ""
}
