package agent

import (
	"os"
	"regexp"
	"testing"
	"time"
)

// TestAlertRulesUseOurMetrics: the example rules in deploy/ name only
// families the agent exports (and Prometheus's own up), so a rename here
// cannot leave the shipped alert silently matching nothing.
func TestAlertRulesUseOurMetrics(t *testing.T) {
	src, err := os.ReadFile("../../deploy/felhom-agent.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	a := newAgentMetrics(0, nil)
	a.outcomes.ended("backup", "succeeded", time.Now())
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{"up": true}
	for _, f := range fams {
		ours[f.GetName()] = true
	}
	used := regexp.MustCompile(`(?m)^\s+expr:.*$`).FindAll(src, -1)
	if len(used) < 3 {
		t.Fatalf("found %d rules; want the backup, never-succeeded and status alerts", len(used))
	}
	for _, e := range used {
		for _, name := range regexp.MustCompile(`\b(felhom_[a-z_]+|up)\{`).FindAllSubmatch(e, -1) {
			if !ours[string(name[1])] {
				t.Errorf("rule %s uses %s, which the agent does not export", e, name[1])
			}
		}
	}
}
