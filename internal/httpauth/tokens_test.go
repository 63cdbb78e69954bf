package httpauth

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("# a comment\n\n  alpha  \nbeta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		header string
		want   bool
	}{
		"no header":           {"", false},
		"a listed token":      {"Bearer alpha", true},
		"scheme in any case":  {"bearer beta", true},
		"an unknown token":    {"Bearer gamma", false},
		"the comment":         {"Bearer # a comment", false},
		"basic auth":          {"Basic YWxwaGE6", false},
		"bearer and no token": {"Bearer ", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if _, ok := tokens.Authenticate(r); ok != tc.want {
				t.Errorf("authenticated %v, want %v", ok, tc.want)
			}
		})
	}
}

func TestNewTokensNamesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent")
	if _, err := NewTokens(path, nil, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name %s", err, path)
	}
}
