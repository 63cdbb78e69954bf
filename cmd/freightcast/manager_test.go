package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func TestParseManagerFlags(t *testing.T) {
	cases := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string
		check   func(*testing.T, managerConfig)
	}{
		"image from the environment": {
			env: map[string]string{"FREIGHTCAST_IMAGE": "r.example/freightcast:v1", "FREIGHTCAST_NATS_URL": "nats://n:4222"},
			check: func(t *testing.T, c managerConfig) {
				if c.Image != "r.example/freightcast:v1" || c.DefaultNATSURL != "nats://n:4222" || c.ImagePullPolicy != "IfNotPresent" {
					t.Errorf("config %+v", c)
				}
			},
		},
		"flags win over the environment": {
			args: []string{"--data-plane-image=flag/image:v2", "--data-plane-image-pull-policy=Never", "--leader-elect"},
			env:  map[string]string{"FREIGHTCAST_IMAGE": "env/image:v1"},
			check: func(t *testing.T, c managerConfig) {
				if c.Image != "flag/image:v2" || c.ImagePullPolicy != "Never" || !c.leaderElect {
					t.Errorf("config %+v", c)
				}
			},
		},
		"tracing off by default": {
			args: []string{"--data-plane-image=i"},
			check: func(t *testing.T, c managerConfig) {
				if c.OTLPEndpoint != "" || c.TraceSamplingRatio != 1 {
					t.Errorf("endpoint %q ratio %v, want none and 1", c.OTLPEndpoint, c.TraceSamplingRatio)
				}
			},
		},
		"tracing from the environment": {
			args: []string{"--data-plane-image=i"},
			env:  map[string]string{"FREIGHTCAST_OTLP_ENDPOINT": "http://otel:4318", "FREIGHTCAST_TRACE_SAMPLING_RATIO": "0.1"},
			check: func(t *testing.T, c managerConfig) {
				if c.OTLPEndpoint != "http://otel:4318" || c.TraceSamplingRatio != 0.1 {
					t.Errorf("endpoint %q ratio %v", c.OTLPEndpoint, c.TraceSamplingRatio)
				}
			},
		},
		"tracing flags": {
			args: []string{"--data-plane-image=i", "--otlp-endpoint=https://otel.example:4318", "--trace-sampling-ratio=0"},
			check: func(t *testing.T, c managerConfig) {
				if c.OTLPEndpoint != "https://otel.example:4318" || c.TraceSamplingRatio != 0 {
					t.Errorf("endpoint %q ratio %v", c.OTLPEndpoint, c.TraceSamplingRatio)
				}
			},
		},
		"NATS credentials and CA": {
			args: []string{"--data-plane-image=i", "--nats-creds-file=/etc/freightcast/nats/creds", "--nats-ca-file=/etc/freightcast/nats-ca/ca.crt"},
			check: func(t *testing.T, c managerConfig) {
				if c.natsCredentials.CredsFile != "/etc/freightcast/nats/creds" || c.natsCredentials.CAFile != "/etc/freightcast/nats-ca/ca.crt" {
					t.Errorf("NATS credentials %+v", c.natsCredentials)
				}
			},
		},
		"the queue's defaults and the NATS store": {
			args: []string{"--data-plane-image=i", "--default-queue-replicas=3", "--nats-max-file-store=9Gi", "--nats-servers=3", "--queue-deletion-timeout=2m"},
			check: func(t *testing.T, c managerConfig) {
				if c.DefaultQueueReplicas != 3 || c.NATSStore != (queue.StoreLimit{PerServer: 9 << 30, Servers: 3}) || c.QueueDeletionTimeout != 2*time.Minute {
					t.Errorf("replicas %d, store %+v, deletion timeout %s", c.DefaultQueueReplicas, c.NATSStore, c.QueueDeletionTimeout)
				}
			},
		},
		"even replicas":             {args: []string{"--data-plane-image=i", "--default-queue-replicas=2"}, wantErr: "1, 3 or 5"},
		"a store that is no size":   {args: []string{"--data-plane-image=i", "--nats-max-file-store=lots"}, wantErr: "positive quantity"},
		"two NATS identities":       {args: []string{"--data-plane-image=i", "--nats-creds-file=c", "--nats-user-file=u", "--nats-password-file=p"}, wantErr: "not several"},
		"ratio above 1":             {args: []string{"--data-plane-image=i", "--trace-sampling-ratio=1.5"}, wantErr: "from 0 to 1"},
		"ratio not a number":        {args: []string{"--data-plane-image=i", "--trace-sampling-ratio=NaN"}, wantErr: "from 0 to 1"},
		"endpoint without a scheme": {args: []string{"--data-plane-image=i", "--otlp-endpoint=otel:4317"}, wantErr: "http:// or https://"},
		"no image":                  {wantErr: "--data-plane-image"},
		"bad pull policy":           {args: []string{"--data-plane-image=i", "--data-plane-image-pull-policy=Sometimes"}, wantErr: "Always, IfNotPresent or Never"},
		"unknown flag":              {args: []string{"--data-plane-image=i", "--frobnicate"}, wantErr: "frobnicate"},
		"webhook without a namespace": {args: []string{"--data-plane-image=i"}, env: map[string]string{"FREIGHTCAST_NAMESPACE": ""},
			wantErr: "--webhook-namespace (or FREIGHTCAST_NAMESPACE) is required"},
		"webhook off needs no namespace": {args: []string{"--data-plane-image=i", "--webhook=false"}, env: map[string]string{"FREIGHTCAST_NAMESPACE": ""},
			check: func(t *testing.T, c managerConfig) {
				if c.webhook {
					t.Errorf("webhook on: %+v", c)
				}
			}},
		"webhook defaults": {args: []string{"--data-plane-image=i"},
			check: func(t *testing.T, c managerConfig) {
				w := c.webhookOpts
				if !c.webhook || w.Port != 9443 || w.Namespace != "freightcast-system" || w.Service != "freightcast-webhook" || w.SecretName != "freightcast-webhook-cert" ||
					w.WebhookConfiguration != "freightcast-validating-webhook" {
					t.Errorf("webhook options %+v", c.webhookOpts)
				}
			}},
		"short certificate lifetime": {args: []string{"--data-plane-image=i", "--webhook-cert-lifetime=10m"}, wantErr: "--webhook-cert-lifetime must be at least 1h"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"FREIGHTCAST_IMAGE", "FREIGHTCAST_NATS_URL", "FREIGHTCAST_IMAGE_PULL_POLICY",
				"FREIGHTCAST_OTLP_ENDPOINT", "FREIGHTCAST_TRACE_SAMPLING_RATIO"} {
				t.Setenv(k, tc.env[k])
			}
			ns, set := tc.env["FREIGHTCAST_NAMESPACE"]
			if !set {
				ns = "freightcast-system"
			}
			t.Setenv("FREIGHTCAST_NAMESPACE", ns)
			c, _, err := parseManagerFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestManagerRunsAgainstARealAPIServer runs `freightcast manager` as the binary would, against
// envtest: probes and metrics answer, the leader Lease is taken, and a cancel stops it cleanly.
func TestManagerRunsAgainstARealAPIServer(t *testing.T) {
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.CRDDirectory()}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	// The manager finds the cluster the way it does in a terminal: through KUBECONFIG.
	user, err := env.AddUser(envtest.User{Name: "freightcast-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// With the webhook (the default), every replica serves it with the certificate the
	// operator keeps in its Secret. (One manager per process: controller names are global, so
	// --webhook=false is covered by the flag table above and the controllers' suites, which run
	// managers without the webhook.)
	webhookAddr := freePort(t)
	_, port, _ := net.SplitHostPort(webhookAddr)
	runManagerUntilCancel(t, c, []string{"--webhook-namespace=default", "--webhook-port=" + port}, func(waitFor func(string, func() error)) {
		waitFor("the webhook serving the certificate of its Secret", func() error {
			s := &corev1.Secret{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "freightcast-webhook-cert"}, s); err != nil {
				return err
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(s.Data["ca.crt"]) {
				return fmt.Errorf("the Secret has no CA")
			}
			conn, err := tls.Dial("tcp", webhookAddr, &tls.Config{RootCAs: roots, ServerName: "freightcast-webhook.default.svc"})
			if err != nil {
				return err
			}
			return conn.Close()
		})
	})
}

// runManagerUntilCancel runs the manager with args (and the flags every run needs), waits for
// its probes, metrics and leader Lease, runs check, and cancels it.
func runManagerUntilCancel(t *testing.T, c client.Client, args []string, check func(waitFor func(string, func() error))) {
	metricsAddr, probeAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runManager(ctx, append([]string{"--data-plane-image=freightcast:test", "--leader-elect", "--leader-election-namespace=default",
			"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=" + probeAddr, "--zap-log-level=error"}, args...))
	}()

	get := func(url string) (int, string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	// waitFor stops waiting at once when the manager has exited: it would never come true then.
	waitFor := func(what string, check func() error) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, what, func() error {
			err := check()
			if err != nil {
				select {
				case err := <-done:
					t.Fatalf("manager exited early: %v", err)
				default:
				}
			}
			return err
		})
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		waitFor(p, func() error {
			code, body, err := get("http://" + probeAddr + p)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			return err
		})
	}
	waitFor("/metrics", func() error {
		code, body, err := get("http://" + metricsAddr + "/metrics")
		if err == nil && (code != http.StatusOK || !strings.Contains(body, "controller_runtime_")) {
			err = fmt.Errorf("status %d, %d bytes", code, len(body))
		}
		return err
	})
	waitFor("leader Lease", func() error {
		lease := &coordinationv1.Lease{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "freightcast-manager.freightcast.io"}, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	})
	if check != nil {
		check(waitFor)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("manager returned %v on cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop within 30s of cancel")
	}
}
