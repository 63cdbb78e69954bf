//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// probeImage is hack/netprobe packed as an image (hack/cluster/cluster.sh imports it): client pods,
// and ephemeral containers inside data-plane pods, exec it to try connections from where a
// NetworkPolicy applies.
var probeImage string

const probeContainer = "probe"

// probeSecurityContext meets the restricted Pod Security Standard the test namespaces enforce.
func probeSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(int64(65532)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// startProbe runs a netprobe pod (by default `netprobe wait`, a client to exec into) and waits
// until it runs.
func startProbe(t testing.TB, ns, name string, labels map[string]string, args ...string) *corev1.Pod {
	t.Helper()
	if len(args) == 0 {
		args = []string{"wait"}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{
				Name: probeContainer, Image: probeImage, ImagePullPolicy: corev1.PullNever, Args: args,
				SecurityContext: probeSecurityContext(),
			}},
		},
	}
	if err := k8s.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "probe pod "+name+" running", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
			return fmt.Errorf("phase %s", pod.Status.Phase)
		}
		return nil
	})
	return pod
}

// attachProbe adds a netprobe ephemeral container to a running pod: it shares the pod's network
// namespace, so its connections carry the pod's address and meet the pod's NetworkPolicies, as a
// compromised process in that pod would.
func attachProbe(t testing.TB, pod *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: probeContainer, Image: probeImage, ImagePullPolicy: corev1.PullNever, Args: []string{"wait"},
			SecurityContext: probeSecurityContext(),
		},
	})
	if err := k8s.SubResource("ephemeralcontainers").Update(ctx, pod); err != nil {
		t.Fatalf("adding a probe to pod %s: %v", pod.Name, err)
	}
	eventually(t, time.Minute, "probe in pod "+pod.Name+" running", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		for _, s := range pod.Status.EphemeralContainerStatuses {
			if s.Name == probeContainer && s.State.Running != nil {
				return nil
			}
		}
		return fmt.Errorf("ephemeral container statuses %+v", pod.Status.EphemeralContainerStatuses)
	})
}

// runProbe execs netprobe in pod's probe container and returns its outcome ("ok", "refused",
// "timeout", "unreachable", "error") and its line; "exec-failed" when netprobe gave no line.
func runProbe(pod *corev1.Pod, args ...string) (outcome, line string) {
	out, _ := kubectl(append([]string{"exec", "-n", pod.Namespace, pod.Name, "-c", probeContainer, "--", "/netprobe"}, args...)...)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		word, _, _ := strings.Cut(l, " ")
		switch word {
		case "ok", "refused", "timeout", "unreachable", "error":
			return word, l
		}
	}
	return "exec-failed", strings.TrimSpace(out)
}

// expectProbe waits until netprobe in pod reports want (and, for "ok", a line containing each of
// contains). Policies reach the enforcer within seconds of a pod or policy change, hence the wait.
func expectProbe(t testing.TB, what, want string, pod *corev1.Pod, args []string, contains ...string) {
	t.Helper()
	eventually(t, time.Minute, what, func() error {
		got, line := runProbe(pod, args...)
		if got != want {
			return fmt.Errorf("netprobe %s from %s: %q, want %s", strings.Join(args, " "), pod.Name, line, want)
		}
		for _, c := range contains {
			if !strings.Contains(line, c) {
				return fmt.Errorf("netprobe %s from %s: %q does not contain %q", strings.Join(args, " "), pod.Name, line, c)
			}
		}
		return nil
	})
}

// runningPod returns a running pod of ns with labels.
func runningPod(t testing.TB, ns string, labels map[string]string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	eventually(t, 2*time.Minute, fmt.Sprintf("a running pod with %v", labels), func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			return err
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				found = p
				return nil
			}
		}
		return fmt.Errorf("%d pods, none running", len(pods.Items))
	})
	return found
}
