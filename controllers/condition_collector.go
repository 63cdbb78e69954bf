package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// collectTimeout bounds the cache reads of one scrape.
const collectTimeout = 5 * time.Second

// The kind label values of freightcast_condition.
const (
	kindPredictionModel = "PredictionModel"
	kindFreightPipeline = "FreightPipeline"
)

// conditionCollector exports freightcast_condition: 1 while a PredictionModel's or
// FreightPipeline's condition is True, 0 while it is False or Unknown. Like cert-manager's
// certificate collector it reads the informer cache at scrape time and emits constant metrics,
// so the series are exactly the conditions the objects hold: the reconcilers set nothing, and a
// deleted object or a condition no longer reported leaves nothing to forget.
type conditionCollector struct {
	cache client.Reader
	desc  *prometheus.Desc
}

// NewConditionCollector exports the conditions of the objects that cache holds, at each scrape.
func NewConditionCollector(cache client.Reader) prometheus.Collector {
	return &conditionCollector{cache: cache, desc: prometheus.NewDesc("freightcast_condition",
		"1 while the object's status condition of this type is True, 0 while it is False or Unknown.",
		[]string{"kind", "namespace", "name", "type"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *conditionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *conditionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	var models freightcastv1alpha1.PredictionModelList
	if err := c.cache.List(ctx, &models); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("listing PredictionModels: %w", err))
	}
	for i := range models.Items {
		m := &models.Items[i]
		c.collect(ch, kindPredictionModel, m.Namespace, m.Name, m.Status.Conditions)
	}
	var pipelines freightcastv1alpha1.FreightPipelineList
	if err := c.cache.List(ctx, &pipelines); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("listing FreightPipelines: %w", err))
	}
	for i := range pipelines.Items {
		p := &pipelines.Items[i]
		c.collect(ch, kindFreightPipeline, p.Namespace, p.Name, p.Status.Conditions)
	}
}

func (c *conditionCollector) collect(ch chan<- prometheus.Metric, kind, namespace, name string, conditions []metav1.Condition) {
	for _, cond := range conditions {
		v := 0.0
		if cond.Status == metav1.ConditionTrue {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, kind, namespace, name, cond.Type)
	}
}

// registeredWhileLeading registers collector on reg while the manager leads, as the metrics the
// reconcilers set are only set by the leader, and unregisters it when the manager stops, so that
// a later manager in the same process (a test's) can register its own.
type registeredWhileLeading struct {
	reg       prometheus.Registerer
	collector prometheus.Collector
}

// Start implements manager.Runnable.
func (r registeredWhileLeading) Start(ctx context.Context) error {
	if err := r.reg.Register(r.collector); err != nil {
		return fmt.Errorf("registering the operator's metrics collector: %w", err)
	}
	<-ctx.Done()
	r.reg.Unregister(r.collector)
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (registeredWhileLeading) NeedLeaderElection() bool { return true }
