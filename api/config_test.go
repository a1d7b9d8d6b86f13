package api

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.HasPrefix(f.Name, "api.") {
			t.Errorf("flag %q lacks the api. prefix", f.Name)
		}
	})
	if n != 8 {
		t.Errorf("%d flags, want 8", n)
	}
	err := fs.Parse([]string{"-api.max-body-bytes=100", "-api.max-decoded-body-bytes=200", "-api.max-query-form-bytes=300", "-api.max-samples-per-request=7", "-api.query-timeout=5s", "-api.retry-after=3s",
		"-api.max-concurrent-writes=9", "-api.write-queue-timeout=4s"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{MaxBodyBytes: 100, MaxDecodedBodyBytes: 200, MaxSamplesPerRequest: 7, MaxQueryFormBytes: 300, QueryTimeout: 5 * time.Second, RetryAfter: 3 * time.Second,
		MaxConcurrentWrites: 9, WriteQueueTimeout: 4 * time.Second}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "zero body", change: func(c *Config) { c.MaxBodyBytes = 0 }, wantErr: "api.max-body-bytes must be positive"},
		{name: "decoded smaller than wire", change: func(c *Config) { c.MaxDecodedBodyBytes = c.MaxBodyBytes - 1 }, wantErr: "must not be smaller than api.max-body-bytes"},
		{name: "negative decoded", change: func(c *Config) { c.MaxDecodedBodyBytes = -1 }, wantErr: "api.max-decoded-body-bytes must be positive"},
		{name: "negative samples", change: func(c *Config) { c.MaxSamplesPerRequest = -1 }, wantErr: "api.max-samples-per-request must not be negative"},
		{name: "zero form", change: func(c *Config) { c.MaxQueryFormBytes = 0 }, wantErr: "api.max-query-form-bytes must be positive"},
		{name: "zero timeout", change: func(c *Config) { c.QueryTimeout = 0 }, wantErr: "api.query-timeout must be positive"},
		{name: "sub-second retry", change: func(c *Config) { c.RetryAfter = 500 * time.Millisecond }, wantErr: "api.retry-after must be at least 1s"},
		{name: "several reported", change: func(c *Config) { c.QueryTimeout = 0; c.MaxQueryFormBytes = 0 }, wantErr: "api.max-query-form-bytes must be positive, got 0\napi.query-timeout must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
			if _, err := New(cfg, nil, nil, nil, nil, nil, nil, nil, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}
