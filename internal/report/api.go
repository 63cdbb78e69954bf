package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// Bounds of a query.
const (
	DefaultTop = 20
	MaxTop     = 1000
	// DefaultWindow is the window when from is not given.
	DefaultWindow = 24 * time.Hour
)

// API serves the report endpoints (docs/reporting.md, "API") over a Service. Tokens nil means
// the pipeline has no authentication: every caller reads everything.
type API struct {
	svc    *Service
	tokens *httpauth.Tokens
	now    func() time.Time
	// Page, when set, serves GET /v1/reports/ (the clients' page).
	Page http.Handler
}

// NewAPI serves svc; now may be nil.
func NewAPI(svc *Service, tokens *httpauth.Tokens, now func() time.Time) *API {
	if now == nil {
		now = time.Now
	}
	return &API{svc: svc, tokens: tokens, now: now}
}

// Paths the API answers: Prefix itself (the page), below it (a dimension, a value's trend), and
// the two colon actions.
const (
	Prefix       = "/v1/reports/"
	PathDescribe = "/v1/reports:describe"
	PathRiskiest = "/v1/reports:riskiest"
)

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("/v1/reports", a)
	mux.Handle(Prefix, a)
	mux.Handle(PathDescribe, a)
	mux.Handle(PathRiskiest, a)
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := a.serve(w, r); err != nil {
		var e *apiError
		if !errors.As(err, &e) {
			e = &apiError{status: http.StatusInternalServerError, msg: err.Error()}
		}
		switch e.status {
		case http.StatusUnauthorized:
			httpauth.SetChallenge(w.Header())
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "5")
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", "GET, HEAD")
		}
		writeJSON(w, e.status, map[string]string{"error": e.msg})
	}
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return &apiError{status: http.StatusMethodNotAllowed, msg: "only GET reads reports"}
	}
	path := r.URL.EscapedPath()
	if path == Prefix || path == "/v1/reports" {
		if a.Page == nil {
			return &apiError{status: http.StatusNotFound, msg: "the reports page is not in this build"}
		}
		a.Page.ServeHTTP(w, r)
		return nil
	}
	id := httpauth.Anonymous
	if a.tokens != nil {
		var ok bool
		if id, ok = a.tokens.Authenticate(r); !ok {
			return &apiError{status: http.StatusUnauthorized, msg: "missing or unknown bearer token"}
		}
	}
	if !a.svc.Ready() {
		return &apiError{status: http.StatusServiceUnavailable, msg: "reporting is restoring its state; retry shortly"}
	}
	cfg := a.svc.Config()
	switch {
	case path == PathDescribe:
		writeJSON(w, http.StatusOK, describe(cfg))
		return nil
	case path == PathRiskiest:
		q, err := ParseQuery(cfg, r.URL.RawQuery, queryRiskiest, a.now())
		if err != nil {
			return err
		}
		vis, err := visibility(id, q.Client)
		if err != nil {
			return err
		}
		var out []Shipment
		a.svc.Read(func(s *State) { out = s.Riskiest(Window{From: q.From, To: q.To, Visible: vis}, q.Top) })
		if out == nil {
			out = []Shipment{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"from": q.From, "to": q.To, "shipments": out})
		return nil
	}
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return &apiError{status: http.StatusNotFound, msg: "no such report"}
	}
	dimName, rawValue, isTrend := strings.Cut(rest, "/")
	d := slices.IndexFunc(cfg.Dimensions, func(x pipelineconfig.ReportDimension) bool { return x.Name == dimName })
	if d < 0 {
		return badRequest("dimension %q is not reported; the dimensions are %s", dimName, dimensionNames(cfg))
	}
	kind := querySummary
	if isTrend {
		kind = queryTrend
	}
	q, err := ParseQuery(cfg, r.URL.RawQuery, kind, a.now())
	if err != nil {
		return err
	}
	vis, err := visibility(id, q.Client)
	if err != nil {
		return err
	}
	w0 := Window{Tier: q.Tier, From: q.From, To: q.To, Visible: vis}
	csvOut := q.Format == "csv" || (q.Format == "" && strings.Contains(r.Header.Get("Accept"), "text/csv"))
	if isTrend {
		value, err := url.PathUnescape(rawValue)
		if err != nil || value == "" || strings.Contains(value, "/") {
			return badRequest("the value in the path is empty or not URL-escaped")
		}
		var points []Point
		a.svc.Read(func(s *State) { points = s.Trend(w0, d, q.Output, value) })
		if points == nil {
			points = []Point{}
		}
		if csvOut {
			return writeCSV(w, []string{"start", "count", "mean", "p50", "p90", "p99", "aboveThreshold"}, len(points), func(i int) []string {
				return append([]string{points[i].Start.Format(time.RFC3339)}, statsRow(points[i].Stats)...)
			})
		}
		writeJSON(w, http.StatusOK, map[string]any{"dimension": dimName, "value": value, "output": cfg.Outputs[q.Output].Label(),
			"from": q.From, "to": q.To, "bucket": cfg.Buckets[q.Tier].Width, "points": points})
		return nil
	}
	var values []Summary
	var all, other int
	a.svc.Read(func(s *State) { values, all, other = s.Summaries(w0, d, q.Output, q.Sort, q.Top) })
	truncated := all > len(values)
	if csvOut {
		return writeCSV(w, []string{"value", "count", "mean", "p50", "p90", "p99", "aboveThreshold"}, len(values), func(i int) []string {
			return append([]string{values[i].Value}, statsRow(values[i].Stats)...)
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"dimension": dimName, "output": cfg.Outputs[q.Output].Label(), "from": q.From, "to": q.To,
		"bucket": cfg.Buckets[q.Tier].Width, "threshold": cfg.Threshold, "values": values, "otherValues": other, "truncated": truncated})
	return nil
}

// visibility is which clients' aggregates id may read, narrowed to client when given.
func visibility(id httpauth.Identity, client string) (func(string) bool, error) {
	if client != "" {
		if !id.CanRead(client) {
			return nil, &apiError{status: http.StatusForbidden, msg: "client names another client than the token's"}
		}
		return func(c string) bool { return c == client }, nil
	}
	return id.CanRead, nil
}

func statsRow(s Stats) []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return []string{strconv.FormatUint(s.Count, 10), f(s.Mean), f(s.P50), f(s.P90), f(s.P99), strconv.FormatUint(s.AboveThreshold, 10)}
}

func writeCSV(w http.ResponseWriter, header []string, n int, row func(int) []string) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	for i := range n {
		r := row(i)
		// A value starting with a formula character would run in a spreadsheet.
		if r[0] != "" && strings.ContainsRune("=+-@", rune(r[0][0])) {
			r[0] = "'" + r[0]
		}
		_ = cw.Write(r)
	}
	cw.Flush()
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func dimensionNames(cfg pipelineconfig.Reporting) string {
	names := make([]string, len(cfg.Dimensions))
	for i, d := range cfg.Dimensions {
		names[i] = d.Name
	}
	return strings.Join(names, ", ")
}

type describeAnswer struct {
	Dimensions   []string                      `json:"dimensions"`
	Outputs      []string                      `json:"outputs"`
	Threshold    float64                       `json:"threshold"`
	Buckets      []pipelineconfig.ReportBucket `json:"buckets"`
	MaxValues    int                           `json:"maxValues"`
	TopShipments int                           `json:"topShipments"`
}

func describe(cfg pipelineconfig.Reporting) describeAnswer {
	out := describeAnswer{Threshold: cfg.Threshold, Buckets: cfg.Buckets, MaxValues: cfg.MaxValues, TopShipments: cfg.TopShipments}
	for _, d := range cfg.Dimensions {
		out.Dimensions = append(out.Dimensions, d.Name)
	}
	for _, o := range cfg.Outputs {
		out.Outputs = append(out.Outputs, o.Label())
	}
	return out
}
