package oip

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/version"
)

// route answers one request and returns the endpoint it counts under and the status it wrote,
// for the metrics.
type route func(w http.ResponseWriter, r *http.Request) (endpoint string, code int)

// routes builds the server's ServeMux. Patterns carry no method: each route checks it, so that a
// wrong one gets this API's JSON 405 rather than the mux's plain text. Every path but /metrics
// is also served with one trailing slash, as KServe's clients sometimes send it. With
// ProbesOnly the mux stops after the probes and /metrics.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	if s.metrics != nil {
		mux.Handle("/metrics", s.handler(false, func(w http.ResponseWriter, r *http.Request) (string, int) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				return "metrics", s.methodNotAllowed(w, "GET")
			}
			s.metrics.ServeHTTP(w, r)
			return "metrics", http.StatusOK
		}))
	}
	// The probes stay open when the rest needs a bearer token.
	s.handle(mux, "/v2/health/live", false, s.get("health_live", func(w http.ResponseWriter, _ *http.Request) int {
		return s.writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	}))
	s.handle(mux, "/v2/health/ready", false, s.get("health_ready", func(w http.ResponseWriter, _ *http.Request) int {
		code := http.StatusOK
		if !s.Ready() {
			code = http.StatusServiceUnavailable
		}
		return s.writeJSON(w, code, map[string]bool{"ready": code == http.StatusOK})
	}))
	notFound := func(w http.ResponseWriter, r *http.Request) (string, int) {
		return "not_found", s.fail(w, http.StatusNotFound, metrics.ReasonNotFound, fmt.Sprintf("no route for %s", r.URL.Path))
	}
	mux.Handle("/", s.handler(false, notFound))
	if s.cfg.ProbesOnly {
		return mux
	}
	s.handle(mux, "/v2", true, s.get("server_metadata", func(w http.ResponseWriter, _ *http.Request) int {
		return s.writeJSON(w, http.StatusOK, map[string]any{"name": "freightcast", "version": version.Version, "extensions": []string{}})
	}))
	s.handle(mux, "/v2/models", true, s.get("models_list", func(w http.ResponseWriter, _ *http.Request) int {
		return s.writeJSON(w, http.StatusOK, map[string]any{"models": []map[string]any{{
			"name": s.cfg.ModelName, "versions": []string{s.cfg.ModelVersion}, "platform": Platform, "ready": s.Ready(),
		}}})
	}))
	for _, model := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		s.handle(mux, model, true, s.forModel(s.get("model_metadata", s.modelMetadata)))
		s.handle(mux, model+"/ready", true, s.forModel(s.get("model_ready", s.modelReady)))
		s.handle(mux, model+"/infer", true, s.forModel(s.inferRoute))
	}
	// Below /v2 an unknown path needs a token as much as a known one: a 404 tells what exists.
	mux.Handle("/v2/", s.handler(true, notFound))
	return mux
}

// handle serves h at pattern, and at pattern with a trailing slash.
func (s *Server) handle(mux *http.ServeMux, pattern string, auth bool, h route) {
	hh := s.handler(auth, h)
	mux.Handle(pattern, hh)
	mux.Handle(pattern+"/{$}", hh)
}

// handler wraps a route with the bearer token check (when auth is set and the server has
// tokens) and the request metrics.
func (s *Server) handler(auth bool, h route) http.Handler {
	auth = auth && s.cfg.Tokens != nil
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		endpoint, code := "unauthorized", 0
		if auth && !s.authenticated(r) {
			httpauth.SetChallenge(w.Header())
			code = s.fail(w, http.StatusUnauthorized, metrics.ReasonUnauthorized, "missing or unknown bearer token")
		} else {
			endpoint, code = h(w, r)
		}
		d := time.Since(start).Seconds()
		if endpoint == "infer" && code == http.StatusOK {
			s.inferOK.Observe(d)
			return
		}
		s.cfg.Metrics.RequestDuration.WithLabelValues(endpoint, strconv.Itoa(code)).Observe(d)
	})
}

func (s *Server) authenticated(r *http.Request) bool {
	_, ok := s.cfg.Tokens.Authenticate(r)
	return ok
}

// forModel answers 404 unless the path names this server's model (and version, if it names one).
func (s *Server) forModel(h route) route {
	return func(w http.ResponseWriter, r *http.Request) (string, int) {
		name := r.PathValue("model")
		if v := r.PathValue("version"); v != "" && v != s.cfg.ModelVersion {
			return "not_found", s.fail(w, http.StatusNotFound, metrics.ReasonNotFound,
				fmt.Sprintf("model %q has no version %q (it has %q)", name, v, s.cfg.ModelVersion))
		}
		if name != s.cfg.ModelName {
			return "not_found", s.fail(w, http.StatusNotFound, metrics.ReasonNotFound,
				fmt.Sprintf("unknown model %q (this server serves %q)", name, s.cfg.ModelName))
		}
		return h(w, r)
	}
}

// get answers GET and HEAD with h and any other method with 405.
func (s *Server) get(endpoint string, h func(w http.ResponseWriter, r *http.Request) int) route {
	return func(w http.ResponseWriter, r *http.Request) (string, int) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return endpoint, s.methodNotAllowed(w, "GET")
		}
		return endpoint, h(w, r)
	}
}

func (s *Server) modelMetadata(w http.ResponseWriter, _ *http.Request) int {
	lm := s.model.Load()
	if lm == nil {
		return s.fail(w, http.StatusServiceUnavailable, metrics.ReasonNotReady, fmt.Sprintf("model %q is not loaded yet", s.cfg.ModelName))
	}
	return s.write(w, http.StatusOK, lm.metadata)
}

func (s *Server) modelReady(w http.ResponseWriter, _ *http.Request) int {
	code := http.StatusOK
	if !s.Ready() {
		code = http.StatusServiceUnavailable
	}
	return s.writeJSON(w, code, map[string]any{"name": s.cfg.ModelName, "ready": code == http.StatusOK})
}

func (s *Server) inferRoute(w http.ResponseWriter, r *http.Request) (string, int) {
	if r.Method != http.MethodPost {
		return "infer", s.methodNotAllowed(w, "POST")
	}
	if s.tracer != nil {
		return "infer", s.tracedInfer(w, r)
	}
	return "infer", s.infer(w, r, nil)
}
