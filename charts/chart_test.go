// Package charts holds the tests of the Helm chart in charts/freightcast: what `helm template`
// renders with the value sets users choose, and that the kustomize install (dist/install.yaml)
// is the same install as the chart's defaults.
package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/freightcast/freightcast/controllers"
	"github.com/freightcast/freightcast/controllers/webhook"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/natsauth"
	"github.com/freightcast/freightcast/internal/testing/helmtest"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

const (
	release   = "freightcast"
	namespace = "freightcast-system"
)

// allOn turns on every optional part of the chart.
var allOn = []string{
	"--set", "nats.replicas=3",
	"--set", "monitoring.serviceMonitor.enabled=true",
	"--set", "monitoring.podMonitor.enabled=true",
	"--set", "monitoring.prometheusRule.enabled=true",
	"--set", "monitoring.dashboard.enabled=true",
	"--set", "networkPolicy.enabled=true",
}

func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	return helmtest.Render(t, release, namespace, args...)
}

// as converts a rendered object into its typed form.
func as[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	u := helmtest.Find(objs, kind, name)
	if u == nil {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	k := map[string]int{}
	for _, o := range objs {
		k[o.GetKind()]++
	}
	return k
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkRestricted fails unless the pod template meets the restricted Pod Security Standard.
func checkRestricted(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v is not restricted", what, psc)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s container %s: securityContext %+v is not restricted", what, c.Name, sc)
		}
		if sc != nil && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s container %s: root filesystem is writable", what, c.Name)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("%s container %s: liveness and readiness probes are required", what, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s container %s: resources %+v lack CPU and memory requests or a memory limit", what, c.Name, c.Resources)
		}
	}
}

func TestDefaults(t *testing.T) {
	objs := render(t)
	got := kinds(objs)
	want := map[string]int{
		"CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 1,
		"Role": 2, "RoleBinding": 2, "Deployment": 1, "Service": 4, "ConfigMap": 1, "StatefulSet": 1,
		"ValidatingWebhookConfiguration": 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kinds rendered (-want +got):\n%s", diff)
	}

	// The CRDs are kept on uninstall.
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep", o.GetName())
		}
	}

	// The manager: one image for operator and data plane, the chart's NATS, leader election.
	d := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager")
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "freightcast:0.1.0" || env(c, "FREIGHTCAST_IMAGE") != c.Image {
		t.Errorf("image %q, FREIGHTCAST_IMAGE %q: want both freightcast:<appVersion>", c.Image, env(c, "FREIGHTCAST_IMAGE"))
	}
	if u := env(c, "FREIGHTCAST_NATS_URL"); u != "nats://nats.freightcast-system.svc:4222" {
		t.Errorf("FREIGHTCAST_NATS_URL = %q", u)
	}
	// The default NATS: one server of 9 GiB (90 % of its 10Gi claim), R1 streams.
	if want := []string{"manager", "--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
		"--default-queue-replicas=1", "--nats-max-file-store=9663676416", "--nats-servers=1",
		"--webhook-service=freightcast-webhook", "--webhook-secret=freightcast-webhook-cert", "--webhook-configuration=freightcast-validating-webhook"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.ServiceAccountName != "freightcast-manager" {
		t.Errorf("replicas %d, serviceAccountName %q", *d.Spec.Replicas, d.Spec.Template.Spec.ServiceAccountName)
	}
	checkRestricted(t, "manager", d.Spec.Template.Spec)

	// NATS: args only (the e2e suite swaps in an image whose entrypoint is nats-server), restricted.
	sts := as[appsv1.StatefulSet](t, objs, "StatefulSet", "nats")
	nc := sts.Spec.Template.Spec.Containers[0]
	if len(nc.Command) != 0 || !slices.Equal(nc.Args, []string{"--config", "/etc/nats/nats.conf"}) {
		t.Errorf("nats command %q args %q: want args only", nc.Command, nc.Args)
	}
	if *sts.Spec.Replicas != 1 || sts.Spec.ServiceName != "nats-headless" {
		t.Errorf("nats replicas %d serviceName %q", *sts.Spec.Replicas, sts.Spec.ServiceName)
	}
	if q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage(); q.String() != "10Gi" {
		t.Errorf("nats storage %s", q)
	}
	checkRestricted(t, "nats", sts.Spec.Template.Spec)
	svc := as[corev1.Service](t, objs, "Service", "nats")
	if svc.Spec.Ports[0].Port != 4222 || !cmp.Equal(svc.Spec.Selector, sts.Spec.Selector.MatchLabels) {
		t.Errorf("Service nats: ports %+v selector %v", svc.Spec.Ports, svc.Spec.Selector)
	}
	if h := as[corev1.Service](t, objs, "Service", "nats-headless"); h.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("nats-headless clusterIP %q", h.Spec.ClusterIP)
	}
	conf := as[corev1.ConfigMap](t, objs, "ConfigMap", "nats-config").Data["nats.conf"]
	opts := loadNATSConfig(t, conf)
	if !opts.JetStream || opts.HTTPPort != 8222 || opts.Port != 4222 || opts.Cluster.Port != 0 {
		t.Errorf("nats.conf: jetstream %v http %d port %d cluster port %d", opts.JetStream, opts.HTTPPort, opts.Port, opts.Cluster.Port)
	}
	// The store is 90 % of the claim: 12 pipelines of 3 × 256 MiB at the defaults.
	if opts.JetStreamMaxStore != 9<<30 || opts.SyncAlways || opts.TrustedOperators != nil || opts.TLSConfig != nil {
		t.Errorf("nats.conf: max_file_store %d (want 9 GiB), sync always %v, operators %v, TLS %v",
			opts.JetStreamMaxStore, opts.SyncAlways, opts.TrustedOperators, opts.TLSConfig != nil)
	}

	// Least privilege: the generated rules exactly, and no Secret is read but the webhook's
	// certificate, by name.
	role := as[rbacv1.ClusterRole](t, objs, "ClusterRole", "freightcast-manager")
	if diff := cmp.Diff(generatedRules(t), role.Rules); diff != "" {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml (-want +got):\n%s", diff)
	}
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
			if o.GetName() == "freightcast-webhook-cert" && o.GetKind() == "Role" {
				continue // checked below
			}
			if slices.Contains(res, "secrets") || slices.Contains(res, "*") {
				t.Errorf("%s %s grants %v", o.GetKind(), o.GetName(), res)
			}
		}
	}
}

// checkWebhook checks the webhook's objects of a release freightcast in freightcast-system.
func checkWebhook(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"freightcast-webhook-cert"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	}
	if diff := cmp.Diff(wantRules, as[rbacv1.Role](t, objs, "Role", "freightcast-webhook-cert").Rules); diff != "" {
		t.Errorf("the webhook certificate's Role (-want +got):\n%s", diff)
	}
	vwc := as[admissionregistrationv1.ValidatingWebhookConfiguration](t, objs, "ValidatingWebhookConfiguration", "freightcast-validating-webhook")
	w := vwc.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.TimeoutSeconds != 5 ||
		!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) || len(w.ClientConfig.CABundle) != 0 {
		t.Errorf("webhook %+v", w)
	}
	if s := w.ClientConfig.Service; s == nil || s.Name != "freightcast-webhook" || s.Namespace != namespace || *s.Path != webhook.ValidatePath {
		t.Errorf("webhook clientConfig %+v", w.ClientConfig)
	}
	svc := as[corev1.Service](t, objs, "Service", "freightcast-webhook")
	d := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager")
	if !cmp.Equal(svc.Spec.Selector, d.Spec.Selector.MatchLabels) || svc.Spec.Ports[0].TargetPort.StrVal != "webhook" {
		t.Errorf("Service freightcast-webhook: %+v", svc.Spec)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "webhook" && p.ContainerPort == 9443 }) ||
		!slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "FREIGHTCAST_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
		}) {
		t.Errorf("manager ports %+v env %+v", c.Ports, c.Env)
	}
}

func TestWebhook(t *testing.T) {
	checkWebhook(t, render(t))
	off := render(t, "--set", "webhook.enabled=false")
	for _, o := range off {
		if strings.Contains(o.GetName(), "webhook") {
			t.Errorf("webhook off renders %s %s", o.GetKind(), o.GetName())
		}
	}
	c := as[appsv1.Deployment](t, off, "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--webhook=false") || env(c, "FREIGHTCAST_NAMESPACE") != "" {
		t.Errorf("webhook off: args %q", c.Args)
	}
	lifetime := as[appsv1.Deployment](t, render(t, "--set", "webhook.certLifetime=720h"), "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0]
	if !slices.Contains(lifetime.Args, "--webhook-cert-lifetime=720h") {
		t.Errorf("certLifetime: args %q", lifetime.Args)
	}
}

// loadNATSConfig parses nats.conf with nats-server's own parser.
func loadNATSConfig(t *testing.T, conf string) *server.Options {
	t.Helper()
	t.Setenv("POD_NAME", "nats-0")
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats.conf does not parse: %v\n%s", err, conf)
	}
	if opts.ServerName != "nats-0" {
		t.Errorf("server_name %q, want the pod name", opts.ServerName)
	}
	return opts
}

func generatedRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(helmtest.Root(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	return role.Rules
}

func TestExternalNATS(t *testing.T) {
	objs := render(t, "--set", "nats.enabled=false", "--set", "nats.url=nats://nats.messaging.svc:4223", "--set", "networkPolicy.enabled=true")
	for _, kind := range []string{"StatefulSet", "ConfigMap"} {
		if n := kinds(objs)[kind]; n != 0 {
			t.Errorf("%d %s rendered with an external NATS", n, kind)
		}
	}
	if helmtest.Find(objs, "Service", "nats") != nil || helmtest.Find(objs, "NetworkPolicy", "nats") != nil {
		t.Error("NATS Service or NetworkPolicy rendered with an external NATS")
	}
	d := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager")
	if u := env(d.Spec.Template.Spec.Containers[0], "FREIGHTCAST_NATS_URL"); u != "nats://nats.messaging.svc:4223" {
		t.Errorf("FREIGHTCAST_NATS_URL = %q", u)
	}
	// The operator may reach the external server's port.
	np := as[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "freightcast-manager")
	if !egressPort(np, 4223) {
		t.Errorf("operator egress %+v lacks port 4223", np.Spec.Egress)
	}

	// Without a URL there is no NATS server at all: refused, with a reason.
	if _, err := helmtest.Template(t, release, namespace, "--set", "nats.enabled=false"); err == nil || !strings.Contains(err.Error(), "nats/url") && !strings.Contains(err.Error(), "nats.url") {
		t.Errorf("nats.enabled=false without nats.url: err %v, want one naming nats.url", err)
	}
}

func egressPort(np *networkingv1.NetworkPolicy, port int32) bool {
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntVal == port {
				return true
			}
		}
	}
	return false
}

func TestNATSCluster(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d servers", n), func(t *testing.T) {
			objs := render(t, "--set", fmt.Sprintf("nats.replicas=%d", n), "--set", "nats.storage.className=fast", "--set", "nats.storage.size=50Gi")
			sts := as[appsv1.StatefulSet](t, objs, "StatefulSet", "nats")
			if int(*sts.Spec.Replicas) != n || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("replicas %d podManagementPolicy %q", *sts.Spec.Replicas, sts.Spec.PodManagementPolicy)
			}
			pvc := sts.Spec.VolumeClaimTemplates[0].Spec
			if pvc.StorageClassName == nil || *pvc.StorageClassName != "fast" || pvc.Resources.Requests.Storage().String() != "50Gi" {
				t.Errorf("claim template %+v", pvc)
			}
			opts := loadNATSConfig(t, as[corev1.ConfigMap](t, objs, "ConfigMap", "nats-config").Data["nats.conf"])
			if opts.Cluster.Port != 6222 || opts.Cluster.Name != "freightcast" || !opts.JetStream || opts.JetStreamMaxStore != 45<<30 {
				t.Errorf("cluster %+v jetstream %v max_file_store %d", opts.Cluster, opts.JetStream, opts.JetStreamMaxStore)
			}
			var routes, want []string
			for _, r := range opts.Routes {
				routes = append(routes, r.String())
			}
			for i := range n {
				want = append(want, fmt.Sprintf("nats://nats-%d.nats-headless.freightcast-system.svc:6222", i))
			}
			if diff := cmp.Diff(want, routes); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if helmtest.Find(objs, "PodDisruptionBudget", "nats") == nil {
				t.Errorf("no PodDisruptionBudget for a %d-server cluster", n)
			}
			// Pipelines' streams default to as many replicas as there are servers.
			args := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{fmt.Sprintf("--default-queue-replicas=%d", n), fmt.Sprintf("--nats-servers=%d", n)} {
				if !slices.Contains(args, want) {
					t.Errorf("manager args %q lack %s", args, want)
				}
			}
			// A configuration change rolls the servers.
			one := as[appsv1.StatefulSet](t, render(t), "StatefulSet", "nats")
			if a, b := one.Spec.Template.Annotations["freightcast.io/config-digest"], sts.Spec.Template.Annotations["freightcast.io/config-digest"]; a == "" || a == b {
				t.Errorf("config digests %q (1 server) and %q (%d servers): want different", a, b, n)
			}
		})
	}
	if _, err := helmtest.Template(t, release, namespace, "--set", "nats.replicas=2"); err == nil {
		t.Error("an even number of servers was accepted")
	}
}

func TestNATSStore(t *testing.T) {
	cases := map[string]struct {
		args []string
		want int64
	}{
		"90 % of the claim":   {args: []string{"--set", "nats.storage.size=20Gi"}, want: 18 << 30},
		"in Mi":               {args: []string{"--set", "nats.storage.size=500Mi"}, want: 450 << 20},
		"given outright":      {args: []string{"--set", "nats.storage.size=10Gi", "--set", "nats.storage.maxFileStore=9Gi"}, want: 9 << 30},
		"a terabyte, no less": {args: []string{"--set", "nats.storage.size=2Ti"}, want: (2 << 40) * 9 / 10},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := render(t, tc.args...)
			opts := loadNATSConfig(t, as[corev1.ConfigMap](t, objs, "ConfigMap", "nats-config").Data["nats.conf"])
			if opts.JetStreamMaxStore != tc.want {
				t.Errorf("max_file_store %d, want %d", opts.JetStreamMaxStore, tc.want)
			}
			// The operator is told the same number: the servers do not tell clients.
			args := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0].Args
			if want := fmt.Sprintf("--nats-max-file-store=%d", tc.want); !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		})
	}
	for _, size := range []string{"10G", "1.5Gi", "10"} {
		if _, err := helmtest.Template(t, release, namespace, "--set", "nats.storage.size="+size); err == nil {
			t.Errorf("storage size %q accepted: the chart cannot compute max_file_store from it", size)
		}
	}
	opts := loadNATSConfig(t, as[corev1.ConfigMap](t, render(t, "--set", "nats.syncAlways=true"), "ConfigMap", "nats-config").Data["nats.conf"])
	if !opts.SyncAlways {
		t.Error("nats.syncAlways=true: the servers do not sync every write")
	}
}

// TestNATSAuthAndTLS: the servers trust the operator of `freightcast nats-auth init` and serve
// TLS; the manager connects with its credentials and the CA, from mounted Secrets.
func TestNATSAuthAndTLS(t *testing.T) {
	keys, err := natsauth.New(16 << 30)
	if err != nil {
		t.Fatal(err)
	}
	authConf := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(authConf, []byte(keys.ServerConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := render(t, "--set", "nats.auth.enabled=true", "--set-file", "nats.auth.config="+authConf,
		"--set", "nats.tls.enabled=true", "--set", "nats.tls.secretName=nats-tls")
	conf := as[corev1.ConfigMap](t, objs, "ConfigMap", "nats-config").Data["nats.conf"]
	// The TLS files are only there in the pod; nats-server reads them while parsing.
	crt, key := testcerts.NewCA(t).WriteFiles(t, t.TempDir(), "nats")
	conf = strings.NewReplacer("/etc/nats-tls/tls.crt", crt, "/etc/nats-tls/tls.key", key).Replace(conf)
	opts := loadNATSConfig(t, conf)
	if len(opts.TrustedOperators) != 1 || opts.TrustedOperators[0].Subject != keys.Operator.Public || opts.SystemAccount != keys.System.Public {
		t.Errorf("nats.conf trusts %v with system account %q, want the operator %s", opts.TrustedOperators, opts.SystemAccount, keys.Operator.Public)
	}
	if opts.TLSConfig == nil {
		t.Error("nats.conf serves no TLS")
	}
	sts := as[appsv1.StatefulSet](t, objs, "StatefulSet", "nats")
	if !slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "nats-tls" }) {
		t.Error("the servers do not mount the TLS Secret")
	}

	d := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager")
	c := d.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--nats-creds-file=/etc/freightcast/nats/creds", "--nats-ca-file=/etc/freightcast/nats-ca/ca.crt"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %q lack %s", c.Args, arg)
		}
	}
	secrets := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if want := map[string]string{"nats-creds": "freightcast-nats", "nats-ca": "nats-tls"}; !cmp.Equal(secrets, want) {
		t.Errorf("manager Secret volumes %v, want %v", secrets, want)
	}
	checkRestricted(t, "manager", d.Spec.Template.Spec)
	if _, err := helmtest.Template(t, release, namespace, "--set", "nats.tls.enabled=true"); err == nil || !strings.Contains(err.Error(), "nats.tls.secretName") {
		t.Errorf("TLS without a Secret: err %v, want one naming nats.tls.secretName", err)
	}
}

func TestCRDsOptional(t *testing.T) {
	if n := kinds(render(t, "--set", "crds.install=false"))["CustomResourceDefinition"]; n != 0 {
		t.Errorf("%d CRDs rendered with crds.install=false", n)
	}
	for _, o := range render(t, "--set", "crds.keep=false") {
		if _, ok := o.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("%s %s keeps itself with crds.keep=false", o.GetKind(), o.GetName())
		}
	}
}

func TestImageDigestAndSettings(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs := render(t, "--set", "image.repository=registry.example/freightcast", "--set", "image.digest="+digest,
		"--set", "image.pullPolicy=Always", "--set", "manager.stuckPodThreshold=2m", "--set", "manager.logLevel=debug",
		"--set", "replicaCount=1", "--set", "manager.leaderElection=false")
	c := as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0]
	if want := "registry.example/freightcast@" + digest; c.Image != want || env(c, "FREIGHTCAST_IMAGE") != want {
		t.Errorf("image %q FREIGHTCAST_IMAGE %q, want %q", c.Image, env(c, "FREIGHTCAST_IMAGE"), want)
	}
	if env(c, "FREIGHTCAST_IMAGE_PULL_POLICY") != "Always" {
		t.Errorf("FREIGHTCAST_IMAGE_PULL_POLICY %q", env(c, "FREIGHTCAST_IMAGE_PULL_POLICY"))
	}
	want := []string{"manager", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
		"--default-queue-replicas=1", "--nats-max-file-store=9663676416", "--nats-servers=1", "--stuck-pod-threshold=2m", "--zap-log-level=debug",
		"--webhook-service=freightcast-webhook", "--webhook-secret=freightcast-webhook-cert", "--webhook-configuration=freightcast-validating-webhook"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
}

func TestTracing(t *testing.T) {
	c := as[appsv1.Deployment](t, render(t), "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0]
	if env(c, "FREIGHTCAST_OTLP_ENDPOINT") != "" {
		t.Errorf("tracing is on by default: FREIGHTCAST_OTLP_ENDPOINT %q", env(c, "FREIGHTCAST_OTLP_ENDPOINT"))
	}
	objs := render(t, "--set", "tracing.otlpEndpoint=http://otel-collector.observability.svc:4318", "--set", "tracing.samplingRatio=0.25")
	c = as[appsv1.Deployment](t, objs, "Deployment", "freightcast-manager").Spec.Template.Spec.Containers[0]
	if env(c, "FREIGHTCAST_OTLP_ENDPOINT") != "http://otel-collector.observability.svc:4318" || env(c, "FREIGHTCAST_TRACE_SAMPLING_RATIO") != "0.25" {
		t.Errorf("tracing env: endpoint %q, ratio %q", env(c, "FREIGHTCAST_OTLP_ENDPOINT"), env(c, "FREIGHTCAST_TRACE_SAMPLING_RATIO"))
	}
}

func TestSchemaIsStrict(t *testing.T) {
	cases := map[string][]string{
		"unknown top-level key":   {"--set", "replicas=2"},
		"unknown nested key":      {"--set", "nats.size=1Gi"},
		"nats replicas 2":         {"--set", "nats.replicas=2"},
		"bad pull policy":         {"--set", "image.pullPolicy=Sometimes"},
		"bad duration":            {"--set", "manager.queueStallGrace=soon"},
		"bad storage size":        {"--set", "nats.storage.size=big"},
		"bad nats url":            {"--set", "nats.enabled=false", "--set", "nats.url=http://nats:4222"},
		"error ratio above 1":     {"--set", "monitoring.prometheusRule.errorRatio=2"},
		"bad log level":           {"--set", "manager.logLevel=verbose"},
		"non-sha256 digest":       {"--set", "image.digest=latest"},
		"no API server port":      {"--set-json", "networkPolicy.apiServer.ports=[]"},
		"string for a boolean":    {"--set-string", "crds.install=yes"},
		"negative replica count":  {"--set", "replicaCount=-1"},
		"otlp endpoint not a URL": {"--set", "tracing.otlpEndpoint=collector:4318"},
		"sampling ratio above 1":  {"--set", "tracing.samplingRatio=1.5"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := helmtest.Template(t, release, namespace, args...); err == nil {
				t.Errorf("helm template %q succeeded, want a schema error", args)
			}
		})
	}
}

func TestMonitoring(t *testing.T) {
	objs := render(t, allOn...)
	for _, name := range []string{"ServiceMonitor/freightcast-manager", "PodMonitor/freightcast-data-plane", "PrometheusRule/freightcast", "ConfigMap/freightcast-dashboard"} {
		kind, n, _ := strings.Cut(name, "/")
		if helmtest.Find(objs, kind, n) == nil {
			t.Errorf("no %s", name)
		}
	}
	sm := helmtest.Find(objs, "ServiceMonitor", "freightcast-manager")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if ep := endpoints[0].(map[string]any); ep["port"] != "metrics" || ep["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v, want port metrics with honorLabels (the series name their own namespace)", endpoints)
	}
	svc := as[corev1.Service](t, objs, "Service", "freightcast-manager-metrics")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the metrics Service has %v", k, v, svc.Labels)
		}
	}

	rule := helmtest.Find(objs, "PrometheusRule", "freightcast")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var alerts []string
	var exprs strings.Builder
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			alerts = append(alerts, r.(map[string]any)["alert"].(string))
			exprs.WriteString(r.(map[string]any)["expr"].(string) + "\n")
		}
	}
	wantAlerts := []string{"FreightcastPipelineDegraded", "FreightcastModelDegraded", "FreightcastQueueLagGrowing",
		"FreightcastInferenceErrorRatio", "FreightcastWorkerFailureRatio", "FreightcastModelRolledBack"}
	if diff := cmp.Diff(wantAlerts, alerts); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	checkMetricNames(t, "PrometheusRule", exprs.String())

	cm := as[corev1.ConfigMap](t, objs, "ConfigMap", "freightcast-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard labels %v lack the Grafana sidecar's", cm.Labels)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title, Type, Repeat string
			Targets             []struct{ Expr, Format string }
		}
	}
	if err := json.Unmarshal([]byte(cm.Data["freightcast.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var dexprs strings.Builder
	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		for _, tg := range p.Targets {
			dexprs.WriteString(tg.Expr + "\n")
		}
	}
	for _, want := range []string{"Queue depth vs inference replicas", "Ingestion rate", "Prediction latency", "Errors",
		"Prediction distribution", "Predicted values"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("dashboard lacks a %q panel (panels: %q)", want, titles)
		}
	}
	checkMetricNames(t, "dashboard", dexprs.String())
	// The distribution of predictions: a heatmap of the histogram's buckets, one per pipeline.
	for _, p := range dash.Panels {
		if !strings.HasPrefix(p.Title, "Prediction distribution") {
			continue
		}
		if p.Type != "heatmap" || p.Repeat != "pipeline" || len(p.Targets) != 1 || p.Targets[0].Format != "heatmap" ||
			!strings.Contains(p.Targets[0].Expr, "sum by (le) (increase(freightcast_worker_prediction_value_bucket{") ||
			!strings.Contains(p.Targets[0].Expr, `pipeline=~"$pipeline"`) {
			t.Errorf("prediction distribution panel %+v, want a heatmap of the buckets repeated per pipeline", p)
		}
	}

	// The reporting pod's metrics are on its port "metrics": its "http" port is the report API,
	// which admits only the ingestion pods, so the scraper must not target it there.
	pm := helmtest.Find(objs, "PodMonitor", "freightcast-data-plane")
	pmEndpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(pmEndpoints) != 2 {
		t.Fatalf("PodMonitor endpoints %v, want http and metrics", pmEndpoints)
	}
	httpEP, metricsEP := pmEndpoints[0].(map[string]any), pmEndpoints[1].(map[string]any)
	relabel, _, _ := unstructured.NestedSlice(httpEP, "relabelings")
	if httpEP["port"] != "http" || metricsEP["port"] != "metrics" || metricsEP["path"] != "/metrics" || len(relabel) != 1 ||
		relabel[0].(map[string]any)["action"] != "drop" || relabel[0].(map[string]any)["regex"] != "reporting" {
		t.Errorf("PodMonitor endpoints %v, want http without the reporting pods, and metrics", pmEndpoints)
	}
}

// checkMetricNames fails for every freightcast_ metric a query names that Freightcast does not export.
func checkMetricNames(t *testing.T, where, queries string) {
	t.Helper()
	known := exportedMetrics(t)
	for _, name := range regexp.MustCompile(`freightcast_[a-z0-9_]+`).FindAllString(queries, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			t.Errorf("%s queries %s, which no Freightcast process exports", where, name)
		}
	}
}

// exportedMetrics names every metric of the operator and the data plane, from their descriptors.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	var errs []error
	_, err := metrics.NewAutoscaling(reg)
	errs = append(errs, err)
	_, err = metrics.NewModels(reg)
	errs = append(errs, err)
	// The condition gauges are the operator's collector, reading its cache at each scrape.
	errs = append(errs, reg.Register(controllers.NewConditionCollector(nil)))
	_, err = metrics.NewInference(reg)
	errs = append(errs, err)
	_, err = metrics.NewIngest(reg)
	errs = append(errs, err)
	_, err = metrics.NewWorker(reg)
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	descs := make(chan *prometheus.Desc, 1000)
	reg.Describe(descs)
	close(descs)
	known := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	if len(known) < 10 {
		t.Fatalf("only %d metrics described", len(known))
	}
	return known
}

func TestNetworkPolicies(t *testing.T) {
	objs := render(t, allOn...)
	op := as[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "freightcast-manager")
	for _, port := range []int32{443, 6443, 53, 4222} {
		if !egressPort(op, port) {
			t.Errorf("operator egress lacks port %d", port)
		}
	}
	// Metrics from the cluster's pods; the webhook from any source (the API server's address
	// depends on the cluster: networkPolicy.webhookFrom narrows it).
	if len(op.Spec.Ingress) != 2 || op.Spec.Ingress[0].Ports[0].Port.IntVal != 8080 || op.Spec.Ingress[1].Ports[0].Port.IntVal != 9443 || len(op.Spec.Ingress[1].From) != 0 {
		t.Errorf("operator ingress %+v, want metrics and the webhook only", op.Spec.Ingress)
	}
	nats := as[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "nats")
	var clients []networkingv1.NetworkPolicyPeer
	for _, r := range nats.Spec.Ingress {
		if r.Ports[0].Port.IntVal == 4222 {
			clients = r.From
		}
	}
	if len(clients) != 2 {
		t.Fatalf("NATS admits clients from %+v, want the operator and the data plane", clients)
	}
	if clients[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "manager" || clients[0].NamespaceSelector != nil {
		t.Errorf("first NATS client peer %+v, want the operator's pods", clients[0])
	}
	dp := clients[1]
	if dp.NamespaceSelector == nil || len(dp.PodSelector.MatchExpressions) != 2 ||
		!slices.Equal(dp.PodSelector.MatchExpressions[1].Values, []string{"ingestion", "inference", "reporting"}) {
		t.Errorf("second NATS client peer %+v, want ingestion, inference and reporting pods of every namespace", dp)
	}
}

// The chart's copies of the generated CRDs and ClusterRole are the generated files (make manifests
// writes them; make verify also checks).
func TestChartFilesAreGenerated(t *testing.T) {
	pairs := map[string]string{"config/rbac/role.yaml": "charts/freightcast/files/role.yaml"}
	crds, _ := filepath.Glob(filepath.Join(helmtest.Root(), "config", "crd", "bases", "*.yaml"))
	for _, c := range crds {
		pairs["config/crd/bases/"+filepath.Base(c)] = "charts/freightcast/files/crds/" + filepath.Base(c)
	}
	copies, _ := filepath.Glob(filepath.Join(helmtest.ChartDir(), "files", "crds", "*.yaml"))
	if len(copies) != len(crds) || len(crds) == 0 {
		t.Errorf("%d CRDs in config/crd/bases, %d in the chart", len(crds), len(copies))
	}
	for src, dst := range pairs {
		a, errA := os.ReadFile(filepath.Join(helmtest.Root(), src))
		b, errB := os.ReadFile(filepath.Join(helmtest.Root(), dst))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s (%v, %v): run make manifests", dst, src, errA, errB)
		}
	}
}
