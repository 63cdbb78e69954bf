package queue

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

func TestCredentialsValidate(t *testing.T) {
	cases := map[string]struct {
		c  Credentials
		ok bool
	}{
		"none":                    {c: Credentials{}, ok: true},
		"creds":                   {c: Credentials{CredsFile: "c"}, ok: true},
		"user and password":       {c: Credentials{UserFile: "u", PasswordFile: "p"}, ok: true},
		"user without password":   {c: Credentials{UserFile: "u"}},
		"creds and nkey":          {c: Credentials{CredsFile: "c", NKeySeedFile: "n"}},
		"CA and client cert":      {c: Credentials{CAFile: "ca", CertFile: "c", KeyFile: "k"}, ok: true},
		"client cert without key": {c: Credentials{CertFile: "c"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if err := tc.c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectWith connects through a Connector with creds and reports the error.
func connectWith(t *testing.T, url string, creds Credentials) error {
	t.Helper()
	opts, err := creds.Options()
	if err != nil {
		return err
	}
	c := NewConnector("queue-test", opts...)
	defer c.Close()
	_, err = c.JetStream(url)
	return err
}

func TestConnectorWithUserAndPasswordFiles(t *testing.T) {
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		o.Users = []*server.User{{Username: "freightcast", Password: "s3cret"}}
	}))
	dir := t.TempDir()
	// As a Secret key mounts them: the value and a newline.
	good := Credentials{UserFile: writeFile(t, dir, "user", "freightcast\n"), PasswordFile: writeFile(t, dir, "password", "s3cret\n")}
	if err := connectWith(t, srv.URL(), good); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	bad := Credentials{UserFile: good.UserFile, PasswordFile: writeFile(t, dir, "wrong", "guess")}
	if err := connectWith(t, srv.URL(), bad); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("with a wrong password: err = %v, want ErrUnreachable", err)
	}
	if err := connectWith(t, srv.URL(), Credentials{}); err == nil {
		t.Fatal("connected without credentials to a server that requires them")
	}
	if _, err := (Credentials{UserFile: filepath.Join(dir, "missing"), PasswordFile: good.PasswordFile}).Options(); err == nil {
		t.Fatal("a missing user file is not reported at startup")
	}
}

func TestConnectorWithNKeySeed(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	}))
	if err := connectWith(t, srv.URL(), Credentials{NKeySeedFile: writeFile(t, t.TempDir(), "seed", string(seed))}); err != nil {
		t.Fatalf("with the NKey seed: %v", err)
	}
	if _, err := (Credentials{NKeySeedFile: writeFile(t, t.TempDir(), "seed", "not a seed")}).Options(); err == nil {
		t.Fatal("a malformed seed file is not reported at startup")
	}
}

func TestConnectorWithMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", string(ca.PEM))
	serverCert, serverKey := ca.WriteFiles(t, t.TempDir(), "nats")
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: caFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		o.TLSConfig = tlsConfig
		o.TLSVerify = true
		o.TLSTimeout = 2
	}))
	clientCert, clientKey := ca.WriteFiles(t, t.TempDir(), "freightcast-operator")
	if err := connectWith(t, srv.URL(), Credentials{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}); err != nil {
		t.Fatalf("with the CA and a client certificate: %v", err)
	}
	if err := connectWith(t, srv.URL(), Credentials{CAFile: caFile}); err == nil {
		t.Fatal("connected without a client certificate to a server that verifies clients")
	}
	other := testcerts.NewCA(t)
	if err := connectWith(t, srv.URL(), Credentials{CAFile: writeFile(t, dir, "other.crt", string(other.PEM)), CertFile: clientCert, KeyFile: clientKey}); err == nil {
		t.Fatal("connected while trusting another CA than the server's")
	}
}
