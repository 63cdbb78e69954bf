//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClientsFollowTheirOwnPredictions is issue 16's "done when" on real pods: two clients with
// tokens of their own send events; one follows its predictions on the push feed, sees an event
// the inference pool could not predict dead-lettered with its reason, and neither can see the
// other's data by id, by batchGet or on the feed.
func TestClientsFollowTheirOwnPredictions(t *testing.T) {
	ns := newNamespace(t, "clients")
	ctx := context.Background()
	tokens := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ingest-tokens"},
		Data: map[string][]byte{"tokens": []byte("client=acme token=acme-e2e-token\nclient=globex token=globex-e2e-token\n")}}
	if err := k8s.Create(ctx, tokens); err != nil {
		t.Fatal(err)
	}
	deployModel(t, ns)
	applyYAML(t, ns, strings.Replace(pipelineYAML("clients", 1, 1, "30s"), "  ingestion:\n",
		"  ingestion:\n    auth: {secretRef: {name: ingest-tokens}}\n", 1))
	waitPipelineReady(t, ns, "clients", 3*time.Minute)
	base := "http://" + exposeOnLoopback(t, ns, "clients-ingest", "http")
	const acme, globex = "acme-e2e-token", "globex-e2e-token"

	call := func(method, path, token string, body []byte) (int, map[string]any, error) {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		data, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(data, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%d %q: %w", resp.StatusCode, data, err)
		}
		return resp.StatusCode, out, nil
	}
	event := func(id string, value string) string {
		var b strings.Builder
		fmt.Fprintf(&b, `{"id":%q,"features":{`, id)
		for i, f := range []string{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road", "carrier_on_time_rate",
			"port_congestion_index", "weather_severity", "month_sin", "month_cos", "customs_complexity", "dwell_time_hours"} {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%s", f, value)
		}
		b.WriteString("}}")
		return b.String()
	}
	send := func(token string, events ...string) {
		t.Helper()
		body := []byte("[" + strings.Join(events, ",") + "]")
		eventually(t, 30*time.Second, "POST events", func() error {
			code, out, err := call(http.MethodPost, "/v1/events", token, body)
			if err == nil && code != http.StatusAccepted {
				err = fmt.Errorf("%d %v", code, out)
			}
			return err
		})
	}
	status := func(token, id, want string) map[string]any {
		t.Helper()
		var got map[string]any
		eventually(t, time.Minute, id+" "+want, func() error {
			_, out, err := call(http.MethodGet, "/v1/events/"+id, token, nil)
			if err != nil {
				return err
			}
			if got = out; out["status"] != want {
				return fmt.Errorf("%v", out)
			}
			return nil
		})
		return got
	}

	// acme follows its feed from the start of the retained predictions.
	feed := openE2EFeed(t, base, acme, "0")

	send(globex, event("globex-1", "0.5"), event("globex-2", "0.25"))
	// Features at the edge of FP32 pass ingestion and make the model's output NaN: the pool
	// dead-letters the event (non_finite) instead of storing it.
	send(acme, event("acme-1", "0.5"), event("acme-2", "0.25"), event("acme-poison", "3e38"))
	status(globex, "globex-1", "predicted")
	status(globex, "globex-2", "predicted")
	dead := status(acme, "acme-poison", "dead_lettered")
	if dl, _ := dead["deadLetter"].(map[string]any); dl["reason"] != "non_finite" || !strings.Contains(fmt.Sprint(dl["detail"]), "NaN") {
		t.Errorf("the dead letter's status: %v", dead)
	}
	send(acme, event("acme-last", "0.1"))
	got := feed.until(t, "acme-last")
	if want := []string{"acme-1", "acme-2", "acme-last"}; strings.Join(sorted(got), ",") != strings.Join(want, ",") {
		t.Errorf("acme's feed: %v, want %v (and nothing of globex's)", got, want)
	}

	// globex sees nothing of acme's: by id, by batchGet, on its feed from the start.
	for _, path := range []string{"/v1/predictions/acme-1", "/v1/events/acme-1", "/v1/events/acme-poison"} {
		if code, out, err := call(http.MethodGet, path, globex, nil); err != nil || code != http.StatusNotFound {
			t.Errorf("globex GET %s: %d %v %v", path, code, out, err)
		}
	}
	code, out, err := call(http.MethodPost, "/v1/predictions:batchGet", globex, []byte(`{"ids":["acme-1","globex-1"]}`))
	if err != nil || code != 200 || !strings.Contains(fmt.Sprint(out["results"]), "status:not_found") || !strings.Contains(fmt.Sprint(out["results"]), "status:predicted") {
		t.Errorf("globex batchGet: %d %v %v", code, out, err)
	}
	theirs := openE2EFeed(t, base, globex, "0")
	send(globex, event("globex-last", "0.1"))
	if got := theirs.until(t, "globex-last"); strings.Join(sorted(got), ",") != "globex-1,globex-2,globex-last" {
		t.Errorf("globex's feed: %v", got)
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

type e2eFeed struct {
	sc *bufio.Scanner
}

func openE2EFeed(t *testing.T, base, token, last string) *e2eFeed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	var resp *http.Response
	// The Service's port may not answer yet right after the pipeline is Ready.
	eventually(t, 30*time.Second, "the feed", func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/predictions:stream", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Last-Event-ID", last)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("feed: %d", resp.StatusCode)
		}
		return nil
	})
	t.Cleanup(func() { resp.Body.Close() })
	return &e2eFeed{sc: bufio.NewScanner(resp.Body)}
}

// until reads the feed's predictions up to the one of id stop and returns their ids.
func (f *e2eFeed) until(t *testing.T, stop string) []string {
	t.Helper()
	var ids []string
	for f.sc.Scan() {
		line := f.sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var rec struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line[6:]), &rec); err != nil || rec.Error != "" {
			t.Fatalf("feed data %q: %v", line, err)
		}
		if ids = append(ids, rec.ID); rec.ID == stop {
			return ids
		}
	}
	t.Fatalf("the feed ended before %s: %v (%v)", stop, ids, f.sc.Err())
	return nil
}
