package main

import (
	"strings"
	"testing"
	"time"
)

func TestServeHubConfig(t *testing.T) {
	const key = "k3y-that-must-not-show"
	base := ServeCmd{HubURL: "https://hub.example", HubHostID: "cust-1", HubAPIKey: key, HubPollFloor: time.Minute, HubTimeout: 30 * time.Second, HubPlanTimeout: 2 * time.Minute}
	cfg, err := base.hubConfig()
	if err != nil || cfg == nil || cfg.Client.HostID != "cust-1" || cfg.MinPoll != time.Minute || cfg.PlanTimeout != 2*time.Minute {
		t.Fatalf("hubConfig() = %+v, %v", cfg, err)
	}
	if none, err := (&ServeCmd{}).hubConfig(); none != nil || err != nil {
		t.Errorf("no hub.url: %+v, %v; want no channel", none, err)
	}
	tests := []struct {
		edit func(c *ServeCmd)
		want string
	}{
		{func(c *ServeCmd) { c.HubURL = "" }, "hub.url: is required when"},
		{func(c *ServeCmd) { c.HubURL = "http://hub.example" }, "hub.url: must be https"},
		{func(c *ServeCmd) { c.HubHostID = "" }, "hub.host_id: is required"},
		{func(c *ServeCmd) { c.HubAPIKey = "" }, "hub.api_key: is required"},
		{func(c *ServeCmd) { c.HubFingerprint = "nope" }, "hub.fingerprint:"},
		{func(c *ServeCmd) { c.HubPollFloor = 0 }, "hub.poll_floor:"},
		{func(c *ServeCmd) { c.HubPlanTimeout = 0 }, "hub.plan_timeout: 0s is not in (0, 10m0s]"},
		{func(c *ServeCmd) { c.HubPlanTimeout = 11 * time.Minute }, "hub.plan_timeout: 11m0s is not in"},
	}
	for _, tt := range tests {
		c := base
		tt.edit(&c)
		_, err := c.hubConfig()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("hubConfig() = %v; want %q", err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), key) {
			t.Errorf("the API key leaks: %v", err)
		}
	}
}
