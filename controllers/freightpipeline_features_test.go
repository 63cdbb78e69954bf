package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// Without the webhook (this suite installs none), the controller refuses transforms that do
// not compile with a condition naming the feature, the expression and the error, and keeps
// the configuration the pods run; fixed, the new transforms reach the pods' config.
func TestFeatureTransformsFallBackToTheCondition(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "delay-risk")
	p := newPipeline(ns, "orders", "delay-risk")
	p.Spec.Features = []freightcastv1alpha1.FeatureTransform{
		{Name: "distance_km", Expression: "geo.distanceKm(event.shipment.from.lat, event.shipment.from.lon, event.shipment.to.lat, event.shipment.to.lon)"},
	}
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionFeaturesValid, metav1.ConditionTrue, freightcastv1alpha1.ReasonFeaturesCompiled)
	config := func() pipelineconfig.Config {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm); err != nil {
			t.Fatal(err)
		}
		cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := config().Transforms.Features; len(got) != 1 || got[0].Name != "distance_km" {
		t.Fatalf("the pods' config carries transforms %+v", got)
	}

	cases := map[string]struct {
		features []freightcastv1alpha1.FeatureTransform
		want     []string
	}{
		"a syntax error": {[]freightcastv1alpha1.FeatureTransform{{Name: "distance_km", Expression: "event.shipment.km *"}},
			[]string{`feature "distance_km": expression "event.shipment.km *"`, "Syntax error"}},
		"a string for a number": {[]freightcastv1alpha1.FeatureTransform{{Name: "port_congestion_index", Expression: "'high'"}},
			[]string{`feature "port_congestion_index"`, "results in string, but the feature must be a number"}},
		"a feature the model lacks": {[]freightcastv1alpha1.FeatureTransform{{Name: "speed", Expression: "1.0"}},
			[]string{`feature "speed": PredictionModel delay-risk has no such feature`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mustUpdate(t, p, func() { p.Spec.Features = tc.features })
			waitCondition(t, p, freightcastv1alpha1.ConditionFeaturesValid, metav1.ConditionFalse, freightcastv1alpha1.ReasonInvalidFeatureTransform)
			for _, typ := range []string{freightcastv1alpha1.ConditionFeaturesValid, freightcastv1alpha1.ConditionDegraded} {
				c := meta.FindStatusCondition(p.Status.Conditions, typ)
				for _, w := range tc.want {
					if c == nil || !strings.Contains(c.Message, w) {
						t.Errorf("%s: %+v does not say %q", typ, c, w)
					}
				}
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
				t.Errorf("Ready: %+v", c)
			}
			if got := config().Transforms.Features; len(got) != 1 || got[0].Name != "distance_km" || !strings.HasPrefix(got[0].Expression, "geo.distanceKm") {
				t.Errorf("the pods' config changed to %+v", got)
			}
		})
	}

	mustUpdate(t, p, func() {
		p.Spec.Features = []freightcastv1alpha1.FeatureTransform{{Name: "port_congestion_index", Expression: "lookup('ports', event.shipment.to.port, 0.3)"}}
		p.Spec.LookupTables = []freightcastv1alpha1.LookupTable{{Name: "ports", Values: map[string]string{"NLRTM": "0.82"}}}
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionFeaturesValid, metav1.ConditionTrue, freightcastv1alpha1.ReasonFeaturesCompiled)
	if cfg := config(); len(cfg.Transforms.Features) != 1 || cfg.Transforms.Features[0].Name != "port_congestion_index" || cfg.Transforms.Tables[0].Values["NLRTM"] != "0.82" {
		t.Errorf("the fixed transforms did not reach the pods' config: %+v", cfg.Transforms)
	}
}

func TestSetFeaturesValid(t *testing.T) {
	cases := map[string]struct {
		obs        featuresObservation
		wantStatus metav1.ConditionStatus // "" when the condition must be absent
		wantReason string
		wantInMsg  string
	}{
		"no transforms": {obs: featuresObservation{}},
		"compiled":      {obs: featuresObservation{declared: true}, wantStatus: metav1.ConditionTrue, wantReason: freightcastv1alpha1.ReasonFeaturesCompiled, wantInMsg: "2 feature transforms compiled"},
		"refused":       {obs: featuresObservation{declared: true, reason: freightcastv1alpha1.ReasonInvalidFeatureTransform, err: errors.New(`feature "x": expression "1 +": Syntax error`)}, wantStatus: metav1.ConditionFalse, wantReason: freightcastv1alpha1.ReasonInvalidFeatureTransform, wantInMsg: `feature "x": expression "1 +": Syntax error`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// A stale condition from an earlier spec must go when the transforms do.
			c := newConditionSetter([]metav1.Condition{{Type: freightcastv1alpha1.ConditionFeaturesValid, Status: metav1.ConditionFalse, Reason: "Old"}}, 3, time.Unix(0, 0))
			setFeaturesValid(c, tc.obs, 2)
			got := c.get(freightcastv1alpha1.ConditionFeaturesValid)
			if tc.wantStatus == "" {
				if got != nil {
					t.Errorf("condition %+v, want none", got)
				}
				return
			}
			if got == nil || got.Status != tc.wantStatus || got.Reason != tc.wantReason || !strings.Contains(got.Message, tc.wantInMsg) || got.ObservedGeneration != 3 {
				t.Errorf("got %+v, want %s/%s with %q", got, tc.wantStatus, tc.wantReason, tc.wantInMsg)
			}
		})
	}
}

// A lookup table kept in a ConfigMap: missing, or holding what is not a number, it is refused
// with a condition naming the table, the ConfigMap and the key, and the pods keep their config;
// once readable its values reach the pods' config, and an edit of the ConfigMap alone (no change
// to the pipeline) rolls the ingestion pods.
func TestLookupTableFromConfigMap(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "delay-risk")
	p := newPipeline(ns, "orders", "delay-risk")
	p.Spec.Features = []freightcastv1alpha1.FeatureTransform{{Name: "carrier_on_time_rate", Expression: "lookup('carriers', event.shipment.carrier, 0.85)"}}
	p.Spec.LookupTables = []freightcastv1alpha1.LookupTable{{Name: "carriers", ConfigMapRef: &freightcastv1alpha1.LookupTableConfigMapRef{Name: "carrier-rates"}}}
	mustCreate(t, p)

	wantMessage := func(reason string, want ...string) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, "FeaturesValid saying "+strings.Join(want, ", "), func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionFeaturesValid)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason {
				return fmt.Errorf("FeaturesValid %+v", c)
			}
			for _, w := range want {
				if !strings.Contains(c.Message, w) {
					return fmt.Errorf("FeaturesValid %q does not say %q", c.Message, w)
				}
			}
			return nil
		})
	}
	wantMessage(freightcastv1alpha1.ReasonInvalidLookupTable, `table "carriers": ConfigMap carrier-rates does not exist`)

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "carrier-rates"},
		Data: map[string]string{"Maersk": "0.71", "MSC": "fast"}}
	mustCreate(t, cm)
	wantMessage(freightcastv1alpha1.ReasonInvalidLookupTable, `table "carriers": ConfigMap carrier-rates: key "MSC": the value "fast" is not a finite number`)

	mustUpdate(t, cm, func() { cm.Data = map[string]string{"Maersk": "0.71", "MSC": "0.64"} })
	waitCondition(t, p, freightcastv1alpha1.ConditionFeaturesValid, metav1.ConditionTrue, freightcastv1alpha1.ReasonFeaturesCompiled)
	// config is the tables the pods' config carries and its digest.
	config := func() (pipelineconfig.Transforms, string) {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm); err != nil {
			return pipelineconfig.Transforms{}, err.Error()
		}
		cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
		if err != nil {
			return pipelineconfig.Transforms{}, err.Error()
		}
		// The ingestion pods' template carries this digest (annotationConfigDigest): a new
		// one rolls them.
		return cfg.Transforms, contentDigest([]byte(cm.Data[pipelineconfig.FileName]))
	}
	var digest string
	testenv.Eventually(t, 15*time.Second, "the table in the pods' config", func() error {
		tr, d := config()
		if len(tr.Tables) != 1 || tr.Tables[0].Values["MSC"] != "0.64" || d == "" {
			return fmt.Errorf("tables %+v, pods' config digest %q", tr.Tables, d)
		}
		digest = d
		return nil
	})

	// One key holding the whole table, for keys a ConfigMap's own cannot spell.
	mustUpdate(t, cm, func() { cm.Data = map[string]string{"rates.json": `{"Maersk": 0.71, "DHL Freight": 0.94}`} })
	mustUpdate(t, p, func() { p.Spec.LookupTables[0].ConfigMapRef.Key = "rates.json" })
	testenv.Eventually(t, 15*time.Second, "the edited table rolls the ingestion pods", func() error {
		tr, d := config()
		if len(tr.Tables) != 1 || tr.Tables[0].Values["DHL Freight"] != "0.94" || d == digest {
			return fmt.Errorf("tables %+v, pods' config digest %q (was %q)", tr.Tables, d, digest)
		}
		digest = d
		return nil
	})
	mustUpdate(t, cm, func() { cm.Data = map[string]string{"rates.json": `{"Maersk": 0.71, "DHL Freight": 0.95}`} })
	testenv.Eventually(t, 15*time.Second, "an edit of the ConfigMap alone rolls the ingestion pods", func() error {
		tr, d := config()
		if len(tr.Tables) != 1 || tr.Tables[0].Values["DHL Freight"] != "0.95" || d == digest {
			return fmt.Errorf("tables %+v, pods' config digest %q (was %q)", tr.Tables, d, digest)
		}
		return nil
	})

	mustUpdate(t, cm, func() { cm.Data = map[string]string{"rates.json": `{"Maersk": 0.71, "Maersk": 0.7}`} })
	wantMessage(freightcastv1alpha1.ReasonInvalidLookupTable, `key "rates.json"`, `the table's key "Maersk" is given twice`)
	if tr, _ := config(); len(tr.Tables) != 1 || tr.Tables[0].Values["DHL Freight"] != "0.95" {
		t.Errorf("the pods' config changed to %+v while the table is refused", tr.Tables)
	}
	// The ConfigMap deleted: refused by name, no crash.
	if err := k8s.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	wantMessage(freightcastv1alpha1.ReasonInvalidLookupTable, "ConfigMap carrier-rates does not exist")
}

// The API server refuses a table with both values and configMapRef, or neither.
func TestLookupTableTakesExactlyOneSource(t *testing.T) {
	ns := newNamespace(t)
	for name, table := range map[string]freightcastv1alpha1.LookupTable{
		"both":    {Name: "t", Values: map[string]string{"a": "1"}, ConfigMapRef: &freightcastv1alpha1.LookupTableConfigMapRef{Name: "rates"}},
		"neither": {Name: "t"},
	} {
		p := newPipeline(ns, "p-"+name, "m")
		p.Spec.LookupTables = []freightcastv1alpha1.LookupTable{table}
		err := k8s.Create(context.Background(), p)
		if err == nil || !strings.Contains(err.Error(), "a lookup table takes exactly one of values and configMapRef") {
			t.Errorf("%s: created, or refused for another reason: %v", name, err)
		}
	}
}
