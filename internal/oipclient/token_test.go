package oipclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pool presents the first token its model's server accepts, whatever form the model's
// tokens Secret takes: comments and blank lines first, bare tokens, or named clients.
func TestReadTokenReadsTheFileAsTheServerDoes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, want, wantErr string
	}{
		{name: "bare", file: "s3cret\nother\n", want: "s3cret"},
		{name: "comments first", file: "# rotated 2026-12-01\n\n  s3cret  \n", want: "s3cret"},
		{name: "named client", file: "# pools\nclient=pool token=s3cret scopes=read-all\n", want: "s3cret"},
		{name: "no token", file: "# nothing yet\n\n", wantErr: "holds no token"},
		{name: "bad line", file: "client=pool token=s3cret scopes=admin\n", wantErr: "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "tokens")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadToken(path)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ReadToken = %q, %v; want an error containing %q", got, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Fatalf("ReadToken = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
