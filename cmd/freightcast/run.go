package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/local"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/modelsource"
	"github.com/freightcast/freightcast/internal/spec"
	"github.com/freightcast/freightcast/internal/tracing"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type runOptions struct {
	files      stringList
	pvcs       stringList
	dataDir    string
	natsAddr   string
	ingestAddr string
	inferAddr  string
	reportAddr string
	workers    int
	logLevel   string
	storeSize  string
	maxStore   int64
}

func parseRunFlags(args []string) (*runOptions, error) {
	o := &runOptions{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Var(&o.files, "f", "YAML file or directory of PredictionModels, FreightPipelines and model ConfigMaps, as a cluster gets them (repeatable)")
	fs.Var(&o.pvcs, "pvc", "CLAIM=DIR: serve persistentVolumeClaim model sources of CLAIM from local directory DIR (repeatable)")
	fs.StringVar(&o.dataDir, "data-dir", "", "JetStream storage directory; events survive a restart on the same dir (default: a new temporary directory)")
	fs.StringVar(&o.natsAddr, "nats-addr", "127.0.0.1:4222", "address of the embedded NATS server")
	fs.StringVar(&o.ingestAddr, "ingest-addr", "127.0.0.1:8080", "address of the first pipeline's ingestion API; more pipelines take the next ports")
	fs.StringVar(&o.inferAddr, "infer-addr", "127.0.0.1:9080", "address of the first model's Open Inference Protocol API; more models take the next ports")
	fs.StringVar(&o.reportAddr, "report-addr", "127.0.0.1:8180", "address of the reporting role of the first pipeline with spec.reporting (the i-th pipeline's takes the port plus i); its ingestion forwards /v1/reports to it")
	fs.IntVar(&o.workers, "workers", 0, "a fixed number of inference workers per pipeline; 0 sizes them from the queue depth with the pipeline's autoscaling spec, as the operator does")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.storeSize, "store-size", "", "the embedded JetStream's store (e.g. 4Gi), which each pipeline reserves 3 × spec.queue.maxBytes of up front (4 × with spec.reporting); default: 75 % of the disk free under --data-dir")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q (files go after -f)", fs.Args())
	case len(o.files) == 0:
		return nil, errors.New("-f FILE is required: the PredictionModel and FreightPipeline YAML to run")
	case o.workers < 0:
		return nil, fmt.Errorf("--workers %d must not be negative", o.workers)
	}
	if o.storeSize != "" {
		q, err := resource.ParseQuantity(o.storeSize)
		if err != nil || q.Value() <= 0 {
			return nil, fmt.Errorf("--store-size must be a positive quantity such as 4Gi, got %q", o.storeSize)
		}
		o.maxStore = q.Value()
	}
	return o, nil
}

func runLocal(ctx context.Context, args []string) error {
	o, err := parseRunFlags(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	tp, shutdownTracing, err := tracing.Setup(ctx, "freightcast-local", log)
	if err != nil {
		return err
	}
	defer flushTraces(shutdownTracing, log)

	objs, err := readManifests(o.files)
	if err != nil {
		return err
	}
	pvcDirs := map[string]string{}
	for _, p := range o.pvcs {
		claim, dir, ok := strings.Cut(p, "=")
		if !ok || claim == "" || dir == "" {
			return fmt.Errorf("--pvc %q: want CLAIM=DIR", p)
		}
		pvcDirs[claim] = dir
	}
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "freightcast-run-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dataDir)
	}
	models, pipelines, err := objs.resolve(ctx, pvcDirs, o.dataDir)
	if err != nil {
		return err
	}
	return local.Run(ctx, local.Options{DataDir: filepath.Join(o.dataDir, "jetstream"), MaxStore: o.maxStore, NATSAddr: o.natsAddr,
		IngestAddr: o.ingestAddr, InferAddr: o.inferAddr, ReportAddr: o.reportAddr, Workers: o.workers, Out: os.Stdout, Logger: log,
		TracerProvider: tp}, models, pipelines)
}

// manifests are the objects local mode understands, by name.
type manifests struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	models     map[string]*freightcastv1alpha1.PredictionModel
	pipelines  []*freightcastv1alpha1.FreightPipeline
}

// readManifests decodes every YAML document of the files (directories: their *.yaml and *.yml),
// strictly: an unknown field or kind is an error naming the file, not something silently skipped.
func readManifests(paths []string) (*manifests, error) {
	scheme := runtime.NewScheme()
	if err := freightcastv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, models: map[string]*freightcastv1alpha1.PredictionModel{}}
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		for _, pattern := range []string{"*.yaml", "*.yml"} {
			found, _ := filepath.Glob(filepath.Join(p, pattern))
			files = append(files, found...)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for doc := 1; ; doc++ {
			raw, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, doc, err)
			}
			if len(bytes.TrimSpace(raw)) == 0 || isOnlyComments(raw) {
				continue
			}
			obj, gvk, err := decoder.Decode(raw, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, doc, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *freightcastv1alpha1.PredictionModel:
				if err := refuseTLS(o.Spec.TLS != nil, "spec"); err != nil {
					return nil, fmt.Errorf("%s: PredictionModel %s: %w", f, o.Name, err)
				}
				if o.Spec.Runtime != nil {
					return nil, fmt.Errorf("%s: PredictionModel %s: spec.runtime: local mode runs models with its own runtime only, not container images; remove it to run locally", f, o.Name)
				}
				o.Default()
				if _, dup := m.models[o.Name]; dup {
					return nil, fmt.Errorf("%s: PredictionModel %s is defined twice", f, o.Name)
				}
				m.models[o.Name] = o
			case *freightcastv1alpha1.FreightPipeline:
				if err := refuseTLS(o.Spec.Ingestion.TLS != nil, "spec.ingestion"); err != nil {
					return nil, fmt.Errorf("%s: FreightPipeline %s: %w", f, o.Name, err)
				}
				if o.Spec.Inference.Scoring == freightcastv1alpha1.ScoringRemote {
					return nil, fmt.Errorf("%s: FreightPipeline %s: spec.inference.scoring Remote: local mode scores in-process only; remove it to run locally", f, o.Name)
				}
				o.Default()
				m.pipelines = append(m.pipelines, o)
			default:
				return nil, fmt.Errorf("%s: document %d: local mode runs PredictionModels, FreightPipelines and their ConfigMaps and Secrets, not %s", f, doc, gvk.Kind)
			}
		}
	}
	if len(m.pipelines) == 0 && len(m.models) == 0 {
		return nil, fmt.Errorf("no PredictionModel or FreightPipeline in %s", strings.Join(paths, ", "))
	}
	return m, nil
}

// refuseTLS names the field local mode cannot honour yet: it serves plain HTTP, and serving a
// resource that asks for TLS without it would quietly run something else than the YAML says.
func refuseTLS(tls bool, path string) error {
	if !tls {
		return nil
	}
	return fmt.Errorf("%s.tls: local mode serves plain HTTP only; remove it to run locally", path)
}

// tokensFile writes the tokens a bearer-token spec names, from a Secret in the -f set, to a file
// under dir that the servers read as the pods read their mounted Secret; field names the spec in
// errors. Without auth it returns "".
func (m *manifests) tokensFile(auth *freightcastv1alpha1.BearerTokenAuth, field, dir, name string) (string, error) {
	if auth == nil {
		return "", nil
	}
	ref := auth.SecretRef
	secret, ok := m.secrets[ref.Name]
	if !ok {
		return "", fmt.Errorf("%s.secretRef: Secret %s is not in the files; add its manifest to the -f set", field, ref.Name)
	}
	data, ok := secret.Data[ref.Key]
	if !ok {
		s, found := secret.StringData[ref.Key]
		if !found {
			return "", fmt.Errorf("%s.secretRef: Secret %s has no key %q", field, ref.Name, ref.Key)
		}
		data = []byte(s)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", err
	}
	return file, nil
}

func isOnlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// resolve turns the manifests into what local mode runs; model downloads are cached, and the
// tokens of Secrets written, under dataDir.
func (m *manifests) resolve(ctx context.Context, pvcDirs map[string]string, dataDir string) ([]local.Model, []local.Pipeline, error) {
	cacheDir, secretsDir := filepath.Join(dataDir, "models"), filepath.Join(dataDir, "secrets")
	runtimes := map[string]*model.Model{}
	var models []local.Model
	for name, pm := range m.models {
		data, err := m.modelBytes(ctx, pm, pvcDirs, cacheDir)
		if err != nil {
			return nil, nil, fmt.Errorf("PredictionModel %s: %w", name, err)
		}
		rt, err := model.Load(data)
		if err != nil {
			return nil, nil, fmt.Errorf("PredictionModel %s: %w", name, err)
		}
		// As freightcast infer: declared features and inputs must fit the model; serving needs
		// neither.
		if len(pm.Spec.Features) > 0 {
			if _, err := model.ResolveInputs(pm.Spec.Features, nil, rt.Metadata()); err != nil {
				return nil, nil, fmt.Errorf("PredictionModel %s: %w", name, err)
			}
		}
		if len(pm.Spec.Inputs) > 0 {
			inputs, _ := json.Marshal(pm.Spec.Inputs) // plain structs always marshal
			if err := checkInputs(string(inputs), rt.Metadata()); err != nil {
				return nil, nil, fmt.Errorf("PredictionModel %s: %w", name, err)
			}
		}
		tokens, err := m.tokensFile(pm.Spec.Auth, "spec.auth", secretsDir, "model-"+name)
		if err != nil {
			return nil, nil, fmt.Errorf("PredictionModel %s: %w", name, err)
		}
		runtimes[name] = rt
		srv := spec.ModelServer(pm, spec.ServedRevision(pm))
		models = append(models, local.Model{Name: srv.Name, Version: srv.Version, Runtime: rt, TokensFile: tokens,
			MaxBatchSize: srv.MaxBatchSize, MaxBatchDelay: srv.MaxBatchDelay})
	}
	var pipelines []local.Pipeline
	for _, p := range m.pipelines {
		// As the operator's webhook does, before anything runs: a dimension that does not
		// compile is named.
		if err := spec.CheckReporting(p); err != nil {
			return nil, nil, fmt.Errorf("FreightPipeline %s: spec.reporting: %w", p.Name, err)
		}
		pm, ok := m.models[p.Spec.ModelRef.Name]
		if !ok {
			return nil, nil, fmt.Errorf("FreightPipeline %s: its model %s is not in the files", p.Name, p.Spec.ModelRef.Name)
		}
		if p.Namespace == "" {
			p.Namespace = "local"
		}
		// One embedded server: one replica, whatever the operator would default to.
		cfg := spec.Pipeline(p, pm, "nats://embedded", 1)
		// As the operator reads a lookup table's ConfigMap from the cluster, local mode reads it
		// from the files.
		transforms, err := spec.ResolvedTransforms(p, func(name string) (map[string]string, bool, error) {
			cm, ok := m.configMaps[name]
			if !ok {
				return nil, false, errors.New("it is not in the files; add its manifest to the -f set")
			}
			return cm.Data, true, nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("FreightPipeline %s: spec.lookupTables: %w", p.Name, err)
		}
		cfg.Transforms = transforms
		// The pods read the Secret where the operator mounts it; here it comes from the files.
		tokens, err := m.tokensFile(p.Spec.Ingestion.Auth, "spec.ingestion.auth", secretsDir, "pipeline-"+p.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("FreightPipeline %s: %w", p.Name, err)
		}
		cfg.Ingestion.TokensFile = tokens
		inputs, err := model.ResolveInputs(cfg.Model.Features, featureInputs(cfg.Model.Inputs), runtimes[pm.Name].Metadata())
		if err != nil {
			return nil, nil, fmt.Errorf("FreightPipeline %s: %w", p.Name, err)
		}
		policy, interval := spec.Autoscale(p)
		pipelines = append(pipelines, local.Pipeline{Config: cfg, Model: runtimes[pm.Name], Inputs: inputs,
			Autoscale: policy, PollInterval: interval})
	}
	return models, pipelines, nil
}

func (m *manifests) modelBytes(ctx context.Context, pm *freightcastv1alpha1.PredictionModel, pvcDirs map[string]string, cacheDir string) ([]byte, error) {
	src := pm.Spec.Source
	switch {
	case src.ConfigMap != nil:
		cm, ok := m.configMaps[src.ConfigMap.Name]
		if !ok {
			return nil, fmt.Errorf("its ConfigMap %s is not in the files", src.ConfigMap.Name)
		}
		return spec.ConfigMapModel(cm, spec.ConfigMapKey(src.ConfigMap))
	case src.URI != "":
		s := modelsource.Spec{URI: src.URI, SHA256: src.SHA256, CacheDir: cacheDir}
		if ca := src.CABundle; ca != nil {
			cm, ok := m.configMaps[ca.ConfigMap.Name]
			if !ok {
				return nil, fmt.Errorf("spec.source.caBundle: its ConfigMap %s is not in the files", ca.ConfigMap.Name)
			}
			bundle, err := spec.CABundle(cm, ca)
			if err != nil {
				return nil, err
			}
			s.CABundle = bundle
		}
		return fetchModel(ctx, s, "")
	case src.PersistentVolumeClaim != nil:
		dir, ok := pvcDirs[src.PersistentVolumeClaim.ClaimName]
		if !ok {
			return nil, fmt.Errorf("its source is PersistentVolumeClaim %s: map it to a local directory with --pvc %s=DIR",
				src.PersistentVolumeClaim.ClaimName, src.PersistentVolumeClaim.ClaimName)
		}
		return modelsource.Fetch(ctx, modelsource.Spec{Path: filepath.Join(dir, filepath.Clean("/"+src.PersistentVolumeClaim.Path))})
	}
	return nil, errors.New("it has no source")
}
