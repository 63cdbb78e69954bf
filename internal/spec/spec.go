// Package spec translates the freightcast.io API into the data plane's configuration: the
// pipeline config a pipeline's pods read, its queue's topology and limits, the autoscaling policy
// its inference pool is sized with, and how a model's servers serve it. The operator builds its
// children from it and local mode (`freightcast run`) its in-process components, so both read a
// spec the same way. Every function applies the API's defaults itself (objects built in Go never
// went through an API server), and nothing here imports controller-runtime.
package spec

import (
	"errors"
	"fmt"
	"path"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/transform"
)

// TokensFile is where the data-plane containers find the accepted bearer tokens: the operator
// mounts spec.auth's Secret key there, and the pipeline config points ingestion at it.
const TokensFile = "/etc/freightcast/auth/tokens"

// Where the pipeline's pods find the files of spec.queue.credentials and spec.queue.tls: the
// operator mounts the Secrets' keys there, and the pipeline config points the NATS client at
// them. The operator never reads them.
const (
	NATSCredentialsDir = "/etc/freightcast/nats"
	NATSCADir          = "/etc/freightcast/nats-ca"
)

// NATSCredentialKeys are the keys of a spec.queue.credentials Secret of each type, which the
// operator mounts as files of the same name under NATSCredentialsDir.
func NATSCredentialKeys(t freightcastv1alpha1.NATSCredentialsType) []string {
	switch t {
	case freightcastv1alpha1.NATSNKey:
		return []string{"nkey"}
	case freightcastv1alpha1.NATSUserPassword:
		return []string{"user", "password"}
	}
	return []string{"creds"}
}

// NATSCAKey is the key of spec.queue.tls's Secret that holds the CA bundle.
const NATSCAKey = "ca.crt"

// NATSCredentials are the files a pipeline's pods connect to NATS with (the zero value: none).
func NATSCredentials(p *freightcastv1alpha1.FreightPipeline) queue.Credentials {
	p = defaultedPipeline(p)
	var c queue.Credentials
	if cr := p.Spec.Queue.Credentials; cr != nil {
		file := func(key string) string { return NATSCredentialsDir + "/" + key }
		switch cr.Type {
		case freightcastv1alpha1.NATSNKey:
			c.NKeySeedFile = file("nkey")
		case freightcastv1alpha1.NATSUserPassword:
			c.UserFile, c.PasswordFile = file("user"), file("password")
		default:
			c.CredsFile = file("creds")
		}
	}
	if p.Spec.Queue.TLS != nil {
		c.CAFile = NATSCADir + "/" + NATSCAKey
	}
	return c
}

// QueueReplicas is how many servers hold pipeline p's streams: spec.queue.replicas, or the
// operator's default (the chart's: its NATS cluster size) when unset; 1 when neither is set.
func QueueReplicas(p *freightcastv1alpha1.FreightPipeline, defaultReplicas int) int {
	if r := p.Spec.Queue.Replicas; r != nil {
		return int(*r)
	}
	return max(defaultReplicas, 1)
}

// Queue is pipeline p's JetStream topology, limits and replicas; defaultReplicas applies when
// spec.queue.replicas is unset.
func Queue(p *freightcastv1alpha1.FreightPipeline, defaultReplicas int) queue.Spec {
	p = defaultedPipeline(p)
	q := p.Spec.Queue
	return queue.Spec{
		Replicas:  QueueReplicas(p, defaultReplicas),
		Reporting: p.Spec.Reporting != nil,
		Topology:  queue.TopologyFor(p.Namespace, p.Name),
		Limits: queue.Limits{
			MaxMessages:     q.MaxMessages,
			MaxBytes:        q.MaxBytes.Value(),
			MaxAge:          q.MaxAge.Duration,
			DuplicateWindow: q.DuplicateWindow.Duration,
			AckWait:         q.AckWait.Duration,
			MaxDeliver:      int(q.MaxDeliver),
			// Enough unacknowledged events for every worker the pool may run to hold two batches.
			MaxAckPending:       int(p.Spec.Inference.MaxReplicas) * int(p.Spec.Inference.BatchSize) * 2,
			PredictionRetention: p.Spec.Output.PredictionRetention.Duration,
		},
	}
}

// Pipeline renders the data-plane configuration of pipeline p scoring with model on the NATS
// server at natsURL: what the operator writes into the pipeline's ConfigMap, and what local mode
// hands its in-process components. The model version is the one the model's pods serve (see
// ServedRevision), so a pipeline follows a rollback of its model. defaultReplicas is the queue's
// replicas when spec.queue.replicas is unset.
func Pipeline(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, natsURL string, defaultReplicas int) pipelineconfig.Config {
	p = defaultedPipeline(p)
	cfg := pipelineconfig.Config{
		Namespace:       p.Namespace,
		Name:            p.Name,
		NATSURL:         natsURL,
		NATSCredentials: NATSCredentials(p),
		Queue:           Queue(p, defaultReplicas),
		Model: pipelineconfig.Model{
			Name:     model.Name,
			Version:  servedVersion(model),
			Features: model.Spec.Features,
			Inputs:   FeatureInputs(model),
		},
		Ingestion: pipelineconfig.Ingestion{
			MaxBodyBytes: p.Spec.Ingestion.MaxBodyBytes.Value(),
		},
		Inference:  pipelineconfig.Inference{BatchSize: int(p.Spec.Inference.BatchSize)},
		Transforms: Transforms(p),
		Output:     pipelineconfig.Output{RecordInputs: p.Spec.Output.RecordInputs},
		Reporting:  Reporting(p),
	}
	if cfg.Reporting != nil {
		cfg.Ingestion.ReportingURL = fmt.Sprintf("http://%s.%s.svc:%d", ReportingServiceName(p.Name), p.Namespace, ReportingPort)
	}
	if p.Spec.Ingestion.Auth != nil {
		cfg.Ingestion.TokensFile = TokensFile
	}
	if RemoteScoring(p, model) {
		cfg.Model.Remote = RemoteModel(model)
	}
	if rl := p.Spec.Ingestion.RateLimit; rl != nil {
		burst := rl.Burst
		if burst == 0 {
			burst = rl.EventsPerSecond
		}
		cfg.Ingestion.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: rl.EventsPerSecond, Burst: burst}
	}
	return cfg
}

// RemoteModelTokenFile is where an inference pool that scores remotely finds the tokens its
// model accepts (its spec.auth Secret), the first of which it presents.
const RemoteModelTokenFile = "/etc/freightcast/model-auth/tokens"

// RemoteScoring tells whether pipeline p's pool scores through model's Service rather than
// in-process: spec.inference.scoring, or by default when another runtime serves the model.
func RemoteScoring(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel) bool {
	switch p.Spec.Inference.Scoring {
	case freightcastv1alpha1.ScoringRemote:
		return true
	case freightcastv1alpha1.ScoringInProcess:
		return false
	}
	return model.Spec.Runtime != nil
}

// The ports of a model's Service, which controllers expose and pools call: our runtime serves
// REST (and any spec.runtime its one protocol) on HTTPPort, and gRPC on GRPCPort.
const (
	HTTPPort = 8080
	GRPCPort = 8081
)

// RemoteModel is how a pool reaches model's serving pods: its Service NAME-predictor. Our own
// runtime serves both protocols, and the pool calls it over gRPC (port grpc, 8081; TLS when the
// model has TLS): a batch travels as raw little-endian tensors instead of JSON numbers the server
// must parse. Another runtime (spec.runtime) is called over the protocol it serves, on port
// 8080, in plaintext: spec.tls is refused with a runtime.
//
// Over TLS the pool trusts what the model's TLS Secret holds (mounted at RemoteModelTrustDir):
// its ca.crt, as cert-manager writes it, else the served certificate itself. The certificate
// must name the Service's DNS name, NAME-predictor.NAMESPACE.svc.
func RemoteModel(model *freightcastv1alpha1.PredictionModel) *pipelineconfig.Remote {
	r := &pipelineconfig.Remote{Protocol: pipelineconfig.ProtocolGRPC}
	scheme, port := "grpc", GRPCPort
	switch rt := model.Spec.Runtime; {
	case rt != nil && rt.Protocol == freightcastv1alpha1.RuntimeProtocolGRPC:
		port = HTTPPort
	case rt != nil:
		r.Protocol, scheme, port = pipelineconfig.ProtocolREST, "http", HTTPPort
	case model.Spec.TLS != nil:
		scheme = "grpcs"
		r.TrustFiles = []string{path.Join(RemoteModelTrustDir, RemoteModelCAKey), path.Join(RemoteModelTrustDir, RemoteModelCertKey)}
	}
	r.URL = fmt.Sprintf("%s://%s-predictor.%s.svc:%d", scheme, model.Name, model.Namespace, port)
	if model.Spec.Auth != nil {
		r.TokenFile = RemoteModelTokenFile
	}
	return r
}

// RemoteModelTrustDir is where an inference pool that scores remotely over TLS finds the
// certificates it trusts the model's server with: the keys RemoteModelCAKey and tls.crt of the
// model's spec.tls Secret (never its private key).
const RemoteModelTrustDir = "/etc/freightcast/model-tls"

// The keys of the model's TLS Secret the pool reads: the issuer's CA, as cert-manager names
// it, and the served certificate (kubernetes.io/tls).
const (
	RemoteModelCAKey   = "ca.crt"
	RemoteModelCertKey = "tls.crt"
)

// Transforms are pipeline p's feature transforms and lookup tables.
func Transforms(p *freightcastv1alpha1.FreightPipeline) pipelineconfig.Transforms {
	var t pipelineconfig.Transforms
	for _, f := range p.Spec.Features {
		t.Features = append(t.Features, pipelineconfig.FeatureTransform{Name: f.Name, Expression: f.Expression})
	}
	for _, l := range p.Spec.LookupTables {
		t.Tables = append(t.Tables, pipelineconfig.LookupTable{Name: l.Name, Values: l.Values})
	}
	return t
}

// CheckTransforms compiles pipeline p's transforms as ingestion will (internal/transform): each
// expression parsed, type-checked against the model input its feature feeds and cost-bounded, and
// each feature one the model has. model may be nil (not created yet, or a webhook that does not
// read it): the expressions are checked alone, and the names only when the model declares its
// features in its spec (they may also come from the model file's metadata, which ingestion
// reads when it starts).
// The tables of spec.lookupTables[].configMapRef are checked as declared but empty; the
// controller reads them and checks them with CheckResolvedTransforms.
func CheckTransforms(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel) error {
	return CheckResolvedTransforms(Transforms(p), model)
}

// CheckResolvedTransforms is CheckTransforms of transforms t, whose tables the caller has read
// (ResolvedTransforms).
func CheckResolvedTransforms(t pipelineconfig.Transforms, model *freightcastv1alpha1.PredictionModel) error {
	if len(t.Features) == 0 && len(t.Tables) == 0 {
		return nil
	}
	datatypes := map[string]string{}
	if model != nil {
		for _, in := range FeatureInputs(model) {
			for _, f := range in.Features {
				datatypes[f] = in.DataType
			}
		}
		for _, f := range model.Spec.Features {
			datatypes[f] = "FP32" // a single input of features is the FP32 the pool feeds
		}
	}
	var errs []error
	if len(datatypes) > 0 {
		for _, f := range t.Features {
			if _, ok := datatypes[f.Name]; !ok {
				errs = append(errs, fmt.Errorf("feature %q: PredictionModel %s has no such feature", f.Name, model.Name))
			}
		}
	}
	if _, err := transform.Compile(t, func(name string) string { return datatypes[name] }); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FeatureInputs is how a pipeline feeds model's inputs from an event's features: the inputs
// that declare features, with their datatype when declared (the pods check it against the model
// file); nil when none does, and spec.features (or the file's metadata) name the columns of the
// single input.
func FeatureInputs(model *freightcastv1alpha1.PredictionModel) []pipelineconfig.Input {
	var out []pipelineconfig.Input
	for _, in := range model.Spec.Inputs {
		if len(in.Features) > 0 {
			out = append(out, pipelineconfig.Input{Name: in.Name, DataType: string(in.DataType), Features: in.Features})
		}
	}
	return out
}

func defaultedPipeline(p *freightcastv1alpha1.FreightPipeline) *freightcastv1alpha1.FreightPipeline {
	p = p.DeepCopy()
	p.Default()
	return p
}
