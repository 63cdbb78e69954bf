package report

import (
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

type queryKind int

const (
	querySummary queryKind = iota
	queryTrend
	queryRiskiest
)

// Query is a report request's parameters, checked.
type Query struct {
	From, To time.Time
	// Tier is the index of the bucket width asked for (or chosen).
	Tier   int
	Top    int
	Output int
	Sort   string
	Client string
	Format string
}

// allowed are each kind's parameters; any other is refused, so that a misspelt one is not
// silently ignored.
var allowed = map[queryKind][]string{
	querySummary:  {"from", "to", "bucket", "top", "output", "sort", "client", "format"},
	queryTrend:    {"from", "to", "bucket", "output", "client", "format"},
	queryRiskiest: {"from", "to", "top", "client"},
}

// ParseQuery checks the raw query string of a report request; the error is a 400 that names
// the parameter.
func ParseQuery(cfg pipelineconfig.Reporting, raw string, kind queryKind, now time.Time) (Query, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return Query{}, badRequest("the query string is not URL-encoded: %v", err)
	}
	for k, vs := range values {
		if !slices.Contains(allowed[kind], k) {
			return Query{}, badRequest("unknown parameter %q; this report takes %v", k, allowed[kind])
		}
		if len(vs) > 1 {
			return Query{}, badRequest("parameter %q is given %d times", k, len(vs))
		}
	}
	q := Query{Top: DefaultTop, To: now.UTC(), Sort: values.Get("sort"), Client: values.Get("client"), Format: values.Get("format")}
	if v := values.Get("to"); v != "" {
		if q.To, err = time.Parse(time.RFC3339, v); err != nil {
			return Query{}, badRequest("to %q is not an RFC 3339 time like 2026-11-30T00:00:00Z", v)
		}
	}
	q.From = q.To.Add(-DefaultWindow)
	if v := values.Get("from"); v != "" {
		if q.From, err = time.Parse(time.RFC3339, v); err != nil {
			return Query{}, badRequest("from %q is not an RFC 3339 time like 2026-11-30T00:00:00Z", v)
		}
	}
	if !q.From.Before(q.To) {
		return Query{}, badRequest("from %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	tiers := cfg.Tiers()
	if v := values.Get("bucket"); v != "" {
		q.Tier = slices.IndexFunc(cfg.Buckets, func(b pipelineconfig.ReportBucket) bool { return b.Width == v })
		if q.Tier < 0 {
			return Query{}, badRequest("bucket %q is not one of the widths kept: %v", v, widths(cfg))
		}
	} else {
		// The finest tier that still holds from.
		q.Tier = len(tiers) - 1
		for i, t := range tiers {
			if now.Sub(q.From) <= t.Retention {
				q.Tier = i
				break
			}
		}
	}
	if kind == queryRiskiest {
		q.Tier = 0
	}
	if span := q.To.Sub(q.From); span > tiers[len(tiers)-1].Retention+tiers[len(tiers)-1].Width {
		return Query{}, badRequest("from %s to %s spans %s, more than the longest retention kept (%s)",
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), span, cfg.Buckets[len(tiers)-1].Retention)
	}
	if v := values.Get("top"); v != "" {
		if q.Top, err = strconv.Atoi(v); err != nil || q.Top < 1 || q.Top > MaxTop {
			return Query{}, badRequest("top %q is not a number from 1 to %d", v, MaxTop)
		}
	}
	if v := values.Get("output"); v != "" {
		q.Output = slices.IndexFunc(cfg.Outputs, func(o pipelineconfig.ReportOutput) bool { return o.Label() == v })
		if q.Output < 0 {
			return Query{}, badRequest("output %q is not reported; the outputs are %v", v, describe(cfg).Outputs)
		}
	}
	if !slices.Contains([]string{"", "mean", "count", "aboveThreshold"}, q.Sort) {
		return Query{}, badRequest("sort %q is not mean, count or aboveThreshold", q.Sort)
	}
	if !slices.Contains([]string{"", "json", "csv"}, q.Format) {
		return Query{}, badRequest("format %q is not json or csv", q.Format)
	}
	if q.Client != "" {
		if err := httpauth.ValidClient(q.Client); err != nil {
			return Query{}, badRequest("client: %v", err)
		}
	}
	return q, nil
}

func widths(cfg pipelineconfig.Reporting) []string {
	out := make([]string, len(cfg.Buckets))
	for i, b := range cfg.Buckets {
		out[i] = b.Width
	}
	return out
}
