// Package metrics holds every Prometheus metric Freightcast exports, operator and data plane alike.
// Names carry the freightcast_ prefix and counters end in _total. Operator metrics are registered on
// controller-runtime's metrics.Registry; data-plane metrics on the registry the serving process
// exposes at /metrics, so that tests can use a fresh registry each.
package metrics
