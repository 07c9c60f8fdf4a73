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
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_requests_total",
		Help: "Requests answered, by front end (proxy, decisions), rule, decision (allowed, denied, error) and status.",
	}, []string{"frontend", "rule", "decision", "status"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portcullis_request_duration_seconds",
		Help:    "Time from receiving a request to answering it (for the proxy, including the upstream), by front end and rule.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"frontend", "rule"})
	m.tunnelsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portcullis_websocket_tunnels_active",
		Help: "WebSocket tunnels open now, by rule.",
	}, []string{"rule"})
	m.tunnelsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_websocket_tunnels_closed_total",
		Help: "WebSocket tunnels ended, by rule and reason (max lifetime, session expired, session revoked, idle timeout, client/upstream closed, shutdown, ...).",
	}, []string{"rule", "reason"})
	m.tunnelLifetime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portcullis_websocket_tunnel_lifetime_seconds",
		Help:    "How long WebSocket tunnels lived, by rule.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	}, []string{"rule"})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_websocket_handshakes_total",
		Help: "WebSocket upgrades handed to the tunnel, by rule and result.",
	}, []string{"rule", "result"})
	m.handshakeTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portcullis_websocket_handshake_duration_seconds",
		Help:    "Time from the authorised upgrade to the client's answer, by rule.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"rule"})
	m.bytesRelayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_websocket_bytes_relayed_total",
		Help: "Bytes relayed through WebSocket tunnels (frame headers included), by rule and direction.",
	}, []string{"rule", "direction"})
	m.closeLateness = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portcullis_websocket_deadline_close_lateness_seconds",
		Help:    "How long after a tunnel's deadline (max lifetime, session expiry, idle timeout) the proxy wrote its Close frame, by rule and reason. Growing values mean the proxy cannot keep its deadlines.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"rule", "reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_rules_reloads_total",
		Help: "Attempts to load a changed rule set, by result (ok, failed). A failed one leaves the last good set serving.",
	}, []string{"result"})
	m.rulesLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_rules_loaded",
		Help: "Rules in the serving rule set.",
	})
	m.revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_revocations_total",
		Help: "Revocations applied on this replica, by source (admin, logout, backchannel_logout, recheck), whether made here or received from another replica.",
	}, []string{"source"})
	m.revokedClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_revocation_tunnels_closed_total",
		Help: "Live tunnels this replica closed because of a revocation, by source.",
	}, []string{"source"})
	m.channelUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_revocation_channel_up",
		Help: "1 when the revocation fleet channel (Redis) answered the last call, 0 when it is unreachable; 1 without a channel.",
	})
	m.channelUp.Set(1)
	m.channelLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "portcullis_revocation_channel_lag_seconds",
		Help:    "Time from another replica's revocation to its application here (grows while the channel catches up after an outage).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60, 300},
	})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_revocation_publish_total",
		Help: "Attempts to publish a revocation to the fleet channel, by result (ok, retry, dropped).",
	}, []string{"result"})
	m.Registry.MustRegister(m.revocations, m.revokedClosed, m.channelUp, m.channelLag, m.published)
	m.Registry.MustRegister(m.requests, m.requestDuration, m.tunnelsActive, m.tunnelsClosed, m.tunnelLifetime,
		m.handshakes, m.handshakeTime, m.bytesRelayed, m.closeLateness, m.reloads, m.rulesLoaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.zero()
	return m
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
