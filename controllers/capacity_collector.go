package controllers

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
)

// capacityReadTimeout bounds one server's capacity read at scrape time, so that an unreachable
// server costs a scrape this much at most.
const capacityReadTimeout = 3 * time.Second

var (
	storeUpDesc = prometheus.NewDesc("freightcast_queue_store_up",
		"1 when the NATS server's JetStream answered the last capacity read, 0 when it did not.", []string{"nats"}, nil)
	storeLimitDesc = prometheus.NewDesc("freightcast_queue_store_limit_bytes",
		"The most the account's streams may reserve across the servers: the account's JetStream limit, or max_file_store times the servers (--nats-max-file-store, --nats-servers). Absent when neither is known.", []string{"nats"}, nil)
	storeReservedDesc = prometheus.NewDesc("freightcast_queue_store_reserved_bytes",
		"What the account's streams reserve: maxBytes times replicas, summed.", []string{"nats"}, nil)
	storeAvailableDesc = prometheus.NewDesc("freightcast_queue_store_available_bytes",
		"What is left to reserve: limit minus reserved. A pipeline needs 3 x maxBytes x replicas. Absent when the limit is unknown.", []string{"nats"}, nil)
	storeUsedDesc = prometheus.NewDesc("freightcast_queue_store_used_bytes",
		"What the account's streams hold now.", []string{"nats"}, nil)
	orphanDesc = prometheus.NewDesc("freightcast_queue_orphaned_stream_reserved_bytes",
		"A stream the operator created for a FreightPipeline that no longer exists (deletionPolicy Retain, or a deletion that gave up), with what it reserves; docs/operate.md says how to remove it.",
		[]string{"nats", "namespace", "pipeline", "stream"}, nil)
)

// capacityCollector exports the JetStream store of every NATS server the operator's pipelines
// use — what may be reserved, what is, what is left — and the streams whose pipeline is gone.
// It reads the servers when scraped, as cert-manager's collectors read their cache: there is no
// state to keep in step, and a series exists exactly while what it describes does.
type capacityCollector struct {
	reader client.Reader
	queue  JetStreamConnector
	opts   Options
}

func (c *capacityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeUpDesc, storeLimitDesc, storeReservedDesc, storeAvailableDesc, storeUsedDesc, orphanDesc} {
		ch <- d
	}
}

func (c *capacityCollector) Collect(ch chan<- prometheus.Metric) {
	ctx := context.Background()
	var pipelines freightcastv1alpha1.FreightPipelineList
	if err := c.reader.List(ctx, &pipelines); err != nil {
		ctrl.Log.WithName("capacity").Error(err, "listing FreightPipelines")
		return
	}
	exists := map[[2]string]bool{}
	urls := []string{}
	if c.opts.DefaultNATSURL != "" {
		urls = append(urls, c.opts.DefaultNATSURL)
	}
	for _, p := range pipelines.Items {
		exists[[2]string{p.Namespace, p.Name}] = true
		if u := pipelineNATSURL(&p, c.opts); u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	for _, u := range urls {
		c.collectServer(ctx, ch, u, func(ns, name string) bool { return exists[[2]string{ns, name}] })
	}
}

func (c *capacityCollector) collectServer(ctx context.Context, ch chan<- prometheus.Metric, natsURL string, exists func(ns, name string) bool) {
	label := redactURL(natsURL)
	var limit queue.StoreLimit
	if natsURL == c.opts.DefaultNATSURL {
		limit = c.opts.NATSStore
	}
	capacity, err := c.read(ctx, natsURL, limit)
	if err != nil {
		ctrl.Log.WithName("capacity").V(1).Info("reading the JetStream store", "nats", label, "error", err.Error())
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0, label)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1, label)
	if capacity.Limit >= 0 {
		ch <- prometheus.MustNewConstMetric(storeLimitDesc, prometheus.GaugeValue, float64(capacity.Limit), label)
		ch <- prometheus.MustNewConstMetric(storeAvailableDesc, prometheus.GaugeValue, float64(capacity.Available()), label)
	}
	ch <- prometheus.MustNewConstMetric(storeReservedDesc, prometheus.GaugeValue, float64(capacity.Reserved), label)
	ch <- prometheus.MustNewConstMetric(storeUsedDesc, prometheus.GaugeValue, float64(capacity.Used), label)
	for _, s := range capacity.Orphans(exists) {
		ch <- prometheus.MustNewConstMetric(orphanDesc, prometheus.GaugeValue, float64(s.Reservation()), label, s.Namespace, s.Pipeline, s.Name)
	}
}

func (c *capacityCollector) read(ctx context.Context, natsURL string, limit queue.StoreLimit) (queue.Capacity, error) {
	js, err := c.queue.JetStream(natsURL)
	if err != nil {
		return queue.Capacity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, capacityReadTimeout)
	defer cancel()
	return queue.ReadCapacity(ctx, js, limit)
}

// redactURL drops any user and password from a (comma-separated) NATS URL, for a label.
func redactURL(natsURL string) string {
	parts := strings.Split(natsURL, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = nil
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
