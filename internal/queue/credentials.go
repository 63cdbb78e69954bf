package queue

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Credentials are the files a NATS client authenticates with and verifies its server by. They
// are paths, never values: the operator and the data-plane pods read Secrets that the kubelet
// mounted, and the operator itself never reads a Secret through the Kubernetes API. At most one
// of CredsFile, NKeySeedFile and UserFile may be set.
type Credentials struct {
	// CredsFile is a NATS credentials file: a user JWT and its NKey seed, as `nsc` and
	// `freightcast nats-auth` write them. The file is read again at every reconnect, so a
	// rotated Secret is picked up without a restart.
	CredsFile string `json:"credsFile,omitempty"`
	// NKeySeedFile holds a user NKey seed (SU...), for servers that list users by public key.
	NKeySeedFile string `json:"nkeySeedFile,omitempty"`
	// UserFile and PasswordFile hold a user name and its password, one value each (a final
	// newline is ignored); read again at every reconnect.
	UserFile     string `json:"userFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate. With it the client
	// speaks TLS only and verifies the server.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate, for servers that verify their clients.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// IsZero reports whether no file is set: an anonymous, plain connection.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// Validate reports the first combination that cannot work.
func (c Credentials) Validate() error {
	identities := 0
	for _, f := range []string{c.CredsFile, c.NKeySeedFile, c.UserFile} {
		if f != "" {
			identities++
		}
	}
	switch {
	case identities > 1:
		return errors.New("queue: give one of a creds file, an NKey seed file or a user and password file, not several")
	case (c.UserFile == "") != (c.PasswordFile == ""):
		return errors.New("queue: a NATS user file and password file go together")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("queue: a NATS client certificate file and key file go together")
	}
	return nil
}

// Options turns the files into connection options. Files read once (the NKey seed, the CA and
// client certificate) are read here, so that a missing or malformed file fails at startup with
// its name; the creds and password files are read at each connect.
func (c Credentials) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("queue: NATS creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("queue: NATS NKey seed file %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case c.UserFile != "":
		// Read now to fail early; read again at each connect to follow a rotation.
		if _, _, err := c.userInfo(); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfoHandler(func() (string, string) {
			user, password, _ := c.userInfo()
			return user, password
		}))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			return nil, fmt.Errorf("queue: NATS CA file: %w", err)
		}
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return opts, nil
}

func (c Credentials) userInfo() (string, string, error) {
	user, err := readValue(c.UserFile)
	if err != nil {
		return "", "", fmt.Errorf("queue: NATS user file: %w", err)
	}
	password, err := readValue(c.PasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("queue: NATS password file: %w", err)
	}
	return user, password, nil
}

// readValue reads a one-value file as a Secret key mounts it: the value, maybe with a newline.
func readValue(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	return string(b), nil
}

// PipelineOptions are the connection options of a pipeline's pods: their credentials, and replies
// delivered under the pipeline's own inbox prefix, which is all PipelinePermissions lets them
// subscribe to.
func PipelineOptions(t Topology, c Credentials) ([]nats.Option, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	return append(opts, nats.CustomInboxPrefix(t.InboxPrefix())), nil
}
