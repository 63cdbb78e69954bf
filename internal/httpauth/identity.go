package httpauth

import (
	"errors"
	"fmt"
	"strings"
)

// ScopeReadAll lets a client read every client's events, predictions and feed, not only its own.
const ScopeReadAll = "read-all"

// MaxClientLen bounds a client name: it travels in a header of every queued event.
const MaxClientLen = 64

// Identity is who presents a token.
type Identity struct {
	// Client names the client; empty for the anonymous client of a token line without a name
	// (the one-token-a-line format of earlier releases) and for requests when no tokens file
	// is configured.
	Client string
	// ReadAll is the read-all scope.
	ReadAll bool
	// token is the digest of a bare token, which names no client.
	token Digest
}

// Key names the budget of a per-client limit: the client's name, shared by all its tokens;
// for a bare token its digest, so that each keeps the budget of its own it had before tokens
// named clients; empty for the anonymous caller without authentication.
func (id Identity) Key() string {
	switch {
	case id.Client != "":
		return "client:" + id.Client
	case id.token != Digest{}:
		return "token:" + string(id.token[:])
	}
	return ""
}

// Anonymous is the identity of a request when authentication is off, and of a token given as a
// bare line: it reads everything, as every token could before tokens named clients.
var Anonymous = Identity{ReadAll: true}

// CanRead reports whether id may read data stored for client (empty: stored without a client,
// by an anonymous caller or before events carried their client).
func (id Identity) CanRead(client string) bool {
	return id.ReadAll || (client != "" && client == id.Client)
}

// ParseLine reads one line of a tokens file. Blank lines and lines starting with '#' are
// skipped (ok false, no error). A line is either
//
//	a bare token (no whitespace): the anonymous client with the read-all scope, as before
//	tokens named clients;
//	space-separated key=value fields: token=… (required), client=… (required) and
//	scopes=… (optional, comma-separated; read-all is the only scope).
//
// For example "client=acme token=9f2c… scopes=read-all". The error never quotes the token.
func ParseLine(line string) (token string, id Identity, ok bool, _ error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", Identity{}, false, nil
	}
	fields := strings.Fields(line)
	if len(fields) == 1 {
		return line, Anonymous, true, nil
	}
	seen := map[string]bool{}
	for i, f := range fields {
		key, value, found := strings.Cut(f, "=")
		if !found || value == "" {
			return "", Identity{}, false, fmt.Errorf("field %d is not key=value with a value (a line of several fields is client=NAME token=TOKEN [scopes=read-all])", i+1)
		}
		if seen[key] {
			return "", Identity{}, false, fmt.Errorf("field %d repeats a key", i+1)
		}
		seen[key] = true
		switch key {
		case "token":
			token = value
		case "client":
			if err := ValidClient(value); err != nil {
				return "", Identity{}, false, err
			}
			id.Client = value
		case "scopes":
			for _, s := range strings.Split(value, ",") {
				if s != ScopeReadAll {
					return "", Identity{}, false, fmt.Errorf("unknown scope %q; the scopes are: %s", s, ScopeReadAll)
				}
				id.ReadAll = true
			}
		default:
			// Not quoted: a mangled line may hold a piece of a token here.
			return "", Identity{}, false, fmt.Errorf("field %d has an unknown key; the keys are client, token and scopes", i+1)
		}
	}
	switch {
	case token == "":
		return "", Identity{}, false, errors.New("no token= field")
	case id.Client == "":
		return "", Identity{}, false, errors.New("no client= field")
	}
	return token, id, true, nil
}

// ValidClient reports why name cannot name a client: it must be 1 to MaxClientLen letters,
// digits, '-', '_' or '.', so that it fits a NATS header and a log line as it is.
func ValidClient(name string) error {
	if name == "" || len(name) > MaxClientLen {
		return fmt.Errorf("client name must be 1 to %d characters, got %d", MaxClientLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("client name %q: character %q is not allowed (letters, digits, '-', '_', '.')", name, c)
		}
	}
	return nil
}
