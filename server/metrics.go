package server

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// metrics are the relay's counters, written by hand in the Prometheus text
// format. No metric carries a tenant, device or stream label: routes are
// templates, refusals are counted by wire code.
type metrics struct {
	mu        sync.Mutex
	requests  map[requestKey]uint64
	durations map[string]*histogram // by route
	refusals  map[syncproto.Code]uint64

	batches      atomic.Uint64 // accepted (new) batches
	duplicates   atomic.Uint64 // idempotent replays answered from the store
	deltas       atomic.Uint64
	batchBytes   atomic.Uint64
	statements   atomic.Uint64 // statements appended through this process
	tokens       atomic.Uint64
	rotations    atomic.Uint64
	waiting      atomic.Int64 // long-polls in progress
	secretsStore atomic.Uint64
}

type requestKey struct {
	route, method, class string
}

// durationBuckets are upper bounds in seconds; long-polls land in the top.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		requests:  map[requestKey]uint64{},
		durations: map[string]*histogram{},
		refusals:  map[syncproto.Code]uint64{},
	}
}

func (m *metrics) request(route, method string, status int, d time.Duration) {
	k := requestKey{route: route, method: method, class: strconv.Itoa(status/100) + "xx"}
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[k]++
	h := m.durations[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(durationBuckets))}
		m.durations[route] = h
	}
	h.n++
	h.sum += s
	for i, ub := range durationBuckets {
		if s <= ub {
			h.counts[i]++
			break
		}
	}
}

func (m *metrics) refusal(c syncproto.Code) {
	m.mu.Lock()
	m.refusals[c]++
	m.mu.Unlock()
}

// ServeHTTP writes the metrics in the Prometheus text format (0.0.4).
func (m *metrics) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/metrics" {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w)
}

func (m *metrics) write(w io.Writer) {
	var b strings.Builder
	m.mu.Lock()
	header(&b, "fristed_relay_requests_total", "counter", "HTTP requests answered, by route template, method and status class.")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		if a.route != c.route {
			return a.route < c.route
		}
		if a.method != c.method {
			return a.method < c.method
		}
		return a.class < c.class
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "fristed_relay_requests_total{route=%s,method=%s,class=%s} %d\n",
			label(k.route), label(k.method), label(k.class), m.requests[k])
	}

	header(&b, "fristed_relay_request_duration_seconds", "histogram", "Time to answer a request, by route template (long-polls included).")
	routes := make([]string, 0, len(m.durations))
	for r := range m.durations {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, r := range routes {
		h := m.durations[r]
		var cum uint64
		for i, ub := range durationBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "fristed_relay_request_duration_seconds_bucket{route=%s,le=%s} %d\n",
				label(r), label(strconv.FormatFloat(ub, 'g', -1, 64)), cum)
		}
		fmt.Fprintf(&b, "fristed_relay_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", label(r), h.n)
		fmt.Fprintf(&b, "fristed_relay_request_duration_seconds_sum{route=%s} %g\n", label(r), h.sum)
		fmt.Fprintf(&b, "fristed_relay_request_duration_seconds_count{route=%s} %d\n", label(r), h.n)
	}

	header(&b, "fristed_relay_refusals_total", "counter", "Requests refused, by wire error code.")
	codes := make([]string, 0, len(m.refusals))
	for c := range m.refusals {
		codes = append(codes, string(c))
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "fristed_relay_refusals_total{code=%s} %d\n", label(c), m.refusals[syncproto.Code(c)])
	}
	m.mu.Unlock()

	counter := func(name, help string, v uint64) {
		header(&b, name, "counter", help)
		fmt.Fprintf(&b, "%s %d\n", name, v)
	}
	counter("fristed_relay_batches_accepted_total", "Batches appended to a stream.", m.batches.Load())
	counter("fristed_relay_batches_duplicate_total", "Batches sent again and answered with their first receipt.", m.duplicates.Load())
	counter("fristed_relay_deltas_accepted_total", "Sealed deltas in accepted batches.", m.deltas.Load())
	counter("fristed_relay_batch_bytes_total", "Bytes of accepted batches.", m.batchBytes.Load())
	counter("fristed_relay_statements_appended_total", "Admin chain statements appended by this process.", m.statements.Load())
	counter("fristed_relay_tokens_issued_total", "Access tokens issued.", m.tokens.Load())
	counter("fristed_relay_secrets_stored_total", "Secrets sealed under the key-encryption key and stored.", m.secretsStore.Load())
	counter("fristed_relay_kek_rotations_total", "Key-encryption key rotations.", m.rotations.Load())
	header(&b, "fristed_relay_long_polls", "gauge", "Long-poll requests waiting now.")
	fmt.Fprintf(&b, "fristed_relay_long_polls %d\n", m.waiting.Load())
	io.WriteString(w, b.String())
}

func header(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// label quotes a label value per the text format.
func label(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}
