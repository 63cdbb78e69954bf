package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestPredictionModelChecksTheDownloadsCABundle: a model downloaded from a private store names
// the CA bundle to trust in a ConfigMap. While the ConfigMap, or its key, is missing, or holds no
// valid certificate, the operator refuses the new revision with a condition naming
// spec.source.caBundle and the last good revision keeps serving; once it holds a CA, the serving
// pods mount it and download with it.
func TestPredictionModelChecksTheDownloadsCABundle(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	model := servingModel(t, ns)
	mustUpdate(t, model, func() {
		model.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.internal/m.onnx", SHA256: strings.Repeat("ab", 32),
			CABundle: &freightcastv1alpha1.CABundleSource{ConfigMap: freightcastv1alpha1.ConfigMapKeySelector{Name: "store-ca"}}}
	})

	refused := func(reason string, says ...string) {
		t.Helper()
		model = waitConditions(t, model, "Ready=False/"+reason, "Degraded=True/"+reason, "ModelLoaded=False/"+reason)
		msg := conditionMessage(model, freightcastv1alpha1.ConditionDegraded)
		for _, want := range append([]string{"spec.source.caBundle", "ConfigMap store-ca"}, says...) {
			if !strings.Contains(msg, want) {
				t.Errorf("Degraded message %q lacks %q", msg, want)
			}
		}
		assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	}
	refused(freightcastv1alpha1.ReasonSourceNotFound, "not found")
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.ReasonSourceNotFound)

	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-ca"}, Data: map[string]string{"other.crt": "x"}}
	mustCreate(t, ca)
	testWaitMessage(t, model, freightcastv1alpha1.ConditionDegraded, `no key "ca.crt"`)
	refused(freightcastv1alpha1.ReasonSourceNotFound, `no key "ca.crt"`)

	for what, bundle := range map[string]struct{ pem, says string }{
		"text":        {"not a certificate", "holds no PEM block"},
		"a key":       {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is a PRIVATE KEY, not a CERTIFICATE"},
		"broken cert": {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 1:"},
	} {
		t.Log(what)
		mustUpdate(t, ca, func() { ca.Data = map[string]string{"ca.crt": bundle.pem} })
		testWaitMessage(t, model, freightcastv1alpha1.ConditionDegraded, bundle.says)
		refused(freightcastv1alpha1.ReasonSourceInvalid, `key "ca.crt"`, bundle.says)
	}
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.ReasonSourceInvalid)

	// A valid bundle: the ConfigMap's watch wakes the model, and its pods move to the download.
	mustUpdate(t, ca, func() { ca.Data = map[string]string{"ca.crt": string(testcerts.NewCA(t).PEM)} })
	waitDeployment(t, 15*time.Second, ns, "m-predictor", "serving the download with the CA bundle", func(d *appsv1.Deployment) error {
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		if !slices.Contains(c.Args, "--model-uri=https://models.internal/m.onnx") || !slices.Contains(c.Args, "--model-ca-file=/etc/freightcast/model-ca/ca.crt") {
			return fmt.Errorf("args %v", c.Args)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == modelCAVolumeName && m.MountPath == modelCADir && m.ReadOnly
		}) {
			return fmt.Errorf("mounts %+v", c.VolumeMounts)
		}
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.ConfigMap != nil && v.ConfigMap.Name == "store-ca" && len(v.ConfigMap.Items) == 1 &&
				v.ConfigMap.Items[0].Key == "ca.crt" && v.ConfigMap.Items[0].Path == "ca.crt"
		}) {
			return fmt.Errorf("volumes %+v", pod.Volumes)
		}
		return nil
	})
	waitConditions(t, model, "Degraded=False/AsExpected", "Progressing=True/RollingOut")
}

// testWaitMessage waits until the model's condition typ says says.
func testWaitMessage(t testing.TB, model *freightcastv1alpha1.PredictionModel, typ, says string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s says %q", typ, says), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if msg := conditionMessage(model, typ); !strings.Contains(msg, says) {
			return fmt.Errorf("%s says %q", typ, msg)
		}
		return nil
	})
}
