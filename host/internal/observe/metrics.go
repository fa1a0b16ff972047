package observe

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PluginState is what the supervisor knows of a plugin that the metrics
// need: whether it serves, its restarts, and when its process started.
type PluginState struct {
	Name     string
	Up       bool
	Restarts int
	Started  time.Time
	// Refused counts the clients the host's own listener refused, by
	// reason (the plugin's refusals come in its events).
	Refused map[string]uint64
}

// Collector is a prometheus.Collector of every plugin's counters, each
// labelled plugin, named by Prometheus's rules (base units, _total,
// _seconds, _bytes). states gives the supervisor's side (restarts, up).
//
//	sockplay_connections_total{plugin}               counter
//	sockplay_connections_active{plugin}              gauge
//	sockplay_connections_closed_total{plugin,reason} counter
//	sockplay_connection_duration_seconds{plugin}     histogram
//	sockplay_received_bytes_total{plugin}            counter
//	sockplay_sent_bytes_total{plugin}                counter
//	sockplay_refused_total{plugin,reason}            counter
//	sockplay_panics_total{plugin}                    counter
//	sockplay_plugin_restarts_total{plugin}           counter
//	sockplay_plugin_up{plugin}                       gauge, 1 while a process serves
//	sockplay_plugin_uptime_seconds{plugin}           gauge, of the serving process
//	sockplay_datagrams_total{plugin,direction}       counter, direction "in" or "out"
//	sockplay_events_dropped_total{plugin}            counter
type Collector struct {
	o      *Observer
	states func() []PluginState
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of o's counters and states' states.
func NewCollector(o *Observer, states func() []PluginState) *Collector {
	return &Collector{o: o, states: states}
}

var (
	descConns     = prometheus.NewDesc("sockplay_connections_total", "TCP connections that reached a plugin's handler.", []string{"plugin"}, nil)
	descActive    = prometheus.NewDesc("sockplay_connections_active", "TCP connections open now.", []string{"plugin"}, nil)
	descClosed    = prometheus.NewDesc("sockplay_connections_closed_total", "TCP connections closed, by reason (eof, reset, returned, drained, panic, error, exited).", []string{"plugin", "reason"}, nil)
	descDuration  = prometheus.NewDesc("sockplay_connection_duration_seconds", "How long TCP connections were open.", []string{"plugin"}, nil)
	descReceived  = prometheus.NewDesc("sockplay_received_bytes_total", "Bytes received from clients (TCP, counted by the kernel at each close, and UDP payloads).", []string{"plugin"}, nil)
	descSent      = prometheus.NewDesc("sockplay_sent_bytes_total", "Bytes sent to clients (TCP bytes acknowledged, counted at each close, and UDP payloads).", []string{"plugin"}, nil)
	descRefused   = prometheus.NewDesc("sockplay_refused_total", "Clients the access rules refused, by reason.", []string{"plugin", "reason"}, nil)
	descPanics    = prometheus.NewDesc("sockplay_panics_total", "Handler panics.", []string{"plugin"}, nil)
	descRestarts  = prometheus.NewDesc("sockplay_plugin_restarts_total", "Times the plugin's process was replaced after it died.", []string{"plugin"}, nil)
	descUp        = prometheus.NewDesc("sockplay_plugin_up", "1 while a process of the plugin serves, else 0.", []string{"plugin"}, nil)
	descUptime    = prometheus.NewDesc("sockplay_plugin_uptime_seconds", "Time since the serving process started serving.", []string{"plugin"}, nil)
	descDatagrams = prometheus.NewDesc("sockplay_datagrams_total", "UDP datagrams received (in) and sent (out).", []string{"plugin", "direction"}, nil)
	descDropped   = prometheus.NewDesc("sockplay_events_dropped_total", "Events the plugin dropped because the host read them too slowly.", []string{"plugin"}, nil)
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descActive, descClosed, descDuration, descReceived, descSent,
		descRefused, descPanics, descRestarts, descUp, descUptime, descDatagrams, descDropped} {
		ch <- d
	}
}

// Collect sends every plugin's current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	hostRefused := map[string]map[string]uint64{}
	for _, st := range c.states() {
		n := st.Name
		hostRefused[n] = st.Refused
		up := 0.0
		if st.Up {
			up = 1
			gauge(descUptime, time.Since(st.Started).Seconds(), n)
		}
		gauge(descUp, up, n)
		counter(descRestarts, float64(st.Restarts), n)
	}
	c.o.mu.Lock()
	defer c.o.mu.Unlock()
	for _, n := range slices.Sorted(maps.Keys(c.o.plugins)) {
		p := c.o.plugins[n]
		s := p.stats
		counter(descConns, float64(s.ConnsTotal), n)
		gauge(descActive, float64(s.ConnsActive), n)
		for r, v := range s.Closed {
			counter(descClosed, float64(v), n, r)
		}
		buckets := make(map[float64]uint64, len(DurationBuckets))
		var cum uint64
		for i, b := range DurationBuckets {
			cum += p.hist[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, p.histCount, p.histSum, buckets, n)
		counter(descReceived, float64(s.BytesIn), n)
		counter(descSent, float64(s.BytesOut), n)
		refused := maps.Clone(s.Refused)
		for r, v := range hostRefused[n] {
			refused[r] += v
		}
		for r, v := range refused {
			counter(descRefused, float64(v), n, r)
		}
		counter(descPanics, float64(s.Panics), n)
		counter(descDatagrams, float64(s.DatagramsIn), n, "in")
		counter(descDatagrams, float64(s.DatagramsOut), n, "out")
		counter(descDropped, float64(s.EventsDropped), n)
	}
}
