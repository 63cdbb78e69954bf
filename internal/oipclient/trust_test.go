package oipclient_test

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oipclient"
	"github.com/freightcast/freightcast/internal/oipgrpc"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/worker"
)

// dialTLS reaches the stand-in over TLS on the transport named, trusting trustFiles.
func dialTLS(t *testing.T, rt *standInRuntime, protocol string, trustFiles []string) (worker.RemoteModel, error) {
	if protocol == "gRPC" {
		r, err := oipgrpc.DialRemote(context.Background(), oipgrpc.RemoteConfig{URL: "grpcs://" + rt.grpcAddr, Model: "freight-delay-risk", TrustFiles: trustFiles})
		if err == nil {
			t.Cleanup(func() { _ = r.Close() })
		}
		return r, err
	}
	return oipclient.Dial(context.Background(), oipclient.Config{BaseURL: "https://" + rt.addr, Model: "freight-delay-risk", TrustFiles: trustFiles})
}

// scoreOne sends one row and reads one delay risk back.
func scoreOne(t *testing.T, r worker.RemoteModel) error {
	t.Helper()
	row := make([]float32, 12)
	for i, v := range features(7) {
		row[i] = float32(v)
	}
	out := &model.Tensor{}
	if err := r.Infer(context.Background(), []*model.Tensor{model.NewTensor([]int{1, 12}, row)}, []*model.Tensor{out}); err != nil {
		return err
	}
	if len(out.Shape) == 0 || out.Shape[0] != 1 {
		t.Errorf("one row scored, answer of shape %v", out.Shape)
	}
	return nil
}

// A pool scoring a model served over TLS trusts what the model's TLS Secret holds, as the
// operator mounts it (spec.RemoteModel): ca.crt when cert-manager wrote one, else the served
// certificate itself; another authority is refused with the file it was checked against.
func TestRemoteScoringOverTLSTrustsTheModelsSecret(t *testing.T) {
	m := testenv.FreightModel(t)
	ca := testcerts.NewCA(t)
	rt := &standInRuntime{t: t, addr: "127.0.0.1:0", grpcAddr: "127.0.0.1:0", model: m, tls: ca.ServerConfig(t)}
	rt.start()
	t.Cleanup(rt.stop)
	served := rt.tls.Certificates[0]

	write := func(dir, name string, data []byte) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	secret := func(caPEM, certPEM []byte) []string {
		dir := t.TempDir()
		files := []string{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt")}
		if caPEM != nil {
			write(dir, "ca.crt", caPEM)
		}
		if certPEM != nil {
			write(dir, "tls.crt", certPEM)
		}
		return files
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: served.Certificate[0]})
	cases := map[string]struct {
		trust   []string
		wantErr []string
	}{
		"ca.crt":                       {trust: secret(ca.PEM, leafPEM)},
		"no ca.crt: the served cert":   {trust: secret(nil, leafPEM)},
		"an empty ca.crt":              {trust: secret([]byte{}, leafPEM)},
		"another authority":            {trust: secret(testcerts.NewCA(t).PEM, leafPEM), wantErr: []string{"not trusted by", "ca.crt", "unknown authority"}},
		"neither file":                 {trust: secret(nil, nil), wantErr: []string{"none of", "ca.crt", "tls.crt"}},
		"a ca.crt that is not PEM":     {trust: secret([]byte("not a certificate"), leafPEM), wantErr: []string{"ca.crt holds no PEM certificate"}},
		"no trust files: system roots": {trust: nil, wantErr: []string{"unknown authority"}},
	}
	for _, protocol := range []string{"REST", "gRPC"} {
		for name, tc := range cases {
			t.Run(protocol+"/"+name, func(t *testing.T) {
				r, err := dialTLS(t, rt, protocol, tc.trust)
				if tc.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
					if err := scoreOne(t, r); err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil {
					t.Fatal("dialled a server it should not trust")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
			})
		}
	}
}

// cert-manager rotates the model's certificate, to one of another authority: the pool, which
// keeps running, reads the Secret's new files when it reconnects, and scores on.
func TestRemoteScoringOverTLSFollowsARotatedSecret(t *testing.T) {
	m := testenv.FreightModel(t)
	first, second := testcerts.NewCA(t), testcerts.NewCA(t)
	rt := &standInRuntime{t: t, addr: "127.0.0.1:0", grpcAddr: "127.0.0.1:0", model: m, tls: first.ServerConfig(t)}
	rt.start()
	t.Cleanup(rt.stop)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, first.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	remotes := map[string]worker.RemoteModel{}
	for _, protocol := range []string{"REST", "gRPC"} {
		r, err := dialTLS(t, rt, protocol, []string{caFile})
		if err != nil {
			t.Fatal(err)
		}
		remotes[protocol] = r
	}

	// The model's pod is replaced with the new certificate; the kubelet updates the mounted
	// Secret by replacing the file.
	rt.stop()
	rt.tls = second.ServerConfig(t)
	rt.start()
	next := caFile + ".new"
	if err := os.WriteFile(next, second.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, caFile); err != nil {
		t.Fatal(err)
	}
	for protocol, r := range remotes {
		// gRPC reconnects in the background: the first calls may still find the old
		// connection closing.
		testenv.Eventually(t, 10*time.Second, protocol+" scores after the rotation", func() error { return scoreOne(t, r) })
	}
}
