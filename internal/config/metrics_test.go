package config

import "testing"

func TestMetricsAddr(t *testing.T) {
	cfg, err := parse(t, nil)
	if err != nil || cfg.MetricsAddr != "" {
		t.Fatalf("default metrics address %q %v, want empty (off)", cfg.MetricsAddr, err)
	}
	cfg, err = parse(t, map[string]string{"PAYMENTS_METRICS_ADDR": "127.0.0.1:9464"})
	if err != nil || cfg.MetricsAddr != "127.0.0.1:9464" {
		t.Fatalf("PAYMENTS_METRICS_ADDR: %q %v", cfg.MetricsAddr, err)
	}
	cfg, err = parse(t, map[string]string{"PAYMENTS_METRICS_ADDR": "127.0.0.1:9464"}, "--metrics-addr", ":9465")
	if err != nil || cfg.MetricsAddr != ":9465" {
		t.Fatalf("--metrics-addr: %q %v", cfg.MetricsAddr, err)
	}
}
