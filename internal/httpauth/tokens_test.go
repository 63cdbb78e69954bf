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

func TestIdentities(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	file := "legacy-token\nclient=acme token=acme-secret\n  token=ops-secret   client=ops scopes=read-all\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Identity{
		"legacy-token": Anonymous,
		"acme-secret":  {Client: "acme"},
		"ops-secret":   {Client: "ops", ReadAll: true},
	}
	for token, want := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		got, ok := tokens.Authenticate(r)
		if !ok || got.Client != want.Client || got.ReadAll != want.ReadAll {
			t.Errorf("%s: got %+v, %v; want %+v", token, got, ok, want)
		}
	}
}

func TestParseLine(t *testing.T) {
	type result struct {
		Token string
		ID    Identity
		OK    bool
		Err   string
	}
	cases := map[string]struct {
		line string
		want result
	}{
		"blank":             {"   ", result{}},
		"comment":           {"# client=a token=b", result{}},
		"bare token":        {"  s3cr3t==  ", result{Token: "s3cr3t==", ID: Anonymous, OK: true}},
		"client and token":  {"client=acme token=x", result{Token: "x", ID: Identity{Client: "acme"}, OK: true}},
		"any order":         {"token=x scopes=read-all client=a.b-c_d", result{Token: "x", ID: Identity{Client: "a.b-c_d", ReadAll: true}, OK: true}},
		"no client":         {"token=x scopes=read-all", result{Err: "no client= field"}},
		"no token":          {"client=acme scopes=read-all", result{Err: "no token= field"}},
		"unknown scope":     {"client=a token=x scopes=write", result{Err: `unknown scope "write"`}},
		"unknown key":       {"client=a token=x tenant=y", result{Err: "field 3 has an unknown key"}},
		"repeated key":      {"client=a token=x token=y", result{Err: "field 3 repeats a key"}},
		"token with spaces": {"my secret token", result{Err: "field 1 is not key=value"}},
		"empty value":       {"client= token=x", result{Err: "field 1 is not key=value"}},
		"bad client":        {"client=a/b token=x", result{Err: `character '/' is not allowed`}},
		"long client":       {"client=" + strings.Repeat("a", MaxClientLen+1) + " token=x", result{Err: "1 to 64 characters"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			token, id, ok, err := ParseLine(tc.line)
			got := result{Token: token, ID: id, OK: ok}
			if err != nil {
				if tc.want.Err == "" || !strings.Contains(err.Error(), tc.want.Err) {
					t.Fatalf("error %v, want one containing %q", err, tc.want.Err)
				}
				got.Err = tc.want.Err
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKeyIsPerClientAndPerBareToken(t *testing.T) {
	set, err := parseFile([]byte("bare-one\nbare-two\nclient=acme token=a1\nclient=acme token=a2\n"))
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(set))
	for i, e := range set {
		keys[i] = e.id.Key()
	}
	if keys[0] == keys[1] || keys[2] != keys[3] || keys[2] != "client:acme" || keys[0] == "" {
		t.Errorf("keys %q: want one per bare token and one for acme", keys)
	}
	if Anonymous.Key() != "" {
		t.Errorf("the unauthenticated caller's key is %q, want the shared empty one", Anonymous.Key())
	}
}

func TestCanRead(t *testing.T) {
	acme := Identity{Client: "acme"}
	cases := map[string]struct {
		id     Identity
		client string
		want   bool
	}{
		"own data":                 {acme, "acme", true},
		"another client's":         {acme, "globex", false},
		"stored without a client":  {acme, "", false},
		"read-all, another's":      {Identity{Client: "ops", ReadAll: true}, "acme", true},
		"anonymous, without owner": {Anonymous, "", true},
	}
	for name, tc := range cases {
		if got := tc.id.CanRead(tc.client); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

func TestABadLineRefusesTheFileAndKeepsTheTokensBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("client=acme token=one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("client=acme token=one\nclient=b token=one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tokens.reload(); err == nil || !strings.Contains(err.Error(), "line 2: the same token as line 1") {
		t.Fatalf("reload error %v, want the duplicate named", err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer one")
	if id, ok := tokens.Authenticate(r); !ok || id.Client != "acme" {
		t.Errorf("after a bad reload: %+v, %v; want acme kept", id, ok)
	}
	if _, err := NewTokens(path, nil, nil); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("NewTokens error %v, want line 2 named", err)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"", "# c", "tok", "client=a token=b", "client=a token=b scopes=read-all", "a=b c", "token== client=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		token, id, ok, err := ParseLine(line)
		if err != nil {
			if ok {
				t.Fatal("ok with an error")
			}
			return
		}
		if !ok {
			return
		}
		if token == "" {
			t.Fatal("accepted an empty token")
		}
		if id.Client != "" {
			if verr := ValidClient(id.Client); verr != nil {
				t.Fatalf("accepted client %q: %v", id.Client, verr)
			}
		} else if id != Anonymous || id.Key() != "" {
			t.Fatalf("a nameless identity %+v that is not the anonymous one", id)
		}
	})
}
