package builtins

import (
	"maps"
	"slices"
	"strings"
	"sync"
)

// LastGauges remembers the value last set for each gauge series. It is a
// complete GaugeSink for hosts without metrics (tests, `felhom-agent
// test`), and the memory behind Gauge for sinks that also export. The zero
// value is ready; it is safe for concurrent use.
type LastGauges struct {
	mu     sync.Mutex
	values map[string]float64 // seriesKey → value
}

var _ GaugeSink = (*LastGauges)(nil)

// SetGauge records value for the series name{labels}.
func (g *LastGauges) SetGauge(name string, labels map[string]string, value float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.values == nil {
		g.values = map[string]float64{}
	}
	g.values[seriesKey(name, labels)] = value
}

// Gauge returns the value last set for name{labels}, if any.
func (g *LastGauges) Gauge(name string, labels map[string]string) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.values[seriesKey(name, labels)]
	return v, ok
}

// seriesKey is name{k=v,...} with the labels sorted, unambiguous because
// names and label names are [a-z0-9_] and values end at the next "\x00".
func seriesKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString("\x00" + k + "=" + labels[k])
	}
	return b.String()
}
