package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/controllers"
	"github.com/freightcast/freightcast/controllers/webhook"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/version"
)

// managerScheme holds every kind the operator reads or writes.
func managerScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(freightcastv1alpha1.AddToScheme(s))
	// HTTPRoutes are only watched and written when the cluster serves them.
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

// managerConfig is the operator's command line.
type managerConfig struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	leaderElectionNS       string
	controllers.Options
	pullPolicy    string
	samplingRatio string
	natsMaxStore  string
	// natsCredentials are the operator's own NATS credentials and CA: files of Secrets mounted
	// into its pod.
	natsCredentials queue.Credentials
	// webhook serves the FreightPipeline validating webhook (and manages its certificate).
	webhook     bool
	webhookOpts webhook.Options
}

func parseManagerFlags(args []string) (managerConfig, *zap.Options, error) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var c managerConfig
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.BoolVar(&c.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles at a time")
	fs.StringVar(&c.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	fs.StringVar(&c.Image, "data-plane-image", envOr("FREIGHTCAST_IMAGE", ""), "image of the data-plane pods; the operator's own image (env FREIGHTCAST_IMAGE)")
	fs.StringVar(&c.pullPolicy, "data-plane-image-pull-policy", envOr("FREIGHTCAST_IMAGE_PULL_POLICY", string(corev1.PullIfNotPresent)), "imagePullPolicy of data-plane containers (env FREIGHTCAST_IMAGE_PULL_POLICY)")
	fs.StringVar(&c.DefaultNATSURL, "default-nats-url", envOr("FREIGHTCAST_NATS_URL", ""), "NATS server for pipelines that do not set spec.queue.url (env FREIGHTCAST_NATS_URL)")
	fs.IntVar(&c.DefaultQueueReplicas, "default-queue-replicas", 1, "replicas (1, 3 or 5) of the streams of pipelines that do not set spec.queue.replicas; the chart sets it from its NATS cluster size")
	fs.StringVar(&c.natsMaxStore, "nats-max-file-store", "", "each default NATS server's JetStream store (max_file_store, e.g. 9Gi), which the servers do not tell clients: pipelines that do not fit are refused with the numbers before anything is created, and the capacity metrics count it (the chart sets it)")
	fs.IntVar(&c.NATSStore.Servers, "nats-servers", 1, "how many servers the default NATS has, with --nats-max-file-store")
	fs.DurationVar(&c.QueueDeletionTimeout, "queue-deletion-timeout", 10*time.Minute, "how long deleting a pipeline retries a NATS that fails to delete its streams before it lets the pipeline go and leaves the streams on NATS (pending events are waited for without a bound)")
	fs.DurationVar(&c.QueueStallGrace, "queue-stall-grace", 30*time.Second, "how long (beyond two poll intervals) a backlog may wait with no ready inference pod before the pipeline reports Degraded=True QueueStalled")
	fs.DurationVar(&c.StuckPodThreshold, "stuck-pod-threshold", 5*time.Minute, "how long a serving or inference pod may crash-loop, or stay unready beside ready siblings, before it is deleted to be rescheduled")
	fs.DurationVar(&c.StuckPodInterval, "stuck-pod-interval", 5*time.Minute, "the least time between two stuck-pod deletions in one Deployment")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", envOr("FREIGHTCAST_OTLP_ENDPOINT", ""), "OTLP/HTTP base URL (e.g. http://otel-collector.observability.svc:4318) that every data-plane pod exports traces to; empty leaves tracing off (env FREIGHTCAST_OTLP_ENDPOINT)")
	fs.StringVar(&c.samplingRatio, "trace-sampling-ratio", envOr("FREIGHTCAST_TRACE_SAMPLING_RATIO", "1"), "share (0 to 1) of the traces data-plane pods start that are sampled; requests arriving with a trace context follow its decision (env FREIGHTCAST_TRACE_SAMPLING_RATIO)")
	nc := &c.natsCredentials
	fs.StringVar(&nc.CredsFile, "nats-creds-file", envOr("FREIGHTCAST_NATS_CREDS_FILE", ""), "NATS credentials file (user JWT and seed; freightcast nats-auth operator) the operator connects with (env FREIGHTCAST_NATS_CREDS_FILE)")
	fs.StringVar(&nc.NKeySeedFile, "nats-nkey-seed-file", envOr("FREIGHTCAST_NATS_NKEY_SEED_FILE", ""), "NATS user NKey seed file, instead of --nats-creds-file (env FREIGHTCAST_NATS_NKEY_SEED_FILE)")
	fs.StringVar(&nc.UserFile, "nats-user-file", envOr("FREIGHTCAST_NATS_USER_FILE", ""), "file holding the NATS user name, with --nats-password-file (env FREIGHTCAST_NATS_USER_FILE)")
	fs.StringVar(&nc.PasswordFile, "nats-password-file", envOr("FREIGHTCAST_NATS_PASSWORD_FILE", ""), "file holding the NATS password (env FREIGHTCAST_NATS_PASSWORD_FILE)")
	fs.StringVar(&nc.CAFile, "nats-ca-file", envOr("FREIGHTCAST_NATS_CA_FILE", ""), "PEM CA bundle the NATS servers' certificates are checked against; with it the operator speaks TLS only (env FREIGHTCAST_NATS_CA_FILE)")
	fs.StringVar(&nc.CertFile, "nats-cert-file", envOr("FREIGHTCAST_NATS_CERT_FILE", ""), "client certificate for NATS servers that verify clients, with --nats-key-file (env FREIGHTCAST_NATS_CERT_FILE)")
	fs.StringVar(&nc.KeyFile, "nats-key-file", envOr("FREIGHTCAST_NATS_KEY_FILE", ""), "private key of --nats-cert-file (env FREIGHTCAST_NATS_KEY_FILE)")
	fs.BoolVar(&c.webhook, "webhook", true, "serve the validating admission webhook that refuses invalid FreightPipeline feature transforms at apply time, and manage its certificate; false leaves the check to the FeaturesValid condition")
	w := &c.webhookOpts
	fs.IntVar(&w.Port, "webhook-port", 9443, "port of the admission webhook server (TLS)")
	fs.StringVar(&w.Namespace, "webhook-namespace", envOr("FREIGHTCAST_NAMESPACE", ""), "the operator's namespace, where the webhook's Service and certificate Secret are (env FREIGHTCAST_NAMESPACE, from the downward API)")
	fs.StringVar(&w.Service, "webhook-service", "freightcast-webhook", "name of the webhook's Service: the serving certificate is for its DNS names")
	fs.StringVar(&w.SecretName, "webhook-secret", "freightcast-webhook-cert", "name of the Secret holding the webhook's CA and serving certificate (made and rotated by the operator)")
	fs.StringVar(&w.WebhookConfiguration, "webhook-configuration", "freightcast-validating-webhook", "name of the ValidatingWebhookConfiguration whose caBundle the operator writes")
	fs.DurationVar(&w.CertLifetime, "webhook-cert-lifetime", webhook.DefaultCertLifetime, "validity of the webhook's CA and serving certificate; a new pair is made when less than a third of it remains")
	zapOpts := &zap.Options{Development: false}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	if c.Image == "" {
		return c, nil, fmt.Errorf("--data-plane-image (or FREIGHTCAST_IMAGE) is required: data-plane pods run the operator's own image")
	}
	switch c.DefaultQueueReplicas {
	case 1, 3, 5:
	default:
		return c, nil, fmt.Errorf("--default-queue-replicas must be 1, 3 or 5, got %d", c.DefaultQueueReplicas)
	}
	if c.natsMaxStore != "" {
		q, err := resource.ParseQuantity(c.natsMaxStore)
		if err != nil || q.Value() <= 0 {
			return c, nil, fmt.Errorf("--nats-max-file-store must be a positive quantity such as 9Gi, got %q", c.natsMaxStore)
		}
		c.NATSStore.PerServer = q.Value()
	}
	if c.NATSStore.Servers < 1 {
		return c, nil, fmt.Errorf("--nats-servers must be at least 1, got %d", c.NATSStore.Servers)
	}
	for name, d := range map[string]time.Duration{"--queue-deletion-timeout": c.QueueDeletionTimeout, "--queue-stall-grace": c.QueueStallGrace, "--stuck-pod-threshold": c.StuckPodThreshold, "--stuck-pod-interval": c.StuckPodInterval} {
		if d <= 0 {
			return c, nil, fmt.Errorf("%s must be positive, got %s", name, d)
		}
	}
	if c.webhook {
		if w.Namespace == "" {
			return c, nil, fmt.Errorf("--webhook-namespace (or FREIGHTCAST_NAMESPACE) is required with --webhook: the certificate's Secret lives there")
		}
		if w.Port < 1 || w.Port > 65535 {
			return c, nil, fmt.Errorf("--webhook-port must be a port number, got %d", w.Port)
		}
		if w.CertLifetime < time.Hour {
			return c, nil, fmt.Errorf("--webhook-cert-lifetime must be at least 1h, got %s", w.CertLifetime)
		}
	}
	if err := c.natsCredentials.Validate(); err != nil {
		return c, nil, err
	}
	ratio, err := strconv.ParseFloat(c.samplingRatio, 64)
	if err != nil || !(ratio >= 0 && ratio <= 1) {
		return c, nil, fmt.Errorf("--trace-sampling-ratio must be a number from 0 to 1, got %q", c.samplingRatio)
	}
	c.TraceSamplingRatio = ratio
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, nil, fmt.Errorf("--otlp-endpoint must be an http:// or https:// URL, got %q", c.OTLPEndpoint)
		}
	}
	switch corev1.PullPolicy(c.pullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		c.ImagePullPolicy = corev1.PullPolicy(c.pullPolicy)
	default:
		return c, nil, fmt.Errorf("--data-plane-image-pull-policy must be Always, IfNotPresent or Never, got %q", c.pullPolicy)
	}
	return c, zapOpts, nil
}

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return fallback
}

func runManager(ctx context.Context, args []string) error {
	cfg, zapOpts, err := parseManagerFlags(args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zapOpts)))
	log := ctrl.Log.WithName("manager")
	log.Info("starting", "version", version.String(), "dataPlaneImage", cfg.Image, "defaultNATSURL", cfg.DefaultNATSURL, "defaultQueueReplicas", cfg.DefaultQueueReplicas, "natsStore", cfg.NATSStore,
		"otlpEndpoint", cfg.OTLPEndpoint, "traceSamplingRatio", cfg.TraceSamplingRatio)

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	opts := ctrl.Options{
		Scheme:                  managerScheme(),
		NewCache:                controllers.NewCache,
		Metrics:                 metricsserver.Options{BindAddress: cfg.metricsAddr},
		HealthProbeBindAddress:  cfg.probeAddr,
		LeaderElection:          cfg.leaderElect,
		LeaderElectionID:        "freightcast-manager.freightcast.io",
		LeaderElectionNamespace: cfg.leaderElectionNS,
		// The manager stops reconciling as soon as it loses the lease; a new leader takes over
		// without waiting for this process to exit.
		LeaderElectionReleaseOnCancel: true,
	}
	var certs *webhook.CertManager
	if cfg.webhook {
		certs = webhook.NewCertManager(cfg.webhookOpts, clock.RealClock{})
		opts.WebhookServer = webhook.NewServer(cfg.webhookOpts, certs)
	}
	mgr, err := ctrl.NewManager(restConfig, opts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	natsOpts, err := cfg.natsCredentials.Options()
	if err != nil {
		return err
	}
	// Its own inbox prefix: the only replies its NATS permissions let it receive.
	connector := queue.NewConnector("freightcast-operator", append(natsOpts, nats.CustomInboxPrefix(queue.OperatorInboxPrefix))...)
	defer connector.Close()
	if err := controllers.SetupWithManager(mgr, cfg.Options, connector, clock.RealClock{}); err != nil {
		return err
	}
	if certs != nil {
		if err := webhook.Setup(mgr, certs); err != nil {
			return err
		}
	} else {
		log.Info("the validating webhook is off (--webhook=false): invalid feature transforms are reported by the FeaturesValid condition only")
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
