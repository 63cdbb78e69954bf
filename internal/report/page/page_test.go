package page

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestPageIsOneSelfContainedDocument(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(method, "/v1/reports/", nil))
		h := rec.Header()
		if rec.Code != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || !strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'self'; script-src 'sha256-") {
			t.Fatalf("%s: %d %v", method, rec.Code, h)
		}
		if method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD answered a body of %d bytes", rec.Body.Len())
		}
	}
	// The placeholders are filled once each, the script cannot close its own element, and
	// nothing names another origin or writes HTML from data.
	if bytes.Contains(document, []byte("{{")) || bytes.Count(document, []byte("</script>")) != 1 || bytes.Count(document, []byte("</style>")) != 1 {
		t.Error("the document is not assembled as intended")
	}
	for _, u := range regexp.MustCompile(`[a-z]+://[^\s'"]*`).FindAll(document, -1) {
		if string(u) != "http://www.w3.org/2000/svg" {
			t.Errorf("the page names %s", u)
		}
	}
	if m := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`).Find(document); m != nil {
		t.Errorf("the page contains %q", m)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/reports/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
