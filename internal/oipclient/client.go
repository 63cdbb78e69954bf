// Package oipclient calls a model over the Open Inference Protocol v2 REST API (KServe v2): its
// metadata (GET /v2/models/{name}) and its infer endpoint (POST /v2/models/{name}/infer, JSON
// tensors). An inference pool scores through it when its model runs in another server
// (worker.RemoteModel). It knows nothing of Kubernetes.
package oipclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/worker"
)

// maxResponseBytes caps what the client reads of one answer; a model that sends more is
// treated as not answering.
const maxResponseBytes = 64 << 20

// Config is how to reach a model.
type Config struct {
	// BaseURL is the server's root, e.g. http://m-predictor.ns.svc:8080 (the /v2 paths are
	// appended).
	BaseURL string
	// Model and Version address the model; an empty Version means the server's choice.
	Model, Version string
	// TokenFile, when set, holds the bearer token sent with every request: its first line.
	TokenFile string
	// TrustFiles, for an https BaseURL, are the PEM files whose certificates the server's must
	// chain to (the first that exists and is not empty; see ServerTrust); none means the
	// system's roots.
	TrustFiles []string
	// HTTPClient sends the requests; nil means a client with no timeout of its own (each
	// request has its context's deadline) and the TLS of TrustFiles.
	HTTPClient *http.Client
}

// Client is one model on one OIP server. It is safe for concurrent use.
type Client struct {
	http        *http.Client
	metadataURL string
	inferURL    string
	token       string
	meta        *model.Metadata
}

var _ worker.RemoteModel = (*Client)(nil)

// Dial reads the model's metadata: the inputs and outputs Infer sends and expects. It fails
// when the server does not answer or the model is not there; callers retry.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("oipclient: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Model == "" || strings.Contains(cfg.Model, "/") || strings.Contains(cfg.Version, "/") {
		return nil, fmt.Errorf("oipclient: model %q version %q: a name must be non-empty and free of '/'", cfg.Model, cfg.Version)
	}
	path := strings.TrimSuffix(base.String(), "/") + "/v2/models/" + url.PathEscape(cfg.Model)
	if cfg.Version != "" {
		path += "/versions/" + url.PathEscape(cfg.Version)
	}
	c := &Client{http: cfg.HTTPClient, metadataURL: path, inferURL: path + "/infer"}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = ServerTrust(cfg.TrustFiles...)
		c.http = &http.Client{Transport: t}
	}
	if c.token, err = ReadToken(cfg.TokenFile); err != nil {
		return nil, err
	}
	body, err := c.do(ctx, http.MethodGet, c.metadataURL, nil)
	if err != nil {
		return nil, err
	}
	if c.meta, err = parseMetadata(body); err != nil {
		return nil, fmt.Errorf("oipclient: model metadata of %s: %w", c.metadataURL, err)
	}
	return c, nil
}

// Metadata is the model's inputs and outputs as its server describes them.
func (c *Client) Metadata() *model.Metadata { return c.meta }

// Infer sends one infer request and fills outputs from the answer. A 400 wraps
// worker.ErrRejected; every other failure is the model not answering now.
func (c *Client) Infer(ctx context.Context, inputs, outputs []*model.Tensor) error {
	if len(inputs) != len(c.meta.Inputs) || len(outputs) != len(c.meta.Outputs) {
		return fmt.Errorf("oipclient: %d inputs and %d outputs given, the model has %d and %d", len(inputs), len(outputs), len(c.meta.Inputs), len(c.meta.Outputs))
	}
	req := inferRequest{Inputs: make([]requestTensor, len(inputs))}
	for i, t := range inputs {
		data, err := tensorData(t)
		if err != nil {
			return fmt.Errorf("oipclient: input %s: %w", c.meta.Inputs[i].Name, err)
		}
		req.Inputs[i] = requestTensor{Name: c.meta.Inputs[i].Name, Datatype: c.meta.Inputs[i].DataType, Shape: t.Shape, Data: data}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("oipclient: encoding the request: %w", err)
	}
	answer, err := c.do(ctx, http.MethodPost, c.inferURL, body)
	if err != nil {
		return err
	}
	return fillOutputs(answer, c.meta.Outputs, outputs)
}

// do sends one request and returns the body of a 200.
func (c *Client) do(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("oipclient: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oipclient: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("oipclient: reading the answer of %s: %w", url, err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("oipclient: the answer of %s exceeds %d bytes", url, maxResponseBytes)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return data, nil
	case resp.StatusCode == http.StatusBadRequest:
		return nil, fmt.Errorf("%w: %s: %s", worker.ErrRejected, resp.Status, errorMessage(data))
	default:
		return nil, fmt.Errorf("oipclient: %s %s: %s: %s", method, url, resp.Status, errorMessage(data))
	}
}

// errorMessage is an OIP error body's message, or the start of whatever the body is.
func errorMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return truncate(e.Error, 512)
	}
	return truncate(string(body), 512)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

type inferRequest struct {
	Inputs []requestTensor `json:"inputs"`
}

type requestTensor struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
	Data     any    `json:"data"`
}

// ReadToken reads the bearer token a remote model is called with: the first token the model's
// tokens file accepts, read as the model's server reads it (httpauth: comments and blank lines
// skipped, a bare token or client=NAME token=TOKEN), "" when file is "". A file with no token is
// an error: the pool could never be let in.
func ReadToken(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("oipclient: token: %w", err)
	}
	for n, line := range strings.Split(string(b), "\n") {
		token, _, ok, err := httpauth.ParseLine(line)
		if err != nil {
			return "", fmt.Errorf("oipclient: token file %s, line %d: %w", file, n+1, err)
		}
		if ok {
			return token, nil
		}
	}
	return "", fmt.Errorf("oipclient: token file %s holds no token", file)
}

// TensorMetadata is one input or output of an OIP model metadata answer (REST or gRPC).
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// parseMetadata reads an OIP model metadata answer.
func parseMetadata(body []byte) (*model.Metadata, error) {
	var md struct {
		Inputs  []TensorMetadata `json:"inputs"`
		Outputs []TensorMetadata `json:"outputs"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, err
	}
	return NewMetadata(md.Inputs, md.Outputs)
}

// NewMetadata is the model.Metadata a remote model's metadata answer describes, whichever
// protocol brought it: both clients score the same models, so they accept the same ones.
func NewMetadata(inputs, outputs []TensorMetadata) (*model.Metadata, error) {
	if len(inputs) == 0 || len(outputs) == 0 {
		return nil, errors.New("it lists no inputs or no outputs")
	}
	meta := &model.Metadata{}
	for _, side := range []struct {
		from []TensorMetadata
		to   *[]model.TensorInfo
	}{{inputs, &meta.Inputs}, {outputs, &meta.Outputs}} {
		for _, t := range side.from {
			dt, ok := dtypes[t.Datatype]
			if !ok || t.Name == "" {
				return nil, fmt.Errorf("tensor %q: datatype %q is not one a pipeline feeds or stores", t.Name, t.Datatype)
			}
			*side.to = append(*side.to, model.TensorInfo{Name: t.Name, DataType: t.Datatype, Shape: t.Shape, DType: dt})
		}
	}
	return meta, nil
}

// DType is the element type of an OIP datatype a remote model may take or give, false for one
// a pipeline neither feeds nor stores.
func DType(datatype string) (model.DType, bool) {
	dt, ok := dtypes[datatype]
	return dt, ok
}

// dtypes are the OIP datatypes the client sends and reads.
var dtypes = map[string]model.DType{
	"FP32": model.Float32, "FP64": model.Float64, "INT8": model.Int8, "INT16": model.Int16, "INT32": model.Int32,
	"INT64": model.Int64, "UINT8": model.Uint8, "UINT16": model.Uint16, "UINT32": model.Uint32, "UINT64": model.Uint64,
	"BOOL": model.Bool, "BYTES": model.String,
}

// tensorData is a tensor's values as the flat JSON array the protocol sends.
func tensorData(t *model.Tensor) (any, error) {
	switch t.DType {
	case model.Float32:
		return t.Float32, nil
	case model.Float64:
		return t.Float64, nil
	case model.Int64:
		return t.Int64, nil
	case model.Int32:
		return t.Int32, nil
	case model.Bool:
		return t.Bool, nil
	case model.String:
		return t.String, nil
	}
	return nil, fmt.Errorf("element type %s is not one features feed", t.DType)
}

type responseTensor struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int           `json:"shape"`
	Data     json.RawMessage `json:"data"`
}

// fillOutputs reads an infer answer into outputs, in the order of want. An answer that is not
// what the metadata promised is the server's fault, not the request's: no ErrRejected.
func fillOutputs(body []byte, want []model.TensorInfo, outputs []*model.Tensor) error {
	var resp struct {
		Outputs []responseTensor `json:"outputs"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("oipclient: the infer answer is not OIP JSON: %w", err)
	}
	for j, w := range want {
		i := indexOf(resp.Outputs, w.Name)
		if i < 0 {
			return fmt.Errorf("oipclient: the infer answer lacks output %q", w.Name)
		}
		if err := fillTensor(outputs[j], &resp.Outputs[i], w); err != nil {
			return fmt.Errorf("oipclient: output %q: %w", w.Name, err)
		}
	}
	return nil
}

func indexOf(ts []responseTensor, name string) int {
	for i := range ts {
		if ts[i].Name == name {
			return i
		}
	}
	return -1
}

// fillTensor decodes one answer tensor into dst, checking its datatype and that its data has
// as many values as its shape says.
func fillTensor(dst *model.Tensor, t *responseTensor, want model.TensorInfo) error {
	dt, ok := dtypes[t.Datatype]
	if !ok || t.Datatype != want.DataType {
		return fmt.Errorf("datatype %q, the metadata says %q", t.Datatype, want.DataType)
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
		n *= d
	}
	*dst = model.Tensor{DType: dt, Shape: append(dst.Shape[:0], t.Shape...)}
	var err error
	var got int
	switch dt {
	case model.Float32:
		got, err = decode(t.Data, &dst.Float32)
	case model.Float64:
		got, err = decode(t.Data, &dst.Float64)
	case model.Int8:
		got, err = decode(t.Data, &dst.Int8)
	case model.Int16:
		got, err = decode(t.Data, &dst.Int16)
	case model.Int32:
		got, err = decode(t.Data, &dst.Int32)
	case model.Int64:
		got, err = decode(t.Data, &dst.Int64)
	case model.Uint8:
		got, err = decode(t.Data, &dst.Uint8)
	case model.Uint16:
		got, err = decode(t.Data, &dst.Uint16)
	case model.Uint32:
		got, err = decode(t.Data, &dst.Uint32)
	case model.Uint64:
		got, err = decode(t.Data, &dst.Uint64)
	case model.Bool:
		got, err = decode(t.Data, &dst.Bool)
	case model.String:
		got, err = decode(t.Data, &dst.String)
	}
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%d values for shape %v", got, t.Shape)
	}
	return nil
}

// decode reads flat JSON data into dst and returns how many values it holds.
func decode[T any](data json.RawMessage, dst *[]T) (int, error) {
	if err := json.Unmarshal(data, dst); err != nil {
		return 0, fmt.Errorf("data: %w", err)
	}
	return len(*dst), nil
}
