package modelsource

import (
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

// FuzzParseCABundle: a CA bundle comes from a user's ConfigMap, read by the operator and by every
// pod that downloads the model. Whatever it holds, parsing answers a pool or an error, never a
// panic, and a pool only for a bundle of certificates.
func FuzzParseCABundle(f *testing.F) {
	ca := testcerts.NewCA(f)
	f.Add(ca.PEM)
	f.Add(append(append([]byte{}, ca.PEM...), ca.PEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("not pem"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, bundle []byte) {
		pool, err := ParseCABundle(bundle)
		if (pool == nil) == (err == nil) {
			t.Fatalf("pool %v with error %v: exactly one of them", pool != nil, err)
		}
		if err == nil && !strings.Contains(string(bundle), "-----BEGIN CERTIFICATE-----") {
			t.Fatalf("a bundle without a CERTIFICATE block was accepted: %q", bundle)
		}
	})
}
