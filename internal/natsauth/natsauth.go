// Package natsauth issues the NATS credentials of a Freightcast install, in NATS's decentralized
// (JWT) authentication: an operator, a system account, the Freightcast account with its JetStream
// storage limit, a signing key of that account, and users signed with it — the Freightcast
// operator's own, and one per pipeline whose permissions are queue.PipelinePermissions.
//
// The servers only trust the operator and preload the two accounts (ServerConfig); users are
// listed nowhere on the server. A new pipeline's credentials are one more user signed with the
// account's signing key, so they need no change to the servers, and whoever holds the signing
// key — the platform engineer, not the Freightcast operator — decides who gets them.
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/freightcast/freightcast/internal/queue"
)

// Keys are an install's operator, system account and Freightcast account, with the account's
// signing key. The seeds are secrets; the JWTs and public keys are not.
type Keys struct {
	Operator, System, Account Identity
	// Signing is the Freightcast account's signing key: it signs users.
	Signing Identity
}

// Identity is an NKey and, for the operator and the accounts, its JWT.
type Identity struct {
	Seed   []byte
	Public string
	JWT    string
}

// Files in a Keys directory (Save, Load).
const (
	fileOperatorSeed = "operator.nk"
	fileOperatorJWT  = "operator.jwt"
	fileSystemSeed   = "system.nk"
	fileSystemJWT    = "system.jwt"
	fileAccountSeed  = "account.nk"
	fileAccountJWT   = "account.jwt"
	fileSigningSeed  = "signing.nk"
	// FileServerConfig is the servers' authorization configuration (ServerConfig).
	FileServerConfig = "auth.conf"
	// FileOperatorCreds holds the Freightcast operator's user credentials.
	FileOperatorCreds = "operator.creds"
)

// AccountName is the NATS account Freightcast's streams live in.
const AccountName = "FREIGHTCAST"

// New makes the keys of an install. storeLimit is the Freightcast account's JetStream file
// storage limit in bytes, across all servers (the servers' max_file_store times their number,
// or less); -1 leaves it to the servers.
func New(storeLimit int64) (*Keys, error) {
	if storeLimit == 0 || storeLimit < -1 {
		return nil, fmt.Errorf("natsauth: the account's store limit must be positive, or -1 for none, got %d", storeLimit)
	}
	op, err := newIdentity(nkeys.CreateOperator)
	if err != nil {
		return nil, err
	}
	sys, err := newIdentity(nkeys.CreateAccount)
	if err != nil {
		return nil, err
	}
	acc, err := newIdentity(nkeys.CreateAccount)
	if err != nil {
		return nil, err
	}
	signing, err := newIdentity(nkeys.CreateAccount)
	if err != nil {
		return nil, err
	}
	opKP, _ := nkeys.FromSeed(op.Seed)

	oc := jwt.NewOperatorClaims(op.Public)
	oc.Name = "freightcast"
	oc.SystemAccount = sys.Public
	if op.JWT, err = oc.Encode(opKP); err != nil {
		return nil, fmt.Errorf("natsauth: operator JWT: %w", err)
	}
	sc := jwt.NewAccountClaims(sys.Public)
	sc.Name = "SYS"
	if sys.JWT, err = sc.Encode(opKP); err != nil {
		return nil, fmt.Errorf("natsauth: system account JWT: %w", err)
	}
	ac := jwt.NewAccountClaims(acc.Public)
	ac.Name = AccountName
	ac.SigningKeys.Add(signing.Public)
	// JetStream on, file storage only: Freightcast keeps nothing in memory streams.
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{DiskStorage: storeLimit, MemoryStorage: 0, Streams: -1, Consumer: -1, MaxAckPending: -1}
	if acc.JWT, err = ac.Encode(opKP); err != nil {
		return nil, fmt.Errorf("natsauth: account JWT: %w", err)
	}
	return &Keys{Operator: op, System: sys, Account: acc, Signing: signing}, nil
}

func newIdentity(create func() (nkeys.KeyPair, error)) (Identity, error) {
	kp, err := create()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return Identity{}, fmt.Errorf("natsauth: %w", err)
	}
	return Identity{Seed: seed, Public: pub}, nil
}

// ServerConfig is the authorization part of nats.conf: trust the operator, preload the system
// and Freightcast accounts. It holds no secret.
func (k *Keys) ServerConfig() string {
	return fmt.Sprintf(`# Freightcast's NATS authorization (freightcast nats-auth): decentralized JWT authentication.
# Users are not listed here: any user signed by the account's signing key may connect, with the
# permissions its JWT carries.
operator: %s
system_account: %s
resolver: MEMORY
resolver_preload: {
  %s: %s
  %s: %s
}
`, k.Operator.JWT, k.System.Public, k.System.Public, k.System.JWT, k.Account.Public, k.Account.JWT)
}

// ServerOptions configures an in-process server as ServerConfig does a nats-server.
func (k *Keys) ServerOptions(o *server.Options) error {
	oc, err := jwt.DecodeOperatorClaims(k.Operator.JWT)
	if err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	resolver := &server.MemAccResolver{}
	for _, a := range []Identity{k.System, k.Account} {
		if err := resolver.Store(a.Public, a.JWT); err != nil {
			return fmt.Errorf("natsauth: %w", err)
		}
	}
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.AccountResolver = resolver
	o.SystemAccount = k.System.Public
	return nil
}

// Issue signs a user named name with perms, and returns its credentials file: the user's JWT
// and NKey seed, as nats.UserCredentials reads it.
func (k *Keys) Issue(name string, perms queue.Permissions) ([]byte, error) {
	signer, err := nkeys.FromSeed(k.Signing.Seed)
	if err != nil {
		return nil, fmt.Errorf("natsauth: signing key: %w", err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = k.Account.Public
	uc.Permissions.Pub.Allow.Add(perms.Publish...)
	uc.Permissions.Sub.Allow.Add(perms.Subscribe...)
	uc.Permissions.Pub.Deny.Add(perms.DenyPublish...)
	token, err := uc.Encode(signer)
	if err != nil {
		return nil, fmt.Errorf("natsauth: user JWT: %w", err)
	}
	return jwt.FormatUserConfig(token, seed)
}

// IssuePipeline signs the user of pipeline namespace/name: it may use that pipeline's subjects,
// stream, consumer and bucket, and nothing else.
func (k *Keys) IssuePipeline(namespace, name string) ([]byte, error) {
	return k.Issue("pipeline "+namespace+"/"+name, queue.PipelinePermissions(queue.TopologyFor(namespace, name)))
}

// IssueReporting signs the user of pipeline namespace/name's reporting role: its consumer of the
// predictions bucket and its snapshot store, nothing else (queue.ReportingPermissions).
func (k *Keys) IssueReporting(namespace, name string) ([]byte, error) {
	return k.Issue("reporting "+namespace+"/"+name, queue.ReportingPermissions(queue.TopologyFor(namespace, name)))
}

// IssueOperator signs the Freightcast operator's user: the JetStream API of the account.
func (k *Keys) IssueOperator() ([]byte, error) {
	return k.Issue("freightcast-operator", queue.OperatorPermissions())
}

// Save writes the keys into dir: seeds readable by the owner only, and the server's
// configuration beside them.
func (k *Keys) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("natsauth: %w", err)
	}
	files := map[string]struct {
		data   string
		secret bool
	}{
		fileOperatorSeed: {string(k.Operator.Seed), true}, fileOperatorJWT: {k.Operator.JWT, false},
		fileSystemSeed: {string(k.System.Seed), true}, fileSystemJWT: {k.System.JWT, false},
		fileAccountSeed: {string(k.Account.Seed), true}, fileAccountJWT: {k.Account.JWT, false},
		fileSigningSeed: {string(k.Signing.Seed), true}, FileServerConfig: {k.ServerConfig(), false},
	}
	for name, f := range files {
		mode := os.FileMode(0o644)
		if f.secret {
			mode = 0o600
		}
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("natsauth: %s exists: keys are never overwritten (a new operator would lock every user out)", path)
		}
		if err := os.WriteFile(path, []byte(f.data), mode); err != nil {
			return fmt.Errorf("natsauth: %w", err)
		}
	}
	return nil
}

// Load reads the keys Save wrote. Only what issuing users needs must be there: the account's
// JWT and the signing key's seed; the rest is read when present.
func Load(dir string) (*Keys, error) {
	read := func(name string, required bool) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && !required {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("natsauth: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	k := &Keys{}
	var err error
	if k.Account.JWT, err = read(fileAccountJWT, true); err != nil {
		return nil, err
	}
	ac, err := jwt.DecodeAccountClaims(k.Account.JWT)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s: %w", fileAccountJWT, err)
	}
	k.Account.Public = ac.Subject
	signing, err := read(fileSigningSeed, true)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(signing))
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s: %w", fileSigningSeed, err)
	}
	k.Signing.Seed = []byte(signing)
	k.Signing.Public, _ = kp.PublicKey()
	if !ac.SigningKeys.Contains(k.Signing.Public) {
		return nil, fmt.Errorf("natsauth: the key in %s is not a signing key of the account in %s", fileSigningSeed, fileAccountJWT)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{fileOperatorJWT, &k.Operator.JWT}, {fileSystemJWT, &k.System.JWT}} {
		if *f.dst, err = read(f.name, false); err != nil {
			return nil, err
		}
	}
	if k.Operator.JWT != "" {
		oc, err := jwt.DecodeOperatorClaims(k.Operator.JWT)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %s: %w", fileOperatorJWT, err)
		}
		k.Operator.Public = oc.Subject
		k.System.Public = oc.SystemAccount
	}
	return k, nil
}
