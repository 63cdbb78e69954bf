// Package page is the clients' report page: one HTML document, embedded in the binary, that reads
// the report API of its own origin and draws its charts as inline SVG. Nothing is fetched from
// anywhere else (docs/reporting.md, "The page").
package page

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strconv"
)

//go:embed index.html app.js style.css
var files embed.FS

// The script and style are inlined so that the page is one answer at the one path the API
// leaves for it (every other path below /v1/reports/ is a dimension); the policy allows exactly
// these two by hash, and nothing but same-origin requests besides. The icon is an empty data:
// image so that the browser does not ask the API for /favicon.ico.
var document, policy = build()

func build() ([]byte, string) {
	read := func(name string) []byte {
		b, err := files.ReadFile(name)
		if err != nil {
			panic(err) // embedded at build time: cannot be missing
		}
		return b
	}
	script, style := read("app.js"), read("style.css")
	doc := bytes.Replace(read("index.html"), []byte("{{SCRIPT}}"), script, 1)
	doc = bytes.Replace(doc, []byte("{{STYLE}}"), style, 1)
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return doc, "default-src 'self'; script-src " + hash(script) + "; style-src " + hash(style) +
		"; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Handler serves the page to GET and HEAD.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET reads the page", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Length", strconv.Itoa(len(document)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(document)
	})
}
