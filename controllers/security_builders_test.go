package controllers

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// typedOf reads an apply configuration back as the object it describes.
func typedOf[T any](t *testing.T, ac any) *T {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	obj := new(T)
	if err := json.Unmarshal(b, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// securityView is what spec.auth and spec.tls change in a data-plane pod.
type securityView struct {
	Args         []string // the --tokens-file and --tls-* flags
	Mounts       map[string]string
	Secrets      map[string]string // volume → Secret name/key:path,...
	ProbeSchemes []corev1.URIScheme
}

func securityOf(d *appsv1.Deployment) securityView {
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	v := securityView{Mounts: map[string]string{}, Secrets: map[string]string{}}
	for _, a := range c.Args {
		for _, prefix := range []string{"--tokens-file=", "--tls-cert-file=", "--tls-key-file="} {
			if len(a) > len(prefix) && a[:len(prefix)] == prefix {
				v.Args = append(v.Args, a)
			}
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == authVolume || m.Name == tlsVolume {
			if !m.ReadOnly {
				v.Mounts[m.Name] = m.MountPath + " (writable!)"
				continue
			}
			v.Mounts[m.Name] = m.MountPath
		}
	}
	for _, vol := range pod.Volumes {
		if s := vol.Secret; s != nil {
			desc := s.SecretName
			for _, it := range s.Items {
				desc += " " + it.Key + ":" + it.Path
			}
			if ptr.Deref(s.DefaultMode, 0o644) != 0o440 {
				desc += " (mode not 0440)"
			}
			v.Secrets[vol.Name] = desc
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		v.ProbeSchemes = append(v.ProbeSchemes, p.HTTPGet.Scheme)
	}
	return v
}

var (
	httpProbes  = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTP, corev1.URISchemeHTTP}
	httpsProbes = []corev1.URIScheme{corev1.URISchemeHTTPS, corev1.URISchemeHTTPS, corev1.URISchemeHTTPS}
	tlsArgs     = []string{"--tls-cert-file=/etc/freightcast/tls/tls.crt", "--tls-key-file=/etc/freightcast/tls/tls.key"}
)

func TestDesiredPredictorAuthAndTLS(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		auth         *freightcastv1alpha1.BearerTokenAuth
		tls          *freightcastv1alpha1.TLSSpec
		want         securityView
		wantEndpoint string
		wantProtocol string
	}{
		"neither": {
			want:         securityView{Mounts: map[string]string{}, Secrets: map[string]string{}, ProbeSchemes: httpProbes},
			wantEndpoint: "http://risk-predictor.ns.svc:8080/v2/models/risk", wantProtocol: "http",
		},
		"tokens (default key)": {
			auth: &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}},
			want: securityView{Args: []string{"--tokens-file=/etc/freightcast/auth/tokens"},
				Mounts: map[string]string{"auth": "/etc/freightcast/auth"}, Secrets: map[string]string{"auth": "oip-tokens tokens:tokens"},
				ProbeSchemes: httpProbes},
			wantEndpoint: "http://risk-predictor.ns.svc:8080/v2/models/risk", wantProtocol: "http",
		},
		"tokens and TLS": {
			auth: &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens", Key: "clients"}},
			tls:  &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "risk-cert"}},
			want: securityView{Args: append([]string{"--tokens-file=/etc/freightcast/auth/tokens"}, tlsArgs...),
				Mounts:       map[string]string{"auth": "/etc/freightcast/auth", "tls": "/etc/freightcast/tls"},
				Secrets:      map[string]string{"auth": "oip-tokens clients:tokens", "tls": "risk-cert tls.crt:tls.crt tls.key:tls.key"},
				ProbeSchemes: httpsProbes},
			wantEndpoint: "https://risk-predictor.ns.svc:8080/v2/models/risk", wantProtocol: "https",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "risk", "cm")
			m.Spec.Auth, m.Spec.TLS = tc.auth, tc.tls
			d := typedOf[appsv1.Deployment](t, desiredPredictorDeployment(m, spec.SpecRevision(m, ""), testOptions))
			if diff := cmp.Diff(tc.want, securityOf(d)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			assertRestricted(t, desiredPredictorDeployment(m, spec.SpecRevision(m, ""), testOptions).Spec.Template.Spec)
			if got := predictorEndpoint(m); got != tc.wantEndpoint {
				t.Errorf("endpoint %s, want %s", got, tc.wantEndpoint)
			}
			svc := typedOf[corev1.Service](t, desiredPredictorService(m))
			if got := ptr.Deref(svc.Spec.Ports[0].AppProtocol, ""); got != tc.wantProtocol {
				t.Errorf("Service appProtocol %s, want %s", got, tc.wantProtocol)
			}
		})
	}
}

func TestDesiredIngestionTLS(t *testing.T) {
	t.Parallel()
	m := newModel("ns", "m", "cm")
	p := newPipeline("ns", "orders", "m")
	p.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "ingest-tokens"}}
	p.Spec.Ingestion.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "orders-cert"}}
	d := typedOf[appsv1.Deployment](t, desiredIngestionDeployment(p, m, "", "sha256:c", testOptions))
	want := securityView{Args: tlsArgs, // the tokens file's path travels in the pipeline config
		Mounts:       map[string]string{"auth": "/etc/freightcast/auth", "tls": "/etc/freightcast/tls"},
		Secrets:      map[string]string{"auth": "ingest-tokens tokens:tokens", "tls": "orders-cert tls.crt:tls.crt tls.key:tls.key"},
		ProbeSchemes: httpsProbes}
	if diff := cmp.Diff(want, securityOf(d)); diff != "" {
		t.Errorf("ingestion (-want +got):\n%s", diff)
	}
	if got := ingestionEndpoint(p); got != "https://orders-ingest.ns.svc:8080/v1/events" {
		t.Errorf("endpoint %s", got)
	}
	for component, wantProtocol := range map[string]string{componentIngestion: "https", componentInference: "http"} {
		svc := typedOf[corev1.Service](t, desiredPipelineService(p, "x", component))
		if got := ptr.Deref(svc.Spec.Ports[0].AppProtocol, ""); got != wantProtocol {
			t.Errorf("%s Service appProtocol %s, want %s", component, got, wantProtocol)
		}
	}
	// The inference pool is not a client endpoint: it keeps plain HTTP probes.
	infer := typedOf[appsv1.Deployment](t, desiredInferenceDeployment(p, m, "", "sha256:c", testOptions))
	if got := securityOf(infer); !slices.Equal(got.ProbeSchemes, httpProbes) || len(got.Args) != 0 {
		t.Errorf("inference pool: %+v", got)
	}
}

// TestDesiredPipelineNATSCredentials checks that every file the pipeline config points the NATS
// client at is mounted, read-only, from the Secret key of that name, in both Deployments.
func TestDesiredPipelineNATSCredentials(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		typ         freightcastv1alpha1.NATSCredentialsType
		tls         bool
		wantSecrets map[string]string
	}{
		"creds":               {typ: freightcastv1alpha1.NATSCreds, wantSecrets: map[string]string{"nats-credentials": "nats-orders creds:creds"}},
		"an NKey, with a CA":  {typ: freightcastv1alpha1.NATSNKey, tls: true, wantSecrets: map[string]string{"nats-credentials": "nats-orders nkey:nkey", "nats-ca": "nats-ca ca.crt:ca.crt"}},
		"user and password":   {typ: freightcastv1alpha1.NATSUserPassword, wantSecrets: map[string]string{"nats-credentials": "nats-orders user:user password:password"}},
		"a CA, no identity":   {tls: true, wantSecrets: map[string]string{"nats-ca": "nats-ca ca.crt:ca.crt"}},
		"neither: no volumes": {wantSecrets: map[string]string{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "m", "cm")
			p := newPipeline("ns", "orders", "m")
			if tc.typ != "" {
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "nats-orders"}, Type: tc.typ}
			}
			if tc.tls {
				p.Spec.Queue.TLS = &freightcastv1alpha1.QueueTLS{CASecretRef: freightcastv1alpha1.SecretReference{Name: "nats-ca"}}
			}
			creds := spec.Pipeline(p, m, "tls://nats:4222", 1).NATSCredentials
			files := slices.DeleteFunc([]string{creds.CredsFile, creds.NKeySeedFile, creds.UserFile, creds.PasswordFile, creds.CAFile},
				func(f string) bool { return f == "" })
			for _, d := range []*appsv1.Deployment{
				typedOf[appsv1.Deployment](t, desiredIngestionDeployment(p, m, "", "sha256:c", testOptions)),
				typedOf[appsv1.Deployment](t, desiredInferenceDeployment(p, m, "", "sha256:c", testOptions)),
			} {
				if diff := cmp.Diff(tc.wantSecrets, securityOf(d).Secrets); diff != "" {
					t.Errorf("%s: Secret volumes (-want +got):\n%s", d.Name, diff)
				}
				for _, f := range files {
					if !mountedFile(d, f) {
						t.Errorf("%s: the config's NATS file %s is not mounted read-only from its Secret", d.Name, f)
					}
				}
			}
		})
	}
}

// mountedFile reports whether file is a Secret item under a read-only mount of d's container.
func mountedFile(d *appsv1.Deployment, file string) bool {
	pod := d.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		if !m.ReadOnly {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if m.MountPath+"/"+it.Path == file {
					return true
				}
			}
		}
	}
	return false
}
