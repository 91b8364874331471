package agent

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

var gaugeTests = []struct {
	name   string
	labels map[string]string
	ok     bool
}{
	{"node_cpu_percent", nil, true},
	{"storage_used_percent", map[string]string{"storage": "local"}, true},
	{"_private", map[string]string{"a_b": "x"}, true},
	{"", nil, false},
	{"Upper", nil, false},
	{"has-dash", nil, false},
	{"9lives", nil, false},
	{"spaces in name", nil, false},
	{strings.Repeat("a", 101), nil, false},
	{"ok", map[string]string{"__reserved": "x"}, false},
	{"ok", map[string]string{"Bad": "x"}, false},
	{"ok", map[string]string{"v": strings.Repeat("x", maxLabelValue+1)}, false},
	{"ok", map[string]string{"v": "\xff"}, false},
}

func TestPlaybookGauges(t *testing.T) {
	for _, tc := range gaugeTests {
		reg := prometheus.NewRegistry()
		dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
		g := newPlaybookGauges(reg, 0, dropped, enginetest.Logger())
		g.SetGauge(tc.name, tc.labels, 42)
		n, err := testutil.GatherAndCount(reg)
		if err != nil {
			t.Fatalf("SetGauge(%q, %v) left a registry that does not gather: %v", tc.name, tc.labels, err)
		}
		if got := n == 1 && testutil.ToFloat64(dropped) == 0; got != tc.ok {
			t.Errorf("SetGauge(%.20q, %v): exported=%v dropped=%v; want ok=%v", tc.name, tc.labels, n, testutil.ToFloat64(dropped), tc.ok)
		}
	}
}

func TestPlaybookGaugesLabelSetsAndCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	g := newPlaybookGauges(reg, 3, dropped, enginetest.Logger())
	g.SetGauge("temp", map[string]string{"chip": "a", "sensor": "1"}, 40)
	g.SetGauge("temp", map[string]string{"sensor": "2", "chip": "a"}, 41) // same names, another order
	g.SetGauge("temp", map[string]string{"chip": "a"}, 1)                 // other label names: dropped
	g.SetGauge("load", nil, 0.5)
	g.SetGauge("temp", map[string]string{"chip": "b", "sensor": "1"}, 50) // a fourth series: over the cap
	g.SetGauge("temp", map[string]string{"chip": "a", "sensor": "1"}, 45) // an existing series still updates

	want := `
# HELP felhom_playbook_temp Set by playbooks with monitor.gauge("temp", ...).
# TYPE felhom_playbook_temp gauge
felhom_playbook_temp{chip="a",sensor="1"} 45
felhom_playbook_temp{chip="a",sensor="2"} 41
# HELP felhom_playbook_load Set by playbooks with monitor.gauge("load", ...).
# TYPE felhom_playbook_load gauge
felhom_playbook_load 0.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "felhom_playbook_temp", "felhom_playbook_load"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(dropped); got != 2 {
		t.Errorf("dropped = %v; want 2 (a label set mismatch and one over the cap)", got)
	}
}

func FuzzSetGauge(f *testing.F) {
	for _, tc := range gaugeTests {
		var k, v string
		for k, v = range tc.labels {
		}
		f.Add(tc.name, k, v, 1.5)
	}
	f.Fuzz(func(t *testing.T, name, label, value string, x float64) {
		reg := prometheus.NewRegistry()
		g := newPlaybookGauges(reg, 10, prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"}), enginetest.Logger())
		labels := map[string]string{}
		if label != "" {
			labels[label] = value
		}
		g.SetGauge(name, labels, x)
		g.SetGauge(name, nil, x)
		// Whatever came in, the registry must still gather.
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("SetGauge(%q, %q=%q) broke the registry: %v", name, label, value, err)
		}
	})
}
