package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelFormat is the serialisation of a model file.
// +kubebuilder:validation:Enum=ONNX
type ModelFormat string

// ModelFormatONNX is an ONNX protobuf model file.
const ModelFormatONNX ModelFormat = "ONNX"

// TensorDataType is an Open Inference Protocol tensor datatype.
// +kubebuilder:validation:Enum=BOOL;UINT8;UINT16;UINT32;UINT64;INT8;INT16;INT32;INT64;FP16;FP32;FP64;BYTES
type TensorDataType string

// PredictionModelSpec is the model to serve and how to serve it.
// +kubebuilder:validation:XValidation:rule="!has(self.inputs) || !has(self.features) || size(self.features) == 0 || size(self.inputs) == 1",message="features describe a single input tensor: with features set, inputs may list only one tensor"
// +kubebuilder:validation:XValidation:rule="!has(self.inputs) || !has(self.features) || size(self.features) == 0 || !self.inputs.exists(i, has(i.features))",message="spec.features and inputs[].features cannot both be set: give each input its features"
// +kubebuilder:validation:XValidation:rule="!has(self.inputs) || !self.inputs.exists(i, has(i.features)) || self.inputs.all(i, has(i.features))",message="when one input declares features every input must: a pipeline feeds every input of the model from the event's features"
// +kubebuilder:validation:XValidation:rule="!has(self.runtime) || !has(self.tls)",message="spec.tls is not supported with spec.runtime: the runtime serves its own protocol; put TLS in front of it with spec.route"
// +kubebuilder:validation:XValidation:rule="!has(self.runtime) || !has(self.route) || !has(self.runtime.protocol) || self.runtime.protocol == 'REST'",message="spec.route exposes REST only: it needs runtime.protocol REST"
// +kubebuilder:validation:XValidation:rule="!has(self.runtime) || !has(self.route) || !has(self.route.grpc)",message="spec.route.grpc routes Freightcast's own gRPC port: it is not supported with spec.runtime"
// +kubebuilder:validation:XValidation:rule="!has(self.inputs) || self.inputs.all(a, !has(a.features) || self.inputs.all(b, a.name == b.name || !has(b.features) || a.features.all(f, !(f in b.features))))",message="a feature may feed only one input: a name appears in the features of two inputs"
type PredictionModelSpec struct {
	// format is the serialisation of the model file. Only ONNX is supported.
	// +kubebuilder:default=ONNX
	// +optional
	Format ModelFormat `json:"format,omitempty"`

	// source says where the model file comes from: exactly one of configMap, uri or
	// persistentVolumeClaim.
	// +required
	Source ModelSource `json:"source"`

	// version names this revision of the model in the Open Inference Protocol metadata
	// (`versions`) and in the serving URL's optional /versions/{version} segment.
	// +kubebuilder:default="1"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`
	// +optional
	Version string `json:"version,omitempty"`

	// features are the model's input feature names in input-column order. Pipelines map each
	// event's `features` object into the input tensor by these names. When empty, the names come
	// from the model file's metadata (freightcast.io/features); when both exist they must agree,
	// or the serving pods refuse to start.
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z_][A-Za-z0-9_.-]*$`
	// +optional
	Features []string `json:"features,omitempty"`

	// inputs optionally declares the model's input tensors, and which event features feed each
	// one (a tabular net's FP32 columns beside an INT64 category id, say). The serving pods and
	// a pipeline's pods check the model file against it (name, datatype, shape) and refuse to
	// start, naming the mismatch. When empty, the model file alone describes its inputs.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Inputs []InputSpec `json:"inputs,omitempty"`

	// outputs optionally declares the model's output tensors, as inputs does.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Outputs []TensorSpec `json:"outputs,omitempty"`

	// replicas is the number of serving pods. It is the scale subresource's spec.replicas, so
	// `kubectl scale pm/NAME` and a HorizontalPodAutoscaler targeting the PredictionModel work.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of each serving container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// batching groups concurrent requests into one model run.
	// +optional
	Batching BatchingSpec `json:"batching,omitempty"`

	// progressDeadlineSeconds is how long a rollout of the serving pods may go without progress
	// (the serving Deployment's progressDeadlineSeconds). When it passes, the operator rolls the
	// pods back to the last model revision that served (status.lastGoodRevision) and keeps them
	// there until the spec changes.
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=30
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`

	// auth requires a bearer token on every Open Inference Protocol request except the health
	// probes (/v2/health/live, /v2/health/ready) and /metrics. The operator mounts the Secret
	// into the serving pods; it never reads it itself.
	// +optional
	Auth *BearerTokenAuth `json:"auth,omitempty"`

	// tls makes the serving pods speak HTTPS with the certificate of a kubernetes.io/tls Secret.
	// The operator mounts the Secret; it never reads it itself.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// route exposes the Open Inference Protocol API (/v2) through a Gateway API HTTPRoute
	// attached to the named Gateway, and its gRPC service through a GRPCRoute when route.grpc
	// is set. /metrics stays inside the cluster.
	// +optional
	Route *ModelRouteSpec `json:"route,omitempty"`

	// networkPolicy configures the NetworkPolicy the operator writes for the serving pods
	// (on by default).
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// runtime serves the model with another container that speaks the Open Inference Protocol
	// v2 (Triton, MLServer, a KServe ServingRuntime's image), for models Freightcast's own
	// runtime does not run. The operator deploys it with the same probes, rollback, tokens,
	// NetworkPolicy and status; the model file still comes from spec.source, placed under
	// runtime.modelDir. The operator's own checks of the file (features and inputs against the
	// ONNX graph) are skipped, and ModelLoaded says so. spec.resources sizes its container;
	// spec.batching does not apply.
	// +optional
	Runtime *RuntimeSpec `json:"runtime,omitempty"`
}

// RuntimeProtocol is the Open Inference Protocol transport a runtime serves.
// +kubebuilder:validation:Enum=REST;GRPC
type RuntimeProtocol string

// The Open Inference Protocol transports.
const (
	RuntimeProtocolREST RuntimeProtocol = "REST"
	RuntimeProtocolGRPC RuntimeProtocol = "GRPC"
)

// RuntimeSpec is a container serving the model over the Open Inference Protocol v2, as KServe's
// ServingRuntime describes one. Its readiness is the protocol's: GET /v2/health/ready for REST,
// the gRPC health service (grpc.health.v1) for GRPC.
// +kubebuilder:validation:XValidation:rule="!has(self.env) || self.env.all(e, !e.name.startsWith('FREIGHTCAST_'))",message="runtime.env names starting with FREIGHTCAST_ are the operator's: it sets FREIGHTCAST_MODEL_DIR, FREIGHTCAST_MODEL_PATH, FREIGHTCAST_MODEL_NAME and FREIGHTCAST_TOKENS_FILE"
type RuntimeSpec struct {
	// image is the runtime's container image.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +required
	Image string `json:"image"`

	// protocol is the transport the runtime serves the Open Inference Protocol over.
	// +kubebuilder:default=REST
	// +optional
	Protocol RuntimeProtocol `json:"protocol,omitempty"`

	// port is the container port the runtime listens on.
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// command replaces the image's entrypoint.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=4096
	// +optional
	Command []string `json:"command,omitempty"`

	// args of the runtime's container. $(FREIGHTCAST_MODEL_PATH) and the other variables the
	// operator sets expand in them, as Kubernetes expands any container variable.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	// +optional
	Args []string `json:"args,omitempty"`

	// env of the runtime's container, besides the FREIGHTCAST_ variables the operator sets.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// modelDir is the absolute directory the runtime expects the model file in (KServe mounts
	// a storageUri at /mnt/models). The file keeps its name: the ConfigMap key, the base name
	// of a persistentVolumeClaim path, or model.onnx for a download. FREIGHTCAST_MODEL_PATH
	// holds its full path.
	// +kubebuilder:default="/mnt/models"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && self != '/' && !self.split('/').exists(s, s == '..')",message="runtime.modelDir must be an absolute path other than / without '..'"
	// +optional
	ModelDir string `json:"modelDir,omitempty"`
}

// ModelSource locates a model file. Exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.uri), has(self.persistentVolumeClaim)].filter(x, x).size() == 1",message="exactly one of source.configMap, source.uri or source.persistentVolumeClaim must be set"
// +kubebuilder:validation:XValidation:rule="has(self.uri) == has(self.sha256)",message="source.sha256 is required with source.uri, and only allowed with it"
// +kubebuilder:validation:XValidation:rule="!has(self.caBundle) || has(self.uri)",message="source.caBundle is only allowed with source.uri"
type ModelSource struct {
	// configMap is a key of a ConfigMap in the model's namespace holding the model file in
	// binaryData (ConfigMaps cap out at 1 MiB, enough for the small tabular models freight uses).
	// +optional
	ConfigMap *ConfigMapModelSource `json:"configMap,omitempty"`

	// uri is an https:// URL the serving pods download the model from, once per pod start.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="source.uri must be an absolute https:// URL"
	// +optional
	URI string `json:"uri,omitempty"`

	// sha256 is the hex SHA-256 digest the file downloaded from uri must have; pods refuse to
	// serve a file that does not match.
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	// +optional
	SHA256 string `json:"sha256,omitempty"`

	// caBundle names the PEM certificate authorities the download from uri trusts, instead of
	// the system's: for a model store whose certificate a private or in-cluster CA signed
	// (trust-manager's, cert-manager's, the cluster's own kube-root-ca.crt). The operator reads
	// it, refuses one that holds no valid certificate (ModelLoaded=False SourceInvalid naming
	// spec.source.caBundle), and mounts it into every pod that downloads the model.
	// +optional
	CABundle *CABundleSource `json:"caBundle,omitempty"`

	// persistentVolumeClaim is a file on a PersistentVolumeClaim in the model's namespace,
	// mounted read-only.
	// +optional
	PersistentVolumeClaim *PVCModelSource `json:"persistentVolumeClaim,omitempty"`
}

// ConfigMapModelSource is a model file stored in a ConfigMap key.
type ConfigMapModelSource struct {
	// name of the ConfigMap, in the PredictionModel's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key in the ConfigMap's binaryData (or data) that holds the model file.
	// +kubebuilder:default="model.onnx"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// CABundleSource locates a PEM bundle of CA certificates.
type CABundleSource struct {
	// configMap is a key of a ConfigMap in the model's namespace holding one or more PEM
	// CERTIFICATE blocks (CA certificates are public: a ConfigMap, as trust-manager and
	// Kubernetes' kube-root-ca.crt publish them).
	// +required
	ConfigMap ConfigMapKeySelector `json:"configMap"`
}

// ConfigMapKeySelector is a key of a ConfigMap in the object's namespace.
type ConfigMapKeySelector struct {
	// name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key in the ConfigMap's data.
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// PVCModelSource is a model file on a PersistentVolumeClaim.
type PVCModelSource struct {
	// claimName is the PersistentVolumeClaim, in the PredictionModel's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	ClaimName string `json:"claimName"`

	// path of the model file relative to the volume's root.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(s, s == '..')",message="persistentVolumeClaim.path must be relative and must not contain '..'"
	// +required
	Path string `json:"path"`
}

// TensorSpec describes one input or output tensor.
type TensorSpec struct {
	// name of the tensor in the model graph.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	Name string `json:"name"`

	// datatype in Open Inference Protocol terms (FP32, INT64, ...).
	// +required
	DataType TensorDataType `json:"datatype"`

	// shape of the tensor; -1 marks a variable dimension (usually the batch).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=0
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=-1
	// +optional
	Shape []int64 `json:"shape,omitempty"`
}

// InputSpec describes one input tensor of the model and the features that feed it.
// +kubebuilder:validation:XValidation:rule="!has(self.features) || !has(self.datatype) || self.datatype in ['FP32', 'FP64', 'INT64', 'INT32', 'BOOL', 'BYTES']",message="features feed only FP32, FP64, INT64, INT32, BOOL and BYTES inputs"
// +kubebuilder:validation:XValidation:rule="!has(self.features) || !has(self.shape) || (size(self.shape) == 1 && self.shape[0] == -1 && size(self.features) == 1) || (size(self.shape) == 2 && self.shape[0] == -1 && (self.shape[1] == -1 || self.shape[1] == size(self.features)))",message="features fill one row per event: the shape must be [-1] with one feature or [-1, n] with n features"
type InputSpec struct {
	// name of the tensor in the model graph.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	Name string `json:"name"`

	// datatype in Open Inference Protocol terms (FP32, INT64, BYTES for strings, ...). When
	// empty, the model file's.
	// +optional
	DataType TensorDataType `json:"datatype,omitempty"`

	// shape of the tensor; -1 marks a variable dimension (usually the batch).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=0
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Minimum=-1
	// +optional
	Shape []int64 `json:"shape,omitempty"`

	// features are the event features that fill this input's columns, in order: a pipeline
	// feeds the input from each event's `features` object by these names, and its ingestion
	// checks every value against the input's datatype. Either every input declares features or
	// none does (then spec.features, or the model file's metadata, names the columns of a
	// model's single input).
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z_][A-Za-z0-9_.-]*$`
	// +optional
	Features []string `json:"features,omitempty"`
}

// BatchingSpec configures server-side micro-batching.
type BatchingSpec struct {
	// maxBatchSize is the most rows one model run takes from concurrent requests.
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	// +optional
	MaxBatchSize int32 `json:"maxBatchSize,omitempty"`

	// maxQueueDelay is the longest a request waits for others to join its batch. A request
	// that finds the model idle runs at once.
	// +kubebuilder:default="2ms"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1s')",message="batching.maxQueueDelay must be between 0s and 1s"
	// +optional
	MaxQueueDelay *metav1.Duration `json:"maxQueueDelay,omitempty"`
}

// PredictionModelStatus is what the operator observed of the model's serving pods.
type PredictionModelStatus struct {
	// conditions: Ready, Progressing, Degraded and ModelLoaded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of serving pods (the scale subresource's status.replicas).
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is the number of serving pods that have loaded the model and pass readiness.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// selector is the label selector of the serving pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// endpoint is the in-cluster Open Inference Protocol URL of the model.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// modelDigest is "sha256:<hex>" of the model file the current revision serves: computed from
	// the ConfigMap, or the digest pinned with a URI. Empty for a PVC source, whose content the
	// operator does not read.
	// +optional
	ModelDigest string `json:"modelDigest,omitempty"`

	// lastGoodRevision is the last model revision whose rollout completed with every serving pod
	// ready: what the operator rolls back to when a later rollout fails.
	// +optional
	LastGoodRevision *ModelRevision `json:"lastGoodRevision,omitempty"`

	// failedRollout is the revision of the current spec whose rollout failed, or that the
	// operator refused to roll out because its model cannot load. The pods stay on
	// lastGoodRevision (when there is one) until the spec (metadata.generation) or the content
	// of the model file changes; then the operator tries again.
	// +optional
	FailedRollout *FailedRollout `json:"failedRollout,omitempty"`
}

// ModelRevision is one revision of a model: where its file comes from, the version it is served
// as, and the file's digest.
type ModelRevision struct {
	// source of the model file, as spec.source said it at the time.
	// +required
	Source ModelSource `json:"source"`

	// version the model was served as.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Version string `json:"version,omitempty"`

	// digest is "sha256:<hex>" of the model file; empty for a PVC source.
	// +kubebuilder:validation:MaxLength=71
	// +optional
	Digest string `json:"digest,omitempty"`
}

// FailedRollout records a rollout that failed or was refused.
type FailedRollout struct {
	// generation is the metadata.generation whose rollout failed.
	// +required
	Generation int64 `json:"generation"`

	// revision is the model revision that failed to roll out.
	// +required
	Revision ModelRevision `json:"revision"`

	// reason is how the rollout failed, as the reason of the model's conditions:
	// RolloutFailed (no progress within spec.progressDeadlineSeconds), ModelLoadFailed (a pod
	// exited because the model cannot load), UnsupportedModel or InvalidModel (the operator's
	// own load of the file refused it, and no pod was moved to it). Empty means RolloutFailed.
	// +kubebuilder:validation:Enum=RolloutFailed;ModelLoadFailed;UnsupportedModel;InvalidModel
	// +optional
	Reason string `json:"reason,omitempty"`

	// message is why the rollout was judged failed: the serving Deployment's or pod's report,
	// or the runtime's refusal naming the operator, its domain and the node.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Message string `json:"message,omitempty"`
}

// PredictionModel is an ONNX model served over the Open Inference Protocol (KServe v2 REST).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 48 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1035 label of at most 48 characters: it names the Services the operator creates (NAME-predictor)"
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=pm,categories=freightcast
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`,description="Serving pods that loaded the model"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PredictionModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired model and serving configuration.
	// +required
	Spec PredictionModelSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status PredictionModelStatus `json:"status,omitempty"`
}

// PredictionModelList is a list of PredictionModels.
// +kubebuilder:object:root=true
type PredictionModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PredictionModel `json:"items"`
}
