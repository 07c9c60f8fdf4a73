// Package metrics exposes portcullis's Prometheus metrics: requests by
// front end, rule, decision and status with latency histograms; WebSocket
// tunnels (active, handshakes, closes by reason, bytes relayed); rule-set
// reloads. It implements proxy.Observer and tunnel.Metrics.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-proxy/portcullis/internal/revocation"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/proxy/tunnel"
)

// Metrics holds the collectors, registered in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	tunnelsActive   *prometheus.GaugeVec
	tunnelsClosed   *prometheus.CounterVec
	tunnelLifetime  *prometheus.HistogramVec
	handshakes      *prometheus.CounterVec
	handshakeTime   *prometheus.HistogramVec
	bytesRelayed    *prometheus.CounterVec
	closeLateness   *prometheus.HistogramVec
	reloads         *prometheus.CounterVec
	rulesLoaded     prometheus.Gauge
	revocations     *prometheus.CounterVec
	revokedClosed   *prometheus.CounterVec
	channelUp       prometheus.Gauge
	channelLag      prometheus.Histogram
	published       *prometheus.CounterVec

	// requestSeries holds, by requestKey, the requests counter and
	// duration histogram of one label combination (*requestSeries): a
	// request resolves its series with one lock-free lookup instead of
	// hashing its labels into both vectors.
	requestSeries sync.Map
}

// requestKey is the labels of one request's series.
type requestKey struct {
	frontend, rule, decision string
	status                   int
}

// requestSeries is the requests counter and the duration histogram of one
// requestKey, resolved from their vectors once.
type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New returns metrics registered in a fresh registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	// Every family is described once, here: the field it fills, its name,
	// help text, label names and, for a histogram, its buckets.
	for _, f := range []family{
		{into: &m.requests, name: "portcullis_requests_total", labels: []string{"frontend", "rule", "decision", "status"},
			help: "Requests answered, by front end (proxy, decisions), rule, decision (allowed, denied, error) and status."},
		{into: &m.requestDuration, name: "portcullis_request_duration_seconds", labels: []string{"frontend", "rule"},
			help:    "Time from receiving a request to answering it (for the proxy, including the upstream), by front end and rule.",
			buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		{into: &m.tunnelsActive, name: "portcullis_websocket_tunnels_active", labels: []string{"rule"},
			help: "WebSocket tunnels open now, by rule."},
		{into: &m.tunnelsClosed, name: "portcullis_websocket_tunnels_closed_total", labels: []string{"rule", "reason"},
			help: "WebSocket tunnels ended, by rule and reason (max lifetime, session expired, session revoked, idle timeout, client/upstream closed, shutdown, ...)."},
		{into: &m.tunnelLifetime, name: "portcullis_websocket_tunnel_lifetime_seconds", labels: []string{"rule"},
			help:    "How long WebSocket tunnels lived, by rule.",
			buckets: prometheus.ExponentialBuckets(1, 4, 9)},
		{into: &m.handshakes, name: "portcullis_websocket_handshakes_total", labels: []string{"rule", "result"},
			help: "WebSocket upgrades handed to the tunnel, by rule and result."},
		{into: &m.handshakeTime, name: "portcullis_websocket_handshake_duration_seconds", labels: []string{"rule"},
			help:    "Time from the authorised upgrade to the client's answer, by rule.",
			buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}},
		{into: &m.bytesRelayed, name: "portcullis_websocket_bytes_relayed_total", labels: []string{"rule", "direction"},
			help: "Bytes relayed through WebSocket tunnels (frame headers included), by rule and direction."},
		{into: &m.closeLateness, name: "portcullis_websocket_deadline_close_lateness_seconds", labels: []string{"rule", "reason"},
			help:    "How long after a tunnel's deadline (max lifetime, session expiry, idle timeout) the proxy wrote its Close frame, by rule and reason. Growing values mean the proxy cannot keep its deadlines.",
			buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
		{into: &m.reloads, name: "portcullis_rules_reloads_total", labels: []string{"result"},
			help: "Attempts to load a changed rule set, by result (ok, failed). A failed one leaves the last good set serving."},
		{into: &m.rulesLoaded, name: "portcullis_rules_loaded",
			help: "Rules in the serving rule set."},
		{into: &m.revocations, name: "portcullis_revocations_total", labels: []string{"source"},
			help: "Revocations applied on this replica, by source (admin, logout, backchannel_logout, recheck), whether made here or received from another replica."},
		{into: &m.revokedClosed, name: "portcullis_revocation_tunnels_closed_total", labels: []string{"source"},
			help: "Live tunnels this replica closed because of a revocation, by source."},
		{into: &m.channelUp, name: "portcullis_revocation_channel_up",
			help: "1 when the revocation fleet channel (Redis) answered the last call, 0 when it is unreachable; 1 without a channel."},
		{into: &m.channelLag, name: "portcullis_revocation_channel_lag_seconds",
			help:    "Time from another replica's revocation to its application here (grows while the channel catches up after an outage).",
			buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60, 300}},
		{into: &m.published, name: "portcullis_revocation_publish_total", labels: []string{"result"},
			help: "Attempts to publish a revocation to the fleet channel, by result (ok, retry, dropped)."},
	} {
		m.Registry.MustRegister(f.build())
	}
	m.channelUp.Set(1)
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.zero()
	return m
}

// family describes one metric family. The type of into says which kind of
// collector build makes and stores there: *prometheus.Gauge and
// *prometheus.Histogram take no labels; a histogram's buckets are set, and
// every other kind's are nil.
type family struct {
	into       any
	name, help string
	labels     []string
	buckets    []float64
}

// build makes f's collector, stores it in f.into and returns it for
// registration. A family that does not fit its kind (buckets on anything
// but a histogram, none on a histogram, labels on a single Gauge or
// Histogram, an unknown kind) is a programming error and panics, as
// MustRegister does.
func (f family) build() prometheus.Collector {
	_, hv := f.into.(**prometheus.HistogramVec)
	_, h := f.into.(*prometheus.Histogram)
	if (f.buckets != nil) != (hv || h) {
		panic("metrics: " + f.name + ": buckets go with histograms, and only with them")
	}
	switch p := f.into.(type) {
	case **prometheus.CounterVec:
		*p = prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name, Help: f.help}, f.labels)
		return *p
	case **prometheus.GaugeVec:
		*p = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: f.help}, f.labels)
		return *p
	case **prometheus.HistogramVec:
		*p = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name, Help: f.help, Buckets: f.buckets}, f.labels)
		return *p
	}
	if f.labels != nil {
		panic("metrics: " + f.name + ": labels go with vectors")
	}
	switch p := f.into.(type) {
	case *prometheus.Gauge:
		*p = prometheus.NewGauge(prometheus.GaugeOpts{Name: f.name, Help: f.help})
		return *p
	case *prometheus.Histogram:
		*p = prometheus.NewHistogram(prometheus.HistogramOpts{Name: f.name, Help: f.help, Buckets: f.buckets})
		return *p
	}
	panic("metrics: " + f.name + ": no collector for this kind of field")
}

// zero creates, at start-up, a series at zero for every label value known
// in advance, so that every family is exported before its first event and
// a dashboard's rate() or an alert's increase() sees 0, not "no data".
// Rule IDs are not known in advance: these series carry rule="" (the
// label value of requests no rule matched), and each rule's own series
// appear with its first event.
func (m *Metrics) zero() {
	for _, fe := range []string{"proxy", "decisions"} {
		m.requests.WithLabelValues(fe, "", "denied", "404")
		m.requestDuration.WithLabelValues(fe, "")
	}
	m.tunnelsActive.WithLabelValues("")
	m.tunnelLifetime.WithLabelValues("")
	m.handshakeTime.WithLabelValues("")
	for _, r := range tunnel.HandshakeResults() {
		m.handshakes.WithLabelValues("", r)
	}
	for _, r := range tunnel.CloseReasons() {
		m.tunnelsClosed.WithLabelValues("", r)
	}
	for _, r := range tunnel.DeadlineReasons() {
		m.closeLateness.WithLabelValues("", r)
	}
	for _, d := range tunnel.Directions() {
		m.bytesRelayed.WithLabelValues("", d)
	}
	for _, r := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	for _, src := range []string{revocation.SourceAdmin, revocation.SourceLogout, revocation.SourceBackchannel, revocation.SourceRecheck} {
		m.revocations.WithLabelValues(src)
		m.revokedClosed.WithLabelValues(src)
	}
	for _, r := range []string{"ok", "retry", "dropped"} { // revocation's Redis channel publish results
		m.published.WithLabelValues(r)
	}
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Request implements proxy.Observer.
func (m *Metrics) Request(frontend, rule, decision string, status int, d time.Duration) {
	k := requestKey{frontend: frontend, rule: rule, decision: decision, status: status}
	v, ok := m.requestSeries.Load(k)
	if !ok {
		// Concurrent first requests may both resolve the series: the
		// vectors return the same children, so either copy counts.
		v, _ = m.requestSeries.LoadOrStore(k, &requestSeries{
			count:    m.requests.WithLabelValues(frontend, rule, decision, statusLabel(status)),
			duration: m.requestDuration.WithLabelValues(frontend, rule),
		})
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.duration.Observe(d.Seconds())
}

// statusLabels are the status label's values for 100-599, made once: a
// request's status is formatted without an allocation.
var statusLabels = func() (s [500]string) {
	for i := range s {
		s[i] = strconv.Itoa(100 + i)
	}
	return s
}()

// statusLabel is strconv.Itoa(status).
func statusLabel(status int) string {
	if status >= 100 && status < 600 {
		return statusLabels[status-100]
	}
	return strconv.Itoa(status)
}

// Handshake implements tunnel.Metrics.
func (m *Metrics) Handshake(rule, result string, d time.Duration) {
	m.handshakes.WithLabelValues(rule, result).Inc()
	m.handshakeTime.WithLabelValues(rule).Observe(d.Seconds())
}

// Opened implements tunnel.Metrics.
func (m *Metrics) Opened(rule string) { m.tunnelsActive.WithLabelValues(rule).Inc() }

// Closed implements tunnel.Metrics.
func (m *Metrics) Closed(rule, reason string, lifetime time.Duration) {
	m.tunnelsActive.WithLabelValues(rule).Dec()
	m.tunnelsClosed.WithLabelValues(rule, reason).Inc()
	m.tunnelLifetime.WithLabelValues(rule).Observe(lifetime.Seconds())
}

// Relayed implements tunnel.Metrics.
func (m *Metrics) Relayed(rule, dir string, n int64) {
	m.bytesRelayed.WithLabelValues(rule, dir).Add(float64(n))
}

// DeadlineClose implements tunnel.DeadlineMetrics.
func (m *Metrics) DeadlineClose(rule, reason string, late time.Duration) {
	m.closeLateness.WithLabelValues(rule, reason).Observe(late.Seconds())
}

// Reload records a rule-set reload attempt and, when it succeeded, the
// number of rules now serving.
func (m *Metrics) Reload(err error, rules int) {
	if err != nil {
		m.reloads.WithLabelValues("failed").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.rulesLoaded.Set(float64(rules))
}

var (
	_ proxy.Observer         = (*Metrics)(nil)
	_ tunnel.Metrics         = (*Metrics)(nil)
	_ tunnel.DeadlineMetrics = (*Metrics)(nil)
)

// Revocation implements revocation.Metrics.
func (m *Metrics) Revocation(source string, closed int) {
	m.revocations.WithLabelValues(source).Inc()
	m.revokedClosed.WithLabelValues(source).Add(float64(closed))
}

// ChannelState implements revocation.ChannelMetrics.
func (m *Metrics) ChannelState(up bool) {
	if up {
		m.channelUp.Set(1)
		return
	}
	m.channelUp.Set(0)
}

// ChannelLag implements revocation.ChannelMetrics.
func (m *Metrics) ChannelLag(d time.Duration) { m.channelLag.Observe(d.Seconds()) }

// Published implements revocation.ChannelMetrics.
func (m *Metrics) Published(result string) { m.published.WithLabelValues(result).Inc() }
