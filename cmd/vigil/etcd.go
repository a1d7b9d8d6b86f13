package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EtcdConfig configures the embedded etcd role (-target=etcd): a
// single-member etcd for the target registry, so a cluster needs no
// separately installed etcd.
type EtcdConfig struct {
	Name                     string `yaml:"name"`
	DataDir                  string `yaml:"data_dir"`
	ListenClientURLs         string `yaml:"listen_client_urls"`
	AdvertiseClientURLs      string `yaml:"advertise_client_urls"`
	ListenPeerURLs           string `yaml:"listen_peer_urls"`
	InitialAdvertisePeerURLs string `yaml:"initial_advertise_peer_urls"`
	// Endpoints is the etcd this node uses as a client (the target
	// registry); with the etcd role and none given, its own.
	Endpoints string `yaml:"endpoints"`
}

func defaultEtcdConfig() EtcdConfig {
	return EtcdConfig{Name: "vigil", ListenClientURLs: "http://127.0.0.1:2379", ListenPeerURLs: "http://127.0.0.1:2380"}
}

// RegisterFlags adds the -etcd.* flags.
func (c *EtcdConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Endpoints, "etcd.endpoints", c.Endpoints, "comma-separated etcd client URLs of the target registry; when set (or with -target=etcd), the node serves the registry API /api/v1/registry/*")
	f.StringVar(&c.Name, "etcd.name", c.Name, "member name of the embedded etcd (-target=etcd)")
	f.StringVar(&c.DataDir, "etcd.data-dir", c.DataDir, "data directory of the embedded etcd (default: <data.dir>/etcd)")
	f.StringVar(&c.ListenClientURLs, "etcd.listen-client-urls", c.ListenClientURLs, "comma-separated URLs the embedded etcd serves clients on")
	f.StringVar(&c.AdvertiseClientURLs, "etcd.advertise-client-urls", c.AdvertiseClientURLs, "client URLs the embedded etcd advertises (default: the listen URLs)")
	f.StringVar(&c.ListenPeerURLs, "etcd.listen-peer-urls", c.ListenPeerURLs, "comma-separated peer URLs of the embedded etcd")
	f.StringVar(&c.InitialAdvertisePeerURLs, "etcd.initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, "peer URLs the embedded etcd advertises (default: the listen peer URLs)")
}

func parseURLs(flagName, s string) ([]url.URL, error) {
	var out []url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not a URL like http://host:port", flagName, part)
		}
		out = append(out, *u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no URL given", flagName)
	}
	return out, nil
}

// Validate reports the first problem with c.
func (c EtcdConfig) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"etcd.listen-client-urls", c.ListenClientURLs}, {"etcd.listen-peer-urls", c.ListenPeerURLs},
	} {
		if _, err := parseURLs(f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"etcd.advertise-client-urls", c.AdvertiseClientURLs}, {"etcd.initial-advertise-peer-urls", c.InitialAdvertisePeerURLs},
	} {
		if f.v == "" {
			continue
		}
		if _, err := parseURLs(f.name, f.v); err != nil {
			return err
		}
	}
	if c.Name == "" {
		return errors.New("etcd.name must be set")
	}
	return nil
}

// embeddedEtcd is the etcd of the etcd role.
type embeddedEtcd struct {
	*embed.Etcd
	level zap.AtomicLevel
}

// Close stops etcd. Its listeners log errors while they close ("use of
// closed network connection"), which are not failures: they are silenced.
func (e *embeddedEtcd) Close() {
	e.level.SetLevel(zapcore.FatalLevel)
	e.Etcd.Close()
}

// quietCore drops etcd's warnings about choices Vigil makes on purpose
// (one port for HTTP and gRPC, no auth tokens), printed at every start.
type quietCore struct{ zapcore.Core }

var etcdExpected = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
}

func (c quietCore) With(f []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(f)} }

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if etcdExpected[e.Message] || !c.Enabled(e.Level) {
		return ce
	}
	return ce.AddCore(e, c)
}

// startEtcd starts the embedded etcd and waits until it serves. etcd logs
// warnings and errors as JSON lines to stderr.
func startEtcd(ctx context.Context, c EtcdConfig, dataDir string, logger *slog.Logger) (*embeddedEtcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.DataDir
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(dataDir, "etcd")
	}
	// etcd preallocates 64 MB per WAL segment; the registry holds a few
	// kilobytes per target, so 8 MB segments keep an idle single node's
	// data dir small (62 MB of it was etcd's WAL). The variable is
	// etcd's, process-wide: this process runs one etcd.
	wal.SegmentSizeBytes = 8 << 20
	level := zap.NewAtomicLevelAt(zapcore.WarnLevel)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(quietCore{zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), level)}))
	var err error
	if cfg.ListenClientUrls, err = parseURLs("etcd.listen-client-urls", c.ListenClientURLs); err != nil {
		return nil, err
	}
	cfg.AdvertiseClientUrls = cfg.ListenClientUrls
	if c.AdvertiseClientURLs != "" {
		if cfg.AdvertiseClientUrls, err = parseURLs("etcd.advertise-client-urls", c.AdvertiseClientURLs); err != nil {
			return nil, err
		}
	}
	if cfg.ListenPeerUrls, err = parseURLs("etcd.listen-peer-urls", c.ListenPeerURLs); err != nil {
		return nil, err
	}
	cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
	if c.InitialAdvertisePeerURLs != "" {
		if cfg.AdvertisePeerUrls, err = parseURLs("etcd.initial-advertise-peer-urls", c.InitialAdvertisePeerURLs); err != nil {
			return nil, err
		}
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	ee, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	e := &embeddedEtcd{Etcd: ee, level: level}
	select {
	case <-e.Server.ReadyNotify():
		logger.Info("embedded etcd is ready", "client_address", e.Clients[0].Addr().String(), "dir", cfg.Dir)
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(time.Minute):
		e.Close()
		return nil, errors.New("embedded etcd not ready after 1m")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}
